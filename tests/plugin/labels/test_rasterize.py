"""satclassify:rasterizeclc in real QGIS processing: pixels vs gdal_rasterize, majority, levels, mapping, CRS."""

import os
import subprocess

import numpy as np
import pytest
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException, QgsVectorLayer

from satclassify_plugin.core import raster
from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.feedback import Monitor
from satclassify_plugin.core.labels.rasterize import Grid, rasterize_clc
from tests.rasters import LAEA, UTM32N, make_polygons, make_raster, read_raster, wkt

from ..sentinel_helpers import LogFeedback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
X0, Y0 = 500000.0, 5000000.0  # top-left of the reference rasters
STR = {"code_18": ogr.OFTString}


def box(x0, y0, x1, y1):
    """Polygon WKT in map units relative to (X0, Y0), y measured downwards from the top."""
    a, b, c, d = X0 + x0, Y0 - y0, X0 + x1, Y0 - y1
    return f"POLYGON(({a} {b},{c} {b},{c} {d},{a} {d},{a} {b}))"


def ref_raster(tmp_path, w=40, h=40, pixel=10.0):
    return make_raster(tmp_path / "ref.tif", np.zeros((h, w), np.uint16), origin=(X0, Y0), pixel=pixel)


def random_polygons(rng, n, size):
    out = []
    codes = [e.code for e in clc.legend()]
    for _ in range(n):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(size * 0.05, size * 0.3)
        k = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        rad = r * rng.uniform(0.5, 1.0, k)
        pts = [(X0 + cx + rr * np.cos(a), Y0 - cy + rr * np.sin(a)) for a, rr in zip(ang, rad)]
        pts.append(pts[0])
        out.append(
            (
                "POLYGON((" + ",".join(f"{x} {y}" for x, y in pts) + "))",
                {"code_18": str(codes[int(rng.integers(len(codes)))])},
            )
        )
    return out


def gdal_reference(tmp_path, src, ref, all_touched=False, name="gdal.tif"):
    ds = gdal.Open(ref)
    out = gdal.GetDriverByName("GTiff").Create(str(tmp_path / name), ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_UInt16)
    out.SetGeoTransform(ds.GetGeoTransform())
    out.SetProjection(ds.GetProjection())
    opts = dict(attribute="code_18", allTouched=all_touched)
    gdal.Rasterize(out, src, **opts)
    a = out.ReadAsArray()
    out = None
    return clc.lookup_table(3, "code")[a]


@pytest.mark.parametrize("rule,all_touched", [(0, False), (1, True)])
def test_centre_and_all_touched_equal_gdal_rasterize(run_alg, tmp_path, rule, all_touched):
    rng = np.random.default_rng(3)
    src = make_polygons(tmp_path / "clc.gpkg", random_polygons(rng, 30, 400.0), epsg=UTM32N, fields=STR)
    ref = ref_raster(tmp_path)
    out = tmp_path / "out.tif"
    res = run_alg(
        "satclassify:rasterizeclc", {"INPUT": src, "REFERENCE": ref, "LEVEL": 2, "RULE": rule, "OUTPUT": str(out)}
    )
    got = read_raster(res["OUTPUT"])
    expected = gdal_reference(tmp_path, src, ref, all_touched)
    assert got.dtype == np.uint8 and (got > 0).sum() > 300
    np.testing.assert_array_equal(got, expected)
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform() == gdal.Open(ref).GetGeoTransform()
    assert raster.srs_of(ds).IsSame(raster.srs_of(gdal.Open(ref)))
    b = ds.GetRasterBand(1)
    assert b.GetNoDataValue() == 0
    names = raster.category_names(ds)
    assert names[12] == "Non-irrigated arable land" and names[0] == "no label"
    assert b.GetColorTable().GetColorEntry(12)[:3] == (255, 255, 168)
    assert res["UNKNOWN_FEATURES"] == 0


def test_majority_known_answers_and_mixed(run_alg, tmp_path):
    # 4 x 2 pixels of 10 m; y grows downwards from the top edge
    polys = [
        # pixel (0,0): polygon with a hole around the centre: 84 % of the area, centre empty
        (
            f"POLYGON(({X0} {Y0},{X0 + 10} {Y0},{X0 + 10} {Y0 - 10},{X0} {Y0 - 10},{X0} {Y0}),"
            f"({X0 + 3} {Y0 - 3},{X0 + 3} {Y0 - 7},{X0 + 7} {Y0 - 7},{X0 + 7} {Y0 - 3},{X0 + 3} {Y0 - 3}))",
            {"code_18": "211"},
        ),
        # pixel (0,1): 40 % / 30 % / 30 % of three classes
        (box(10, 0, 14, 10), {"code_18": "311"}),
        (box(14, 0, 17, 10), {"code_18": "312"}),
        (box(17, 0, 20, 10), {"code_18": "313"}),
        # pixel (0,2): fully inside one polygon
        (box(20, 0, 30, 10), {"code_18": "512"}),
        # pixel (0,3): two overlapping polygons of different classes, the later (231) wins
        (box(30, 0, 40, 10), {"code_18": "211"}),
        (box(30, 0, 40, 10), {"code_18": "231"}),
        # pixel (1,0): two overlapping polygons of the same class: not mixed
        (box(0, 10, 10, 20), {"code_18": "111"}),
        (box(0, 10, 10, 20), {"code_18": "111"}),
        # pixel (1,1): 70 % covered by one class, 30 % outside every polygon
        (box(10, 10, 17, 20), {"code_18": "411"}),
    ]
    src = make_polygons(tmp_path / "hand.gpkg", polys, epsg=UTM32N, fields=STR)
    ref = ref_raster(tmp_path, w=4, h=2)
    res = run_alg(
        "satclassify:rasterizeclc",
        {
            "INPUT": src,
            "REFERENCE": ref,
            "LEVEL": 2,
            "RULE": 2,
            "THRESHOLD": 0.8,
            "OUTPUT": str(tmp_path / "maj.tif"),
            "MIXED": str(tmp_path / "mixed.tif"),
        },
    )
    v = clc.code_to_value(3)
    got = read_raster(res["OUTPUT"])
    assert got.tolist() == [[v[211], v[311], v[512], v[231]], [v[111], v[411], 0, 0]]
    mixed = read_raster(res["MIXED"])
    # exactly 0.84 >= 0.8 -> pure (4 x 4 sub-pixels used to say 12/16 = 0.75); 40 % -> partly covered (1); pure;
    # overlap of different classes -> claimed twice (2); same-class overlap: pure; 70 % -> partly covered (1)
    assert mixed.tolist() == [[0, 1, 0, 2], [0, 1, 0, 0]]
    # the centre rule leaves the holed pixel empty and gives the 3-way pixel to its centre (14..17 -> 312)
    res = run_alg(
        "satclassify:rasterizeclc",
        {"INPUT": src, "REFERENCE": ref, "LEVEL": 2, "RULE": 0, "OUTPUT": str(tmp_path / "cen.tif")},
    )
    assert read_raster(res["OUTPUT"])[0, :2].tolist() == [0, v[312]]


def test_mixed_tells_partly_covered_from_claimed_twice(run_alg, tmp_path):
    """MIXED 1 = partly covered (split between classes, or partly outside every polygon: edge pixels), 2 = claimed
    twice (overlapping polygons of different classes share area: wholly or in part), with category names."""
    polys = [
        (box(0, 0, 25, 10), {"code_18": "211"}),  # pixels (0,0), (0,1) pure; (0,2): 50 % 211, 50 % outside
        (box(0, 10, 15, 20), {"code_18": "211"}),  # pixel (1,1): split 211 | 311 at x = 15 (50/50)
        (box(15, 10, 20, 20), {"code_18": "311"}),
        (box(20, 10, 28, 20), {"code_18": "211"}),  # pixel (1,2): 211 on 0-8, 311 on 2-10: overlap 60 % of it
        (box(22, 10, 30, 20), {"code_18": "311"}),
        (box(30, 0, 40, 20), {"code_18": "512"}),  # pixels (0,3), (1,3): water, and a forest over (1,3) entirely
        (box(30, 10, 40, 20), {"code_18": "311"}),
    ]
    src = make_polygons(tmp_path / "m.gpkg", polys, epsg=UTM32N, fields=STR)
    ref = ref_raster(tmp_path, w=4, h=2)
    log = LogFeedback()
    res = run_alg(
        "satclassify:rasterizeclc",
        {
            "INPUT": src,
            "REFERENCE": ref,
            "LEVEL": 2,
            "RULE": 2,
            "OUTPUT": str(tmp_path / "o.tif"),
            "MIXED": str(tmp_path / "x.tif"),
        },
        feedback=log,
    )
    assert read_raster(res["MIXED"]).tolist() == [[0, 0, 1, 0], [0, 1, 2, 2]]
    ds = gdal.Open(res["MIXED"])
    assert raster.category_names(ds)[:3] == ["pure", "partly covered", "claimed twice"]
    assert ds.GetRasterBand(1).GetNoDataValue() is None  # 0 = pure is a value, not nodata
    text = "\n".join(log.messages)
    assert (
        "mixed pixels: 3 (2 partly covered, 1 claimed twice" in text
        or "mixed pixels: 4 (2 partly covered, 2 claimed twice" in text
    ), text


def test_levels_and_legend(run_alg, tmp_path):
    codes = [112, 211, 311, 512]
    polys = [(box(10 * i, 0, 10 * i + 10, 10), {"code_18": str(c)}) for i, c in enumerate(codes)]
    src = make_polygons(tmp_path / "lv.gpkg", polys, epsg=UTM32N, fields=STR)
    ref = ref_raster(tmp_path, w=4, h=1)
    for idx, level in ((0, 1), (1, 2), (2, 3)):
        out = tmp_path / f"l{level}.tif"
        run_alg("satclassify:rasterizeclc", {"INPUT": src, "REFERENCE": ref, "LEVEL": idx, "OUTPUT": str(out)})
        got = read_raster(out)[0].tolist()
        table = {int(c.code): c for c in clc.classes(level)}
        expected = [table[int(str(c)[:level])].value for c in codes]
        assert got == expected
        names = raster.category_names(gdal.Open(str(out)))
        assert [names[v] for v in got] == [table[int(str(c)[:level])].name for c in codes]
    assert read_raster(tmp_path / "l1.tif")[0].tolist() == [1, 2, 3, 5]
    assert read_raster(tmp_path / "l3.tif")[0].tolist() == [2, 12, 23, 41]


def test_mapping_table(run_alg, tmp_path):
    codes = [112, 211, 311, 312]
    polys = [(box(10 * i, 0, 10 * i + 10, 10), {"code_18": str(c)}) for i, c in enumerate(codes)]
    src = make_polygons(tmp_path / "m.gpkg", polys, epsg=UTM32N, fields=STR)
    csv = tmp_path / "map.csv"
    csv.write_text(
        "code,value,name,color\n1,1,Built-up,#ff0000\n2,2,Farmland,\n311,3,Broad-leaved,0-255-0\n"
        "3,4,Other nature,#00aa00\n",
        encoding="utf-8",
    )
    ref = ref_raster(tmp_path, w=4, h=1)
    out = tmp_path / "map.tif"
    run_alg(
        "satclassify:rasterizeclc",
        {"INPUT": src, "REFERENCE": ref, "LEVEL": 3, "MAPPING": str(csv), "OUTPUT": str(out)},
    )
    assert read_raster(out)[0].tolist() == [1, 2, 3, 4]
    ds = gdal.Open(str(out))
    assert raster.category_names(ds)[:5] == ["no label", "Built-up", "Farmland", "Broad-leaved", "Other nature"]
    assert ds.GetRasterBand(1).GetColorTable().GetColorEntry(3)[:3] == (0, 255, 0)


def test_reprojection_from_laea_to_utm(run_alg, tmp_path):
    # CLC polygons in EPSG:3035 over a UTM 32N grid; the same polygons reprojected first with ogr2ogr
    # and rasterized by gdal_rasterize must give the same pixels
    ref = make_raster(
        tmp_path / "utm.tif", np.zeros((60, 60), np.uint16), origin=(554300.0, 5251750.0), pixel=10.0, epsg=UTM32N
    )
    x, y = 4300000.0, 2700000.0  # near (554460, 5251341) in UTM 32N
    polys = [
        (f"POLYGON(({x} {y},{x + 300} {y + 40},{x + 260} {y + 330},{x - 20} {y + 280},{x} {y}))", {"code_18": "211"}),
        (
            f"POLYGON(({x + 100} {y + 100},{x + 200} {y + 100},{x + 150} {y + 200},{x + 100} {y + 100}))",
            {"code_18": "512"},
        ),
    ]
    src = make_polygons(tmp_path / "laea.gpkg", polys, epsg=LAEA, fields=STR)
    out = tmp_path / "out.tif"
    run_alg("satclassify:rasterizeclc", {"INPUT": src, "REFERENCE": ref, "LEVEL": 2, "OUTPUT": str(out)})
    got = read_raster(out)
    reproj = str(tmp_path / "utm.gpkg")
    gdal.VectorTranslate(reproj, src, dstSRS=wkt(UTM32N), format="GPKG")
    expected = gdal_reference(tmp_path, reproj, ref)
    np.testing.assert_array_equal(got, expected)
    v = clc.code_to_value(3)
    assert (got == v[211]).sum() > 500 and (got == v[512]).sum() > 30
    # majority on the same reprojected polygons: differs from the centre rule only on boundary pixels
    run_alg(
        "satclassify:rasterizeclc",
        {"INPUT": src, "REFERENCE": ref, "LEVEL": 2, "RULE": 2, "OUTPUT": str(tmp_path / "maj.tif")},
    )
    maj = read_raster(tmp_path / "maj.tif")
    assert 0 < (maj != got).sum() < 0.1 * (got > 0).sum()


def test_self_intersecting_polygon_is_filled_as_drawn(run_alg, tmp_path):
    # bow-tie over 40 x 40 pixels: the edges cross at the centre; both lobes are filled (even-odd rule)
    a, b = X0, Y0
    bow = f"POLYGON(({a} {b},{a + 400} {b - 400},{a + 400} {b},{a} {b - 400},{a} {b}))"
    src = make_polygons(tmp_path / "bow.gpkg", [(bow, {"code_18": "211"})], epsg=UTM32N, fields=STR)
    assert not ogr.CreateGeometryFromWkt(bow).IsValid()
    ref = ref_raster(tmp_path)
    out = tmp_path / "bow.tif"
    run_alg("satclassify:rasterizeclc", {"INPUT": src, "REFERENCE": ref, "LEVEL": 2, "OUTPUT": str(out)})
    got = read_raster(out)
    np.testing.assert_array_equal(got, gdal_reference(tmp_path, src, ref))
    v = clc.code_to_value(3)[211]
    assert got[20, 2] == v and got[20, 37] == v  # left and right lobes
    assert got[2, 20] == 0 and got[37, 20] == 0  # top and bottom triangles stay empty
    assert abs((got == v).mean() - 0.5) < 0.05


def test_unknown_codes_are_no_label_with_warning(run_alg, tmp_path):
    polys = [
        (box(0, 0, 10, 10), {"code_18": "211"}),
        (box(10, 0, 20, 10), {"code_18": "47"}),
        (box(20, 0, 30, 10), {"code_18": "abc"}),
        (box(30, 0, 40, 10), {"code_18": "999"}),
        (box(40, 0, 50, 10), {"code_18": "47"}),
    ]
    src = make_polygons(tmp_path / "u.gpkg", polys, epsg=UTM32N, fields=STR)
    ref = ref_raster(tmp_path, w=5, h=1)
    fb = LogFeedback()
    res = run_alg(
        "satclassify:rasterizeclc",
        {"INPUT": src, "REFERENCE": ref, "LEVEL": 0, "OUTPUT": str(tmp_path / "u.tif")},
        feedback=fb,
    )
    assert read_raster(res["OUTPUT"])[0].tolist() == [2, 0, 0, 0, 0]
    assert res["UNKNOWN_FEATURES"] == 3
    assert (
        "WARNING: 3 features have codes that are not CLC level-3 codes and are left as no label (0): "
        "'47' (2), 'abc' (1)" in fb.text
    )
    assert "1 features have no code" in fb.text


def test_integer_code_field_and_shapefile_and_field_override(run_alg, tmp_path):
    polys = [
        (box(0, 0, 10, 10), {"CLC_CODE": 311, "Code_12": 111}),
        (box(10, 0, 20, 10), {"CLC_CODE": 523, "Code_12": 112}),
    ]
    src = make_polygons(
        tmp_path / "shp.shp",
        polys,
        epsg=UTM32N,
        driver="ESRI Shapefile",
        fields={"CLC_CODE": ogr.OFTInteger, "Code_12": ogr.OFTInteger},
    )
    ref = ref_raster(tmp_path, w=2, h=1)
    run_alg("satclassify:rasterizeclc", {"INPUT": src, "REFERENCE": ref, "LEVEL": 2, "OUTPUT": str(tmp_path / "a.tif")})
    assert read_raster(tmp_path / "a.tif")[0].tolist() == [1, 2]  # Code_12 detected before clc_code
    run_alg(
        "satclassify:rasterizeclc",
        {"INPUT": src, "REFERENCE": ref, "LEVEL": 2, "FIELD": "clc_code", "OUTPUT": str(tmp_path / "b.tif")},
    )
    assert read_raster(tmp_path / "b.tif")[0].tolist() == [23, 44]


def test_file_geodatabase_like_the_eea_download(run_alg, tmp_path):
    # the EEA ships CLC as a file geodatabase in EPSG:3035 with a text field Code_18
    polys = [(box(0, 0, 20, 10), {"Code_18": "211"}), (box(20, 0, 40, 10), {"Code_18": "311"})]
    gpkg = make_polygons(
        tmp_path / "src.gpkg", polys, epsg=UTM32N, fields={"Code_18": ogr.OFTString}, layer="U2018_CLC2018_V2020_20u1"
    )
    gdb = str(tmp_path / "clc.gdb")
    gdal.VectorTranslate(gdb, gpkg, format="OpenFileGDB", dstSRS=wkt(LAEA))
    ref = ref_raster(tmp_path, w=4, h=1)
    out = tmp_path / "gdb.tif"
    res = run_alg("satclassify:rasterizeclc", {"INPUT": gdb, "REFERENCE": ref, "LEVEL": 0, "OUTPUT": str(out)})
    assert read_raster(res["OUTPUT"])[0].tolist() == [2, 2, 3, 3]


def test_extent_crs_pixel_size_grid_and_memory_layer(run_alg, tmp_path):
    layer = QgsVectorLayer("Polygon?crs=EPSG:32632&field=code_18:string", "mem", "memory")
    from qgis.core import QgsFeature, QgsGeometry

    f = QgsFeature(layer.fields())
    f.setGeometry(QgsGeometry.fromWkt(box(0, 0, 20, 20)))
    f.setAttributes(["311"])
    layer.dataProvider().addFeatures([f])
    out = tmp_path / "e.tif"
    run_alg(
        "satclassify:rasterizeclc",
        {
            "INPUT": layer,
            "EXTENT": f"{X0},{X0 + 40},{Y0 - 30},{Y0} [EPSG:32632]",
            "PIXEL_SIZE": 5,
            "LEVEL": 0,
            "OUTPUT": str(out),
        },
    )
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize) == (8, 6)
    assert ds.GetGeoTransform() == (X0, 5.0, 0.0, Y0, 0.0, -5.0)
    a = ds.ReadAsArray()
    assert (a[:4, :4] == 3).all() and a.sum() == 3 * 16


def test_geographic_extent_with_metre_pixels_uses_the_utm_zone(run_alg, tmp_path):
    """An EPSG:4326 EXTENT with PIXEL_SIZE 10 used to give a 1 x 1 raster of 10-degree pixels."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRectangle

    src = make_polygons(tmp_path / "c.gpkg", [(box(-200, -200, 600, 600), {"code_18": "311"})], epsg=UTM32N, fields=STR)
    ct = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:32632"), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance()
    )
    r = ct.transformBoundingBox(QgsRectangle(X0, Y0 - 300, X0 + 400, Y0))
    fb = LogFeedback()
    out = tmp_path / "geo.tif"
    run_alg(
        "satclassify:rasterizeclc",
        {
            "INPUT": src,
            "EXTENT": f"{r.xMinimum()},{r.xMaximum()},{r.yMinimum()},{r.yMaximum()} [EPSG:4326]",
            "PIXEL_SIZE": 10,
            "LEVEL": 0,
            "OUTPUT": str(out),
        },
        feedback=fb,
    )
    ds = gdal.Open(str(out))
    gt = ds.GetGeoTransform()
    assert gt[1] == 10.0 and 40 <= ds.RasterXSize <= 45 and 30 <= ds.RasterYSize <= 35
    assert "32632" in ds.GetProjection() or "UTM zone 32N" in ds.GetProjection()
    assert "the grid uses EPSG:32632" in fb.text
    # an explicit geographic TARGET_CRS with metre pixels is refused with the fix; an unknown code too
    ext = f"{r.xMinimum()},{r.xMaximum()},{r.yMinimum()},{r.yMaximum()} [EPSG:4326]"
    _bad(
        run_alg,
        {"INPUT": src, "EXTENT": ext, "TARGET_CRS": "EPSG:4326", "PIXEL_SIZE": 10, "OUTPUT": str(tmp_path / "o.tif")},
        r"TARGET_CRS EPSG:4326 is geographic \(degrees\): a pixel size of 10 would make pixels 10 degrees wide\. "
        r"Choose a projected CRS in metres \(the UTM zone here is EPSG:32632, EPSG:3035 for Europe\), or give the "
        r"pixel size in degrees \(about 0\.000090 for 10 m\)",
    )
    _bad(
        run_alg,
        {"INPUT": src, "EXTENT": ext, "TARGET_CRS": "EPSG:999999", "PIXEL_SIZE": 10, "OUTPUT": str(tmp_path / "o.tif")},
        r"TARGET_CRS 'EPSG:999999' is not a coordinate reference system QGIS knows: check the code",
    )
    # degrees on a geographic CRS are fine
    run_alg(
        "satclassify:rasterizeclc",
        {
            "INPUT": src,
            "EXTENT": ext,
            "TARGET_CRS": "EPSG:4326",
            "PIXEL_SIZE": 0.0001,
            "LEVEL": 0,
            "OUTPUT": str(tmp_path / "deg.tif"),
        },
    )
    assert gdal.Open(str(tmp_path / "deg.tif")).GetGeoTransform()[1] == pytest.approx(0.0001)


def test_clc_raster_input_grid_codes_and_codes(run_alg, tmp_path):
    grid_codes = np.array([[1, 12, 23, 44], [48, 128, 255, 41]], np.uint8)
    src = make_raster(tmp_path / "clc_grid.tif", grid_codes, origin=(X0, Y0), pixel=10.0)
    ref = ref_raster(tmp_path, w=4, h=2)
    run_alg("satclassify:rasterizeclc", {"INPUT": src, "REFERENCE": ref, "LEVEL": 0, "OUTPUT": str(tmp_path / "g.tif")})
    assert read_raster(tmp_path / "g.tif").tolist() == [[1, 2, 3, 5], [0, 0, 0, 5]]
    codes = np.array([[111, 211, 311, 523], [999, 0, 990, 512]], np.uint16)
    src2 = make_raster(tmp_path / "clc_codes.tif", codes, origin=(X0, Y0), pixel=10.0)
    run_alg(
        "satclassify:rasterizeclc", {"INPUT": src2, "REFERENCE": ref, "LEVEL": 2, "OUTPUT": str(tmp_path / "c.tif")}
    )
    v = clc.code_to_value(3)
    assert read_raster(tmp_path / "c.tif").tolist() == [[v[111], v[211], v[311], v[523]], [0, 0, 0, v[512]]]
    # majority on a finer CLC raster: mode of the 2 x 2 source pixels under each output pixel
    fine = np.array([[211, 211, 311, 311], [211, 311, 311, 512]], np.uint16)
    src3 = make_raster(tmp_path / "clc_fine.tif", fine, origin=(X0, Y0), pixel=5.0)
    run_alg(
        "satclassify:rasterizeclc",
        {
            "INPUT": src3,
            "REFERENCE": ref_raster(tmp_path, w=2, h=1),
            "LEVEL": 2,
            "RULE": 2,
            "OUTPUT": str(tmp_path / "mode.tif"),
        },
    )
    assert read_raster(tmp_path / "mode.tif").tolist() == [[v[211], v[311]]]


def test_cancel_leaves_no_output(tmp_path):
    src = make_polygons(tmp_path / "c.gpkg", [(box(0, 0, 400, 400), {"code_18": "211"})], epsg=UTM32N, fields=STR)
    grid = Grid.from_raster(ref_raster(tmp_path))
    out = tmp_path / "cancel.tif"
    for rule in ("centre", "majority"):
        with pytest.raises(Exception, match="cancelled by the user"):
            rasterize_clc(src, str(out), grid, rule=rule, monitor=Monitor(is_canceled=lambda: True))
        assert os.listdir(tmp_path) == ["c.gpkg", "ref.tif"] or not out.exists()
        assert not out.exists()


# -- bad inputs --------------------------------------------------------------------------------------------
@pytest.fixture
def clc_src(tmp_path):
    return make_polygons(tmp_path / "ok.gpkg", [(box(0, 0, 20, 20), {"code_18": "211"})], epsg=UTM32N, fields=STR)


def _bad(run_alg, params, msg):
    with pytest.raises(QgsProcessingException, match=msg):
        run_alg("satclassify:rasterizeclc", params)


def test_bad_empty_layer(run_alg, tmp_path):
    src = make_polygons(tmp_path / "empty.gpkg", [], epsg=UTM32N, fields=STR)
    _bad(
        run_alg,
        {"INPUT": src, "REFERENCE": ref_raster(tmp_path), "OUTPUT": str(tmp_path / "o.tif")},
        "layer 'clc' has no features: nothing to rasterize",
    )
    assert not (tmp_path / "o.tif").exists()


def test_bad_missing_field(run_alg, tmp_path):
    src = make_polygons(
        tmp_path / "nf.gpkg", [(box(0, 0, 20, 20), {"name": "x"})], epsg=UTM32N, fields={"name": ogr.OFTString}
    )
    ref = ref_raster(tmp_path)
    _bad(
        run_alg,
        {"INPUT": src, "REFERENCE": ref, "OUTPUT": str(tmp_path / "o.tif")},
        r"no CLC code field \(code_18, code_12, code_06, ...\) in layer 'clc' \(fields: name\): choose the code "
        r"field \(FIELD\)",
    )
    _bad(
        run_alg,
        {"INPUT": src, "REFERENCE": ref, "FIELD": "code_99", "OUTPUT": str(tmp_path / "o.tif")},
        r"field 'code_99' is not in layer 'clc' \(fields: name\)",
    )


def test_bad_no_known_code(run_alg, tmp_path):
    src = make_polygons(tmp_path / "nk.gpkg", [(box(0, 0, 20, 20), {"code_18": "x1"})], epsg=UTM32N, fields=STR)
    _bad(
        run_alg,
        {"INPUT": src, "REFERENCE": ref_raster(tmp_path), "OUTPUT": str(tmp_path / "o.tif")},
        "none of the 1 features of layer 'clc' has a known CLC code in field 'code_18'",
    )


def test_bad_no_grid(run_alg, tmp_path, clc_src):
    _bad(
        run_alg,
        {"INPUT": clc_src, "OUTPUT": str(tmp_path / "o.tif")},
        r"give a reference raster \(REFERENCE\), or an extent \(EXTENT\)",
    )


def test_bad_polygons_outside_the_grid(run_alg, tmp_path):
    src = make_polygons(tmp_path / "far.gpkg", [(box(5000, 0, 5020, 20), {"code_18": "211"})], epsg=UTM32N, fields=STR)
    _bad(
        run_alg,
        {"INPUT": src, "REFERENCE": ref_raster(tmp_path), "OUTPUT": str(tmp_path / "o.tif")},
        r"no polygon of layer 'clc' overlaps the output grid \(grid bounds in the layer's CRS: 499980, 4999580, "
        r"500420, 5000020; layer extent: 505000, 4999980, 505020, 5000000\): check the reference raster",
    )
    assert not (tmp_path / "o.tif").exists()


def test_bad_mixed_without_majority(run_alg, tmp_path, clc_src):
    _bad(
        run_alg,
        {
            "INPUT": clc_src,
            "REFERENCE": ref_raster(tmp_path),
            "RULE": 0,
            "OUTPUT": str(tmp_path / "o.tif"),
            "MIXED": str(tmp_path / "m.tif"),
        },
        "the mixed-pixel raster needs the majority rule",
    )


def test_bad_mapping_level_without_table(run_alg, tmp_path, clc_src):
    _bad(
        run_alg,
        {"INPUT": clc_src, "REFERENCE": ref_raster(tmp_path), "LEVEL": 3, "OUTPUT": str(tmp_path / "o.tif")},
        r"no mapping table \(MAPPING\) was given",
    )


def test_bad_mapping_table_line(run_alg, tmp_path, clc_src):
    csv = tmp_path / "bad.csv"
    csv.write_text("code,value,name\n21,300,Arable\n", encoding="utf-8")
    _bad(
        run_alg,
        {"INPUT": clc_src, "REFERENCE": ref_raster(tmp_path), "MAPPING": str(csv), "OUTPUT": str(tmp_path / "o.tif")},
        r"mapping table line 2: value 300 out of range 1..255",
    )


def test_bad_all_touched_on_raster(run_alg, tmp_path):
    src = make_raster(tmp_path / "g.tif", np.ones((4, 4), np.uint8), origin=(X0, Y0))
    _bad(
        run_alg,
        {"INPUT": src, "REFERENCE": ref_raster(tmp_path), "RULE": 1, "OUTPUT": str(tmp_path / "o.tif")},
        "the all-touched rule applies to polygons",
    )


def test_bad_line_layer(tmp_path):
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "lines.gpkg"))
    lyr = ds.CreateLayer("roads", None, ogr.wkbLineString)
    lyr.CreateField(ogr.FieldDefn("code_18", ogr.OFTString))
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetGeometry(ogr.CreateGeometryFromWkt(f"LINESTRING({X0} {Y0},{X0 + 10} {Y0 - 10})"))
    f.SetField(0, "122")
    lyr.CreateFeature(f)
    ds = None
    with pytest.raises(Exception, match="layer 'roads' has Line String geometries: CORINE Land Cover needs polygons"):
        rasterize_clc(str(tmp_path / "lines.gpkg"), str(tmp_path / "o.tif"), Grid.from_raster(ref_raster(tmp_path)))


def test_bad_grid_values(tmp_path):
    with pytest.raises(Exception, match="pixel size must be positive"):
        Grid.from_extent((0, 0, 10, 10), wkt(UTM32N), 0)
    with pytest.raises(Exception, match="is empty"):
        Grid.from_extent((10, 0, 0, 10), wkt(UTM32N), 1)
    with pytest.raises(Exception, match="cannot open CLC input"):
        rasterize_clc(str(tmp_path / "nope.gpkg"), str(tmp_path / "o.tif"), Grid(1, 1, (0, 1, 0, 0, 0, -1), ""))


# -- GUI entry and qgis_process ------------------------------------------------------------------------------
def test_layer_action_opens_dialog_with_input(plugin, tmp_path, clc_src):
    from qgis.core import QgsProject

    layer = QgsVectorLayer(clc_src, "clc", "ogr")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    try:
        dialog = plugin.open_dialog_for_layer("satclassify:rasterizeclc", "INPUT", layer)
        assert dialog is not None and dialog.algorithm().id() == "satclassify:rasterizeclc"
        value = dialog.mainWidget().wrappers["INPUT"].parameterValue()
        assert value in (layer, layer.id()) or getattr(value, "id", lambda: None)() == layer.id()
        dialog.close()
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_rasterizeclc_with_qgis_process(tmp_path, clc_src):
    ref = ref_raster(tmp_path, w=4, h=4)
    out = tmp_path / "qp.tif"
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [
            os.path.join(ROOT, "scripts", "qgis_process.sh"),
            "run",
            "satclassify:rasterizeclc",
            "--",
            f"INPUT={clc_src}",
            f"REFERENCE={ref}",
            "LEVEL=0",
            "RULE=2",
            f"OUTPUT={out}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"OUTPUT:\t{out}" in proc.stdout
    a = read_raster(out)
    assert a[:2, :2].tolist() == [[2, 2], [2, 2]] and a.sum() == 8
