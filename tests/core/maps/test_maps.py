"""core.maps: legends of the classes present (blockwise counts, area in ha and %) and generalisation to a minimum
mapping unit (sieve steps, islands in nodata, connectivity, polygons with value/code/name/area_ha)."""

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from satclassify_plugin.core import raster
from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.maps import generalize as gen
from satclassify_plugin.core.maps import legend

gdal.UseExceptions()
ogr.UseExceptions()


def class_raster(path, a, epsg=32632, pixel=10.0, classes=None, nodata=0):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), a.shape[1], a.shape[0], 1, gdal.GDT_Byte)
    ds.SetGeoTransform((500000.0, pixel, 0, 5000000.0, 0, -pixel))
    if epsg:
        s = osr.SpatialReference()
        s.ImportFromEPSG(epsg)
        ds.SetProjection(s.ExportToWkt())
    b = ds.GetRasterBand(1)
    if nodata is not None:
        b.SetNoDataValue(nodata)
    b.SetDescription("clc_level1")
    raster.write_class_metadata(b, classes if classes is not None else clc.classes(1))
    b.WriteArray(a)
    b = ds = None
    return str(path)


def polygons_of(path):
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    fields = [lyr.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(lyr.GetLayerDefn().GetFieldCount())]
    rows = [(f["value"], f["code"], f["name"], f["area_ha"], f.GetGeometryRef().GetArea() / 1e4) for f in lyr]
    return lyr.GetName(), fields, rows


def designed():
    """100 x 100 px of 10 m (1 ha = 100 px): class 1 west, class 2 east; a 5x5 block of class 3 (0.25 ha) in
    the west, a 10x10 block of class 3 (1 ha) in the east, a diagonal line of 60 class-4 pixels (corners only)
    in the east, a nodata square in the north-west corner holding a 3x3 island of class 2."""
    a = np.ones((100, 100), np.uint8)
    a[:, 50:] = 2
    a[40:45, 20:25] = 3
    a[70:80, 70:80] = 3
    for i in range(30):  # a staircase: (r, c) and (r + 1, c + 1) touch by corners only
        a[2 + 2 * i, 52] = 4
        a[3 + 2 * i, 53] = 4
    a[:20, :20] = 0
    a[8:11, 8:11] = 2
    return a


def test_mmu_in_pixels_and_sieve_steps():
    assert gen.mmu_pixels(25, 100.0) == 2500  # CLC's 25 ha at 10 m
    assert gen.mmu_pixels(1, 100.0) == 100
    assert gen.mmu_pixels(0.015, 100.0) == 2  # 150 m2: 1 pixel is too small, 2 reach it
    assert gen.mmu_pixels(0.0001, 400.0) == 1
    for bad in (0, -1, float("nan")):
        with pytest.raises(SatClassifyError, match="MMU must be a positive area in hectares"):
            gen.mmu_pixels(bad, 100.0)
    assert gen.sieve_steps(50) == [2, 4, 8, 16, 32, 50]
    assert gen.sieve_steps(2) == [2] and gen.sieve_steps(1) == [] and gen.sieve_steps(64) == [2, 4, 8, 16, 32, 64]


def test_pixel_area_from_the_crs_unit_and_refusals(tmp_path):
    a = np.ones((4, 4), np.uint8)
    assert legend.pixel_area_m2(gdal.Open(class_raster(tmp_path / "m.tif", a))) == 100.0
    feet = gdal.Open(class_raster(tmp_path / "f.tif", a, epsg=2263, pixel=10.0), gdal.GA_Update)  # US survey feet
    feet.SetGeoTransform((1000000.0, 10.0, 0, 200000.0, 0, -10.0))  # on Long Island, where the CRS is metre-true
    assert legend.pixel_area_m2(feet) == pytest.approx(100 * 0.3048006096**2)
    with pytest.raises(SatClassifyError, match=r"geographic CRS .*degrees.*Reproject it to a projected CRS"):
        legend.pixel_area_m2(gdal.Open(class_raster(tmp_path / "g.tif", a, epsg=4326, pixel=0.0001)))
    with pytest.raises(SatClassifyError, match="has no coordinate reference system"):
        legend.pixel_area_m2(gdal.Open(class_raster(tmp_path / "n.tif", a, epsg=None)))


def test_legend_lists_only_present_classes_with_area(tmp_path):
    a = np.zeros((1500, 1300), np.uint8)  # more than one 1024-pixel window
    a[:, :300] = 1
    a[:, 300:1000] = 3
    a[:500, 1000:] = 5
    path = class_raster(tmp_path / "c.tif", a)
    ds = gdal.Open(path)
    counts = legend.class_counts(ds, block=512)
    assert counts[:6].tolist() == [1000 * 300, 1500 * 300, 0, 1500 * 700, 0, 500 * 300] and counts.sum() == a.size
    entries = legend.class_areas(path)
    assert [(e["value"], e["code"], e["name"]) for e in entries] == [
        (1, "1", "Artificial surfaces"),
        (3, "3", "Forest and semi natural areas"),
        (5, "5", "Water bodies"),
    ]
    labelled = 1500 * 1000 + 500 * 300
    assert [e["area_ha"] for e in entries] == [1500 * 300 / 100, 1500 * 700 / 100, 500 * 300 / 100]
    assert [e["percent"] for e in entries] == pytest.approx(
        [100 * 450000 / labelled, 100 * 1050000 / labelled, 100 * 150000 / labelled]
    )
    assert legend.legend_label(entries[0]) == "Artificial surfaces \u2013 4,500 ha (27.3 %)"
    assert legend.legend_label({"name": "x", "area_ha": 0.5, "percent": 1.0}) == "x \u2013 0.50 ha (1.0 %)"
    assert legend.legend_label({"name": "x", "area_ha": None, "percent": 12.34}) == "x (12.3 %)"
    assert legend.legend_label({"name": "x"}) == "x"
    # a value without a name in the table still counts, as "class N"
    extra = legend.present_classes(np.array([5, 0, 3]), [], 100.0)
    assert extra == [
        {"value": 2, "code": "2", "name": "class 2", "color": "#808080", "pixels": 3, "area_ha": 0.03, "percent": 100.0}
    ]


@pytest.mark.parametrize("connectivity", [4, 8])
def test_generalize_minimum_area_connectivity_islands_and_polygons(tmp_path, connectivity):
    a = designed()
    src = class_raster(tmp_path / "in.tif", a)
    out, poly = str(tmp_path / "gen.tif"), str(tmp_path / "gen.gpkg")
    notes = []
    from satclassify_plugin.core.contract.feedback import Monitor

    s = gen.generalize(src, out, 0.5, connectivity, polygons=poly, monitor=Monitor(info=notes.append))
    assert s["threshold"] == 50 and s["pixel_area_m2"] == 100.0
    o = gdal.Open(out)
    g = o.ReadAsArray()
    # the 0.25 ha block is gone into class 1, the 1 ha block stays
    assert (g[40:45, 20:25] == 1).all() and (g[70:80, 70:80] == 3).all()
    # the corner-connected staircase (60 pixels) is one patch with 8-connectivity, 60 specks with 4
    line = a == 4
    assert (g[line] == 4).all() if connectivity == 8 else (g[line] == 2).all()
    # nodata stays nodata, and the island in it (9 px, no labelled neighbour) becomes nodata
    assert (g[a == 0] == 0).all() and (g[8:11, 8:11] == 0).all() and (g == 0).sum() == 400
    assert s["islands"] == 1 and s["islands_ha"] == pytest.approx(0.09)
    assert any("set to nodata: 0.09 ha" in n for n in notes)
    # colour table, names, nodata kept
    assert raster.category_names(o)[:5] == [
        "no label",
        "Artificial surfaces",
        "Agricultural areas",
        "Forest and semi natural areas",
        "Wetlands",
    ]
    assert o.GetRasterBand(1).GetColorTable().GetColorEntry(3)[:3] == clc.classes(1)[2].rgb
    assert o.GetRasterBand(1).GetNoDataValue() == 0 and o.GetRasterBand(1).GetDescription() == "clc_level1"
    assert o.GetMetadataItem("SATCLASSIFY_MMU_PIXELS") == "50"
    o = None
    name, fields, rows = polygons_of(poly)
    assert name == "gen" and fields == ["value", "code", "name", "area_ha"]
    assert min(r[3] for r in rows) >= 0.5 and all(r[3] == pytest.approx(r[4]) for r in rows)
    assert sum(r[3] for r in rows) == pytest.approx((g != 0).sum() / 100)
    by_value = {}
    for v, code, nm, area, _ in rows:
        by_value.setdefault(v, []).append(area)
        assert (code, nm) == (clc.classes(1)[v - 1].code, clc.classes(1)[v - 1].name)
    assert sorted(by_value) == ([1, 2, 3, 4] if connectivity == 8 else [1, 2, 3])
    assert by_value[3] == [1.0]
    assert s["polygons"] == len(rows)
    assert [(c["value"], c["pixels"]) for c in s["classes"]] == [(v, int((g == v).sum())) for v in sorted(by_value)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gen.gpkg",
        "gen.tif",
        "gen.tif.aux.xml",
        "in.tif",
        "in.tif.aux.xml",
    ]


def test_generalize_speckle_needs_the_growing_threshold(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(1, 4, (200, 200)).astype(np.uint8)  # salt and pepper: every neighbour is small
    src = class_raster(tmp_path / "noise.tif", a)
    s = gen.generalize(src, str(tmp_path / "g.tif"), 0.3, 4, polygons=str(tmp_path / "g.gpkg"))
    _, _, rows = polygons_of(tmp_path / "g.gpkg")
    assert min(r[3] for r in rows) >= 0.3 and s["islands"] == 0
    # one GDAL pass at the MMU alone leaves most specks (why generalize sieves in steps)
    one = gdal.GetDriverByName("MEM").Create("", 200, 200, 1, gdal.GDT_Byte)
    src_ds = gdal.Open(src)  # kept open while its band is used
    gdal.SieveFilter(src_ds.GetRasterBand(1), None, one.GetRasterBand(1), 30, 4)
    mem = ogr.GetDriverByName("Memory").CreateDataSource("m")
    lyr = mem.CreateLayer("p")
    lyr.CreateField(ogr.FieldDefn("v", ogr.OFTInteger))
    gdal.Polygonize(one.GetRasterBand(1), None, lyr, 0)
    assert min(f.GetGeometryRef().GetArea() for f in lyr) < 30 * 100


def test_generalize_refusals_leave_nothing(tmp_path):
    a = np.ones((10, 10), np.uint8)
    with pytest.raises(SatClassifyError, match="geographic CRS"):
        gen.generalize(class_raster(tmp_path / "g.tif", a, epsg=4326, pixel=0.0001), str(tmp_path / "o.tif"), 1)
    with pytest.raises(SatClassifyError, match="MMU must be a positive area"):
        gen.generalize(class_raster(tmp_path / "m.tif", a), str(tmp_path / "o.tif"), 0)
    f = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "f.tif"), 4, 4, 1, gdal.GDT_Float32)
    f.SetGeoTransform((0, 10, 0, 0, 0, -10))
    s = osr.SpatialReference()
    s.ImportFromEPSG(32632)
    f.SetProjection(s.ExportToWkt())
    f = None
    with pytest.raises(SatClassifyError, match="Float32, not a class raster"):
        gen.generalize(str(tmp_path / "f.tif"), str(tmp_path / "o.tif"), 1)
    with pytest.raises(SatClassifyError, match="connectivity must be 4 or 8"):
        gen.generalize(str(tmp_path / "m.tif"), str(tmp_path / "o.tif"), 1, 6)
    assert not (tmp_path / "o.tif").exists()
