"""satclassify:samplingdesign: stratified random points on a class raster (values, geometry, CRS, fields,
allocation, seed) and its fault cases."""

import json
import math
import os

import numpy as np
import pytest
from osgeo import ogr

from satclassify_plugin.core.contract.feedback import Monitor
from tests.rasters import make_class_raster, make_raster

ALG = "satclassify:samplingdesign"
CLASSES = [
    {"value": 1, "name": "Water", "color": "#0000ff"},
    {"value": 2, "name": "Forest", "color": "#00a000"},
    {"value": 3, "name": "Urban", "color": "#e6004d"},
]


def class_map(path, a):
    return make_class_raster(path, a, CLASSES)


@pytest.fixture
def cmap(tmp_path):
    a = np.full((80, 100), 2, np.uint8)
    a[:, :30] = 1  # 2400 water (2340 outside the nodata rows)
    a[:3, 90:] = 3  # 30 urban (rare)
    a[40:50, 40:50] = 0  # 100 ignored (0)
    a[60:62, :] = 255  # 200 nodata
    return class_map(tmp_path / "map.tif", a), a


def points_of(path):
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    rows = []
    for f in lyr:
        g = f.GetGeometryRef()
        rows.append(
            {
                "x": g.GetX(),
                "y": g.GetY(),
                **{k: f.GetField(k) for k in ("point_id", "stratum", "stratum_name", "reference", "row", "col")},
                "ref_null": f.IsFieldNull("reference"),
            }
        )
    defn = lyr.GetLayerDefn()
    types = {defn.GetFieldDefn(i).GetName(): defn.GetFieldDefn(i).GetType() for i in range(defn.GetFieldCount())}
    meta = lyr.GetMetadataItem("SATCLASSIFY_STRATA")
    srs = lyr.GetSpatialRef()
    epsg = srs.GetAuthorityCode(None) if srs else None
    gtype = lyr.GetGeomType()
    ds = None
    return rows, types, json.loads(meta), epsg, gtype


def run(run_alg, tmp_path, source, name="s", **params):
    out = {"OUTPUT": str(tmp_path / f"{name}.gpkg"), "OUTPUT_STRATA": str(tmp_path / f"{name}.json")}
    res = run_alg(ALG, {"INPUT": source, **params, **out})
    with open(res["OUTPUT_STRATA"], encoding="utf-8") as f:
        return res, json.load(f)


def test_target_se_allocation_points_geometry_and_fields(run_alg, tmp_path, cmap):
    src, a = cmap
    res, meta = run(run_alg, tmp_path, src, TARGET_SE=0.02, EXPECTED_UA=0.8, MIN_PER_CLASS=20, SEED=5)
    pixels = {1: 2400 - 2 * 30, 2: 8000 - 2340 - 30 - 100 - 200, 3: 30}  # the nodata rows cross the water
    total = sum(pixels.values())
    # eq. 13 by hand: every class expects U = 0.8, so S_i = 0.4 for all and n = (0.4 / 0.02)^2 = 400
    assert meta["design"]["n_from_target_se"] == 400
    # 20 points for the rare class, the other 380 proportional to the areas of water and forest
    rest = 380 * np.array([pixels[1], pixels[2]]) / (pixels[1] + pixels[2])
    assert meta["design"]["points_per_stratum"] == {"1": round(rest[0]), "2": round(rest[1]), "3": 20}
    assert res["POINTS"] == 400
    assert [(s["value"], s["name"], s["pixels"]) for s in meta["strata"]] == [
        (1, "Water", pixels[1]),
        (2, "Forest", pixels[2]),
        (3, "Urban", 30),
    ]
    for s in meta["strata"]:
        assert s["area_ha"] == pytest.approx(s["pixels"] * 0.01) and s["weight"] == pytest.approx(s["pixels"] / total)
    assert meta["point_location"] == "pixel centre" and meta["seed"] == 5 and meta["pixel_area_ha"] == 0.01
    rows, types, layer_meta, epsg, gtype = points_of(res["OUTPUT"])
    assert layer_meta == meta  # the same strata table in the layer's metadata
    assert epsg == "32632" and ogr.GT_Flatten(gtype) == ogr.wkbPoint
    assert types == {
        "point_id": ogr.OFTInteger,
        "stratum": ogr.OFTInteger,
        "stratum_name": ogr.OFTString,
        "reference": ogr.OFTInteger,
        "row": ogr.OFTInteger,
        "col": ogr.OFTInteger,
    }
    assert len(rows) == 400 and sorted(r["point_id"] for r in rows) == list(range(1, 401))
    assert all(r["ref_null"] for r in rows)
    cells = set()
    for r in rows:
        # the centre of the pixel (row, col), in the raster's CRS, and the stratum is the map value there
        assert r["x"] == 500000 + 10 * (r["col"] + 0.5) and r["y"] == 5000000 - 10 * (r["row"] + 0.5)
        assert a[r["row"], r["col"]] == r["stratum"]
        assert r["stratum_name"] == {1: "Water", 2: "Forest", 3: "Urban"}[r["stratum"]]
        cells.add((r["row"], r["col"]))
    assert len(cells) == 400  # distinct pixels
    counts = {v: sum(r["stratum"] == v for r in rows) for v in (1, 2, 3)}
    assert counts == {1: round(rest[0]), 2: round(rest[1]), 3: 20}


def test_seed_reproducible_and_independent_of_block_size(run_alg, tmp_path, cmap):
    from satclassify_plugin.core.accuracy.sampling import SamplingOptions, sampling_design

    src, _ = cmap
    run(run_alg, tmp_path, src, "a", METHOD=1, TOTAL=60, MIN_PER_CLASS=5, SEED=11)
    run(run_alg, tmp_path, src, "b", METHOD=1, TOTAL=60, MIN_PER_CLASS=5, SEED=11)
    run(run_alg, tmp_path, src, "c", METHOD=1, TOTAL=60, MIN_PER_CLASS=5, SEED=12)
    sampling_design(
        src, str(tmp_path / "d.gpkg"), options=SamplingOptions(method="total", total=60, minimum=5, seed=11, block=7)
    )
    key = [[(r["row"], r["col"], r["stratum"]) for r in points_of(tmp_path / f"{n}.gpkg")[0]] for n in "abcd"]
    assert key[0] == key[1] == key[3] and key[0] != key[2]


def test_rare_class_gets_all_its_pixels_and_equal_allocation(run_alg, tmp_path, cmap):
    src, _ = cmap
    res, meta = run(run_alg, tmp_path, src, METHOD=1, TOTAL=150, ALLOCATION=1, MIN_PER_CLASS=0)
    # urban has only 30 pixels: all of them, and the other two classes share the rest of the 150 equally
    assert meta["design"]["points_per_stratum"] == {"1": 60, "2": 60, "3": 30}
    assert res["POINTS"] == 150


def test_counts_table(run_alg, tmp_path, cmap):
    src, _ = cmap
    t = tmp_path / "counts.csv"
    t.write_text("value,count\n1,4\n3,7\n9,5\n", encoding="utf-8")
    from satclassify_plugin.core.accuracy.sampling import SamplingOptions, sampling_design

    res, meta = run(run_alg, tmp_path, src, METHOD=2, COUNTS=str(t))
    assert meta["design"]["points_per_stratum"] == {"1": 4, "2": 0, "3": 7}
    logs = []
    sampling_design(
        src, None, options=SamplingOptions(method="counts", counts_table=str(t)), monitor=Monitor(info=logs.append)
    )
    assert "WARNING: the COUNTS table names class value(s) [9] that the map does not hold: skipped" in logs
    assert any(m.startswith("WARNING: class value(s) [2] get no sample point") for m in logs)
    rows = points_of(res["OUTPUT"])[0]
    assert sorted(r["stratum"] for r in rows) == [1] * 4 + [3] * 7


def test_expected_ua_table(run_alg, tmp_path, cmap):
    src, _ = cmap
    t = tmp_path / "ua.csv"
    t.write_text("value,expected_ua\n3,0.5\n", encoding="utf-8")
    _, meta = run(run_alg, tmp_path, src, EXPECTED_UA=0.9, EXPECTED_UA_TABLE=str(t), TARGET_SE=0.01, MIN_PER_CLASS=0)
    w = np.array([2340, 5330, 30]) / 7700
    s = np.sqrt(np.array([0.9 * 0.1, 0.9 * 0.1, 0.5 * 0.5]))
    assert meta["design"]["n_from_target_se"] == math.ceil(round(float((w @ s / 0.01) ** 2), 6))
    assert meta["design"]["expected_users_accuracy"] == {"1": 0.9, "2": 0.9, "3": 0.5}


def run_error(run_alg, tmp_path, **params):
    from qgis.core import QgsProcessingException

    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, {**params, "OUTPUT": str(out / "p.gpkg"), "OUTPUT_STRATA": str(out / "p.json")})
    assert not out.exists() or os.listdir(out) == []
    return str(e.value)


def test_fault_cases(run_alg, tmp_path, cmap):
    src, _ = cmap
    assert run_error(run_alg, tmp_path, INPUT=src, METHOD=2) == (
        "METHOD 'counts per class' needs the COUNTS table (CSV value,count)"
    )
    empty = class_map(tmp_path / "empty.tif", np.zeros((5, 5), np.uint8))
    assert "has no pixel outside nodata and IGNORE ([0]): there is nothing to sample" in run_error(
        run_alg, tmp_path, INPUT=empty
    )
    geo = make_raster(tmp_path / "geo.tif", np.ones((4, 4), np.uint8), origin=(10.0, 50.0), pixel=0.001, epsg=4326)
    assert "is in a geographic CRS (degrees), so its pixel areas in hectares are unknown" in run_error(
        run_alg, tmp_path, INPUT=geo
    )
    f = make_raster(tmp_path / "f.tif", np.ones((4, 4), np.float32))
    assert "holds Float32 values, but a class raster must hold integers" in run_error(run_alg, tmp_path, INPUT=f)
    image = make_raster(tmp_path / "image.tif", np.arange(1, 401, dtype=np.uint16).reshape(20, 20))
    assert "holds 400 distinct values: that is an image, not a class map" in run_error(run_alg, tmp_path, INPUT=image)
    t = tmp_path / "bad.csv"
    t.write_text("value,count\n1,many\n", encoding="utf-8")
    assert run_error(run_alg, tmp_path, INPUT=src, METHOD=2, COUNTS=str(t)) == (
        f"counts table '{t}' line 2: count 'many' is not a whole number"
    )
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="written as a GeoPackage: name the file .gpkg"):
        run_alg(ALG, {"INPUT": src, "OUTPUT": str(tmp_path / "p.shp"), "OUTPUT_STRATA": str(tmp_path / "p.json")})
    assert not (tmp_path / "p.json").exists()


def test_cancel_leaves_no_output(run_alg, tmp_path, cmap):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    fb = QgsProcessingFeedback()
    fb.cancel()
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="cancelled by the user: no output was written"):
        run_alg(
            ALG, {"INPUT": cmap[0], "OUTPUT": str(out / "p.gpkg"), "OUTPUT_STRATA": str(out / "p.json")}, feedback=fb
        )
    assert not out.exists() or os.listdir(out) == []
