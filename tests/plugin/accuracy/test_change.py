"""satclassify:landcoverchange: from-to raster and legend, change matrix in ha, change polygons with a minimum
mapping unit, map update candidates, grids that differ, and the fault cases."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr

from satclassify_plugin.core import raster
from tests.rasters import make_class_raster, make_raster

ALG = "satclassify:landcoverchange"
CLASSES = [
    {"value": 1, "name": "Water", "color": "#0000ff"},
    {"value": 2, "name": "Forest", "color": "#00a000"},
    {"value": 3, "name": "Urban", "color": "#e6004d"},
]


def class_map(path, a, pixel=10.0, origin=(500000.0, 5000000.0)):
    return make_class_raster(path, a, CLASSES, pixel=pixel, origin=origin)


def maps():
    """100 x 100 pixels of 10 m (1 ha = 100 pixels): water | forest, and the second date with three patches."""
    a = np.full((100, 100), 1, np.uint8)
    a[:, 50:] = 2
    b = a.copy()
    b[0:30, 0:30] = 3  # A: water -> urban, 9 ha
    b[60:80, 60:80] = 1  # B: forest -> water, 4 ha
    b[90:100, 0:10] = 2  # C: water -> forest, 1 ha
    b[99, 50:] = 255  # nodata in the second map: not compared
    return a, b


def outputs(tmp_path, candidates=False):
    o = {
        "OUTPUT": str(tmp_path / "fromto.tif"),
        "OUTPUT_MATRIX": str(tmp_path / "change.csv"),
        "OUTPUT_JSON": str(tmp_path / "change.json"),
        "OUTPUT_POLYGONS": str(tmp_path / "change.gpkg"),
    }
    if candidates:
        o["OUTPUT_CANDIDATES"] = str(tmp_path / "candidates.gpkg")
    return o


def polygons(path):
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    out = []
    for f in lyr:
        g = f.GetGeometryRef()
        out.append(
            {k: f.GetField(k) for k in ("from_value", "from_name", "to_value", "to_name", "change", "area_ha")}
            | {"envelope": g.GetEnvelope(), "area": g.GetArea()}
        )
    epsg = lyr.GetSpatialRef().GetAuthorityCode(None)
    ds = None
    return sorted(out, key=lambda p: -p["area_ha"]), epsg


def run(run_alg, tmp_path, **params):
    res = run_alg(ALG, {**params, **outputs(tmp_path, "CONFIDENCE" in params)})
    return res, json.loads(Path(res["OUTPUT_JSON"]).read_text(encoding="utf-8"))


def test_from_to_raster_matrix_and_polygons_with_the_default_mmu(run_alg, tmp_path):
    a, b = maps()
    res, s = run(run_alg, tmp_path, FIRST=class_map(tmp_path / "t1.tif", a), SECOND=class_map(tmp_path / "t2.tif", b))
    # rows = from (water, forest), columns = to (water, forest, urban), pixels and hectares (0.01 ha a pixel)
    assert s["matrix_pixels"] == [[4000, 100, 900], [400, 4550, 0]]
    assert np.asarray(s["matrix_ha"]) == pytest.approx(np.array([[40, 1, 9], [4, 45.5, 0]]))
    assert s["changed_ha"] == pytest.approx(14.0) and s["compared_ha"] == pytest.approx(99.5)
    assert res["CHANGED_HA"] == pytest.approx(14.0) and res["COMPARED_HA"] == pytest.approx(99.5)
    assert Path(res["OUTPUT_MATRIX"]).read_text(encoding="utf-8").splitlines() == [
        "from_value,from_name,1 Water,2 Forest,3 Urban,total",
        "1,Water,40.0000,1.0000,9.0000,50.0000",
        "2,Forest,4.0000,45.5000,0.0000,49.5000",
        "total,,44.0000,46.5000,9.0000,99.5000",
    ]
    # the from-to raster: compact index over the pairs that occur, legend "from -> to", 0 = not compared
    names = [c["name"] for c in s["categories"]]
    assert names == ["Water -> Water", "Water -> Forest", "Water -> Urban", "Forest -> Water", "Forest -> Forest"]
    assert [c["changed"] for c in s["categories"]] == [False, True, True, True, False]
    assert s["categories"][2]["color"] == "#e6004d"  # changed: colour of the new class
    ds = gdal.Open(res["OUTPUT"])
    assert ds.GetGeoTransform() == (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
    assert raster.srs_of(ds).GetAuthorityCode(None) == "32632"
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 0
    assert raster.category_names(ds)[:6] == ["not compared"] + names
    assert band.GetRasterColorTable().GetColorEntry(3)[:3] == (0xE6, 0x00, 0x4D)
    ft = band.ReadAsArray()
    code = {(c["from"], c["to"]): c["value"] for c in s["categories"]}
    expected = np.vectorize(lambda x, y: code.get((x, y), 0))(a, b)
    expected[99, 50:] = 0
    assert (ft == expected).all()
    ds = band = None
    # default MMU 5 ha: only patch A (9 ha) is a polygon; B (4 ha) and C (1 ha) were merged into their surroundings
    polys, epsg = polygons(res["OUTPUT_POLYGONS"])
    assert epsg == "32632" and s["mmu_ha"] == 5.0 and s["mmu_pixels"] == 500
    assert [(p["from_value"], p["from_name"], p["to_value"], p["to_name"], p["change"]) for p in polys] == [
        (1, "Water", 3, "Urban", "Water -> Urban")
    ]
    assert polys[0]["area_ha"] == pytest.approx(9.0) and polys[0]["area"] == pytest.approx(90000.0)
    assert polys[0]["envelope"] == (500000.0, 500300.0, 4999700.0, 5000000.0)


def test_smaller_mmu_keeps_every_patch_at_least_that_large(run_alg, tmp_path):
    a, b = maps()
    _, s = run(
        run_alg, tmp_path, FIRST=class_map(tmp_path / "t1.tif", a), SECOND=class_map(tmp_path / "t2.tif", b), MMU=1.0
    )
    polys, _ = polygons(tmp_path / "change.gpkg")
    assert [(p["change"], round(p["area_ha"], 6)) for p in polys] == [
        ("Water -> Urban", 9.0),
        ("Forest -> Water", 4.0),
        ("Water -> Forest", 1.0),
    ]
    assert all(p["area_ha"] >= 1.0 for p in polys) and s["change_polygons"]["polygons"] == 3
    # a 3-pixel patch is below 1 ha: merged away, the raster keeps it
    b2 = b.copy()
    b2[40, 10:13] = 3
    out = tmp_path / "small"
    res = run_alg(
        ALG,
        {
            "FIRST": class_map(tmp_path / "t1.tif", a),
            "SECOND": class_map(tmp_path / "s2.tif", b2),
            "MMU": 1.0,
            **outputs(out),
        },
    )
    polys, _ = polygons(res["OUTPUT_POLYGONS"])
    assert len(polys) == 3 and min(p["area_ha"] for p in polys) >= 1.0
    assert (gdal.Open(res["OUTPUT"]).ReadAsArray()[40, 10:13] == 3).all()  # Water -> Urban in the raster


def test_update_candidates_from_a_confidence_raster(run_alg, tmp_path):
    a, b = maps()
    conf = np.full((100, 100), 90, np.uint8)
    conf[0:30, 0:15] = 50  # the left half of patch A is not confident
    conf[90:100, 0:10] = 79  # patch C just below the threshold
    conf[70:80, 60:80] = 255  # nodata: the lower half of B is no candidate
    params = {
        "FIRST": class_map(tmp_path / "t1.tif", a),
        "SECOND": class_map(tmp_path / "t2.tif", b),
        "MMU": 1.0,
        "THRESHOLD": 80,
    }
    for name, c in (
        ("pct", make_raster(tmp_path / "conf.tif", conf, nodata=255)),
        (
            "frac",
            make_raster(tmp_path / "conf01.tif", np.where(conf == 255, -1, conf / 100.0).astype(np.float32), nodata=-1),
        ),
    ):
        res, s = run(run_alg, tmp_path / name, **params, CONFIDENCE=c)
        polys, epsg = polygons(res["OUTPUT_CANDIDATES"])
        assert epsg == "32632"
        assert [(p["change"], round(p["area_ha"], 6)) for p in polys] == [
            ("Water -> Urban", 4.5),
            ("Forest -> Water", 2.0),
        ], name
        assert polys[0]["envelope"] == (500150.0, 500300.0, 4999700.0, 5000000.0)
        assert s["update_candidates"]["pixels"] == 650 and s["confidence_threshold_percent"] == 80.0
        ds = ogr.Open(res["OUTPUT_CANDIDATES"])  # kept while its layer is read (GDAL < 3.8 crashes otherwise)
        assert ds.GetLayer(0).GetNextFeature().GetField("confidence_threshold") == 80.0
        ds = None


def test_second_raster_on_another_grid_is_warped_nearest(run_alg, tmp_path):
    a, b = maps()
    # the second map at 20 m covering the upper half only: every 20 m pixel is 2 x 2 pixels of the first grid
    b20 = b[:50:2, ::2]
    res, s = run(
        run_alg,
        tmp_path,
        FIRST=class_map(tmp_path / "t1.tif", a),
        SECOND=class_map(tmp_path / "t2_20m.tif", b20, pixel=20.0),
        MMU=0,
    )
    assert s["second_warped"] is True
    up = np.repeat(np.repeat(b20, 2, axis=0), 2, axis=1)
    pairs = {}
    for x, y in zip(a[:50].ravel(), up.ravel()):
        pairs[(int(x), int(y))] = pairs.get((int(x), int(y)), 0) + 1
    assert {(c["from"], c["to"]): c["pixels"] for c in s["categories"]} == pairs
    ft = gdal.Open(res["OUTPUT"]).ReadAsArray()
    assert (ft[50:] == 0).all() and (ft[:50] > 0).all()  # outside the second map: not compared
    assert s["compared_ha"] == pytest.approx(50.0)


def run_error(run_alg, tmp_path, **params):
    from qgis.core import QgsProcessingException

    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as e:
        run_alg(
            ALG,
            {**params, **outputs(out, "OUTPUT_CANDIDATES" in params or "CONFIDENCE" in params)}
            if "OUTPUT_CANDIDATES" not in params
            else {**outputs(out), **params},
        )
    assert not out.exists() or not [f for f in os.listdir(out) if not f.endswith(".aux.xml")]
    return str(e.value)


def test_fault_cases(run_alg, tmp_path):
    a, b = maps()
    t1, t2 = class_map(tmp_path / "t1.tif", a), class_map(tmp_path / "t2.tif", b)
    msg = run_error(run_alg, tmp_path, FIRST=t1, SECOND=t2, OUTPUT_CANDIDATES=str(tmp_path / "out" / "c.gpkg"))
    assert msg.startswith("OUTPUT_CANDIDATES (map update candidates) needs a CONFIDENCE raster")
    far = class_map(tmp_path / "far.tif", b, origin=(700000.0, 5000000.0))
    assert run_error(run_alg, tmp_path, FIRST=t1, SECOND=far).startswith(
        "the second raster does not overlap the first raster (first extent (500000.0, 4999000.0, 501000.0, 5000000.0)"
    )
    geo = make_raster(tmp_path / "geo.tif", a, origin=(10.0, 50.0), pixel=0.0001, epsg=4326)
    assert "is in a geographic CRS (degrees), so its pixel areas in hectares are unknown" in run_error(
        run_alg, tmp_path, FIRST=geo, SECOND=geo
    )
    empty = class_map(tmp_path / "empty.tif", np.zeros((100, 100), np.uint8))
    assert run_error(run_alg, tmp_path, FIRST=t1, SECOND=empty) == (
        f"the second raster '{empty}' has no class pixel outside nodata and IGNORE ([0])"
    )
    image = make_raster(tmp_path / "image.tif", np.arange(1, 10001, dtype=np.uint16).reshape(100, 100))
    assert f"the second raster '{image}' holds 10000 distinct values: that is an image, not a class map" in run_error(
        run_alg, tmp_path, FIRST=t1, SECOND=image
    )
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="the polygons are written as a GeoPackage"):
        run_alg(
            ALG,
            {
                "FIRST": t1,
                "SECOND": t2,
                **outputs(tmp_path / "shp"),
                "OUTPUT_POLYGONS": str(tmp_path / "shp" / "p.shp"),
            },
        )
    assert not (tmp_path / "shp").exists()


def test_cancel_leaves_no_output_and_no_temporary_file(run_alg, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    a, b = maps()
    t1, t2 = class_map(tmp_path / "t1.tif", a), class_map(tmp_path / "t2.tif", b)
    fb = QgsProcessingFeedback()
    fb.cancel()
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="cancelled by the user: no output was written"):
        run_alg(ALG, {"FIRST": t1, "SECOND": t2, **outputs(out)}, feedback=fb)
    assert not out.exists() or os.listdir(out) == []


def test_cancel_during_the_polygons_removes_the_temporary_rasters(run_alg, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    a, b = maps()
    t1, t2 = class_map(tmp_path / "t1.tif", a), class_map(tmp_path / "t2.tif", b)
    fb = QgsProcessingFeedback()
    fb.progressChanged.connect(lambda p: fb.cancel() if p >= 60 else None)  # after the raster pass
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="cancelled by the user: no output was written"):
        run_alg(ALG, {"FIRST": t1, "SECOND": t2, **outputs(out)}, feedback=fb)
    assert os.listdir(out) == []  # nothing, not even the from-to raster written before the cancel


def test_more_than_255_from_to_pairs_make_a_uint16_raster_with_category_names(run_alg, tmp_path):
    classes = [{"value": v, "name": f"c{v}", "color": "#%02x%02x80" % (v * 10, 250 - v * 10)} for v in range(1, 21)]
    yy, xx = np.mgrid[0:40, 0:40]
    a = (1 + (yy // 2)).astype(np.uint8)  # 20 classes in rows
    b = (1 + (xx // 2)).astype(np.uint8)  # 20 classes in columns: all 400 pairs occur
    res, s = run(
        run_alg,
        tmp_path,
        FIRST=make_class_raster(tmp_path / "a.tif", a, classes),
        SECOND=make_class_raster(tmp_path / "b.tif", b, classes),
        MMU=0,
    )
    assert len(s["categories"]) == 400
    ds = gdal.Open(res["OUTPUT"])
    assert ds.GetRasterBand(1).DataType == gdal.GDT_UInt16
    names = raster.category_names(ds)
    assert len(names) == 401 and names[0] == "not compared" and names[400] == "c20 -> c20"
    ft = ds.ReadAsArray()
    ds = None
    code = {(c["from"], c["to"]): c["value"] for c in s["categories"]}
    assert ft[5, 7] == code[(3, 4)] and ft[39, 39] == 400
    assert s["change_polygons"]["polygons"] == 380  # every changed 2 x 2 block (MMU 0: no sieve)


def test_web_mercator_areas_are_ground_hectares(run_alg, tmp_path):
    """Issue 25 item 7: EPSG:3857 map units are not ground metres (at 70 N a 10 x 10 unit pixel covers 11.8 m^2,
    not 100): the matrix and the polygons give ground hectares."""
    import math

    y = 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(70.0) / 2))
    a, b = maps()
    t1 = make_class_raster(tmp_path / "t1.tif", a, CLASSES, origin=(1000000.0, y), epsg=3857)
    t2 = make_class_raster(tmp_path / "t2.tif", b, CLASSES, origin=(1000000.0, y), epsg=3857)
    res, s = run(run_alg, tmp_path, FIRST=t1, SECOND=t2, MMU=0.5)
    px_ha = s["pixel_area_ha"]
    assert px_ha * 1e4 == pytest.approx(100.0 * math.cos(math.radians(70.0)) ** 2, rel=0.01)  # 11.8 m^2
    assert s["matrix_ha"][0][2] == pytest.approx(900 * px_ha)  # patch A: 1.06 ha, not 9
    polys, _ = polygons(res["OUTPUT_POLYGONS"])
    assert len(polys) == 1 and polys[0]["area_ha"] == pytest.approx(900 * px_ha, rel=1e-6)  # B (0.47 ha) dropped
