"""satclassify:assessaccuracy: each bad input stops with its exact message and writes no output."""

import os

import numpy as np
import pytest

from tests.rasters import make_raster

ALG = "satclassify:assessaccuracy"


@pytest.fixture
def data(tmp_path):
    a = np.array([[1, 2], [2, 1]], np.uint8)
    return {"tmp": tmp_path, "c": make_raster(tmp_path / "c.tif", a), "r": make_raster(tmp_path / "r.tif", a)}


def run_error(run_alg, data, **params):
    from qgis.core import QgsProcessingException

    out = data["tmp"] / "out"
    params = {
        "CLASSIFIED": data["c"],
        "REFERENCE": data["r"],
        **params,
        "OUTPUT_MATRIX": str(out / "m.csv"),
        "OUTPUT_METRICS": str(out / "m.json"),
        "OUTPUT_REPORT": str(out / "m.html"),
    }
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, params)
    assert not out.exists() or os.listdir(out) == []  # no (partial) output of any kind
    return str(e.value)


def test_missing_file(run_alg, data):
    from satclassify_plugin.core.accuracy.assess import assess
    from satclassify_plugin.core.contract.errors import SatClassifyError

    missing = str(data["tmp"] / "nope.tif")
    # Processing checks layer parameters itself before the tool runs
    for key in ("CLASSIFIED", "REFERENCE", "MASK"):
        assert run_error(run_alg, data, **{key: missing}) == (
            f"Unable to execute algorithm\nCould not load source layer for {key}: {missing} not found"
        )
    # the core (Python / other callers) names the raster
    for kw, what in (
        ({"classified": missing}, "classified"),
        ({"reference": missing}, "reference"),
        ({"mask": missing}, "mask"),
    ):
        args = {"classified": data["c"], "reference": data["r"], **kw}
        with pytest.raises(SatClassifyError) as e:
            assess(**args)
        assert str(e.value) == f"the {what} raster '{missing}' does not exist"


def test_float_raster(run_alg, data):
    f = make_raster(data["tmp"] / "f.tif", np.array([[1.0, 2.5], [2, 1]], np.float32))
    assert run_error(run_alg, data, REFERENCE=f) == (
        f"the reference raster '{f}' holds Float32 values, but a class raster must hold integers: convert it "
        "(e.g. Raster > Conversion > Translate with output type Byte or UInt16)"
    )


def test_bad_reclassify_csv(run_alg, data):
    t = data["tmp"] / "recl.csv"
    t.write_text("class,to\n1,2\n", encoding="utf-8")
    assert run_error(run_alg, data, RECLASSIFY=str(t)) == (
        f"reclassify table '{t}': missing column(s) map, from; the first line must be the header 'map,from,to' "
        "(map = classified, reference or both), found 'class,to'"
    )
    t.write_text("map,from,to\nclassified,1,one\n", encoding="utf-8")
    assert run_error(run_alg, data, RECLASSIFY=str(t)) == (
        f"reclassify table '{t}' line 2: to 'one' is not an integer class value"
    )
    t.write_text("map,from,to\nprediction,1,1\n", encoding="utf-8")
    assert run_error(run_alg, data, RECLASSIFY=str(t)) == (
        f"reclassify table '{t}' line 2: map 'prediction' must be classified, reference or both"
    )


def test_rasters_not_overlapping(run_alg, data):
    far = make_raster(data["tmp"] / "far.tif", np.ones((2, 2), np.uint8), origin=(600000.0, 5000000.0))
    assert run_error(run_alg, data, REFERENCE=far) == (
        "the reference raster does not overlap the classified raster (classified extent (500000.0, 4999980.0, "
        "500020.0, 5000000.0), reference extent (600000.0, 4999980.0, 600020.0, 5000000.0) in the classified "
        "raster's CRS): choose rasters covering the same area"
    )
    assert run_error(run_alg, data, MASK=far).startswith("the mask raster does not overlap the classified raster")


@pytest.mark.parametrize("scale", [0, -3])
def test_scale_below_one(run_alg, data, scale):
    assert run_error(run_alg, data, SCALE=scale) == (
        f"SCALE must be an integer >= 1 (1 = compare pixel by pixel), got {float(scale)!r}"
    )


def test_bad_ignore_list(run_alg, data):
    assert run_error(run_alg, data, IGNORE="0, none") == (
        "IGNORE must be a comma-separated list of integer class values (e.g. '0, 255'), 'none' is not a number"
    )


def test_level_on_values_that_are_no_clc(run_alg, data):
    r = make_raster(data["tmp"] / "r200.tif", np.array([[1, 200], [2, 1]], np.uint8))
    assert run_error(run_alg, data, REFERENCE=r, LEVEL=1) == (
        "CLC LEVEL needs level-3 CLC values in the reference map: grid codes 1..44 or codes 111..523, but it holds "
        "values 1..200; leave LEVEL empty, or apply LEVEL only to the other map"
    )


def test_reference_without_crs_on_another_grid(run_alg, data):
    r = make_raster(data["tmp"] / "nocrs.tif", np.ones((4, 4), np.uint8), pixel=5.0, epsg=None)
    assert run_error(run_alg, data, REFERENCE=r) == (
        "the reference raster has no CRS, so it cannot be aligned with the other one: assign its CRS (Raster > "
        "Projections > Assign Projection) or give rasters on the same grid"
    )


def test_bad_names_table(run_alg, data):
    t = data["tmp"] / "names.csv"
    t.write_text("value,label\n1,Water\n", encoding="utf-8")
    assert run_error(run_alg, data, NAMES=str(t)) == (
        f"names table '{t}': the first line must be the header 'value,name[,color]', found 'value,label'"
    )
    t.write_text("value,name,color\n1,Water,bleu\n", encoding="utf-8")
    assert run_error(run_alg, data, NAMES=str(t)) == (
        f"names table '{t}' line 2: 'bleu' is not a colour (use #rrggbb or r-g-b)"
    )


def test_missing_reclassify_file(run_alg, data):
    missing = data["tmp"] / "none.csv"
    assert run_error(run_alg, data, RECLASSIFY=str(missing)) == f"reclassify table '{missing}' does not exist"


def test_values_out_of_class_range(run_alg, data):
    r = make_raster(data["tmp"] / "neg.tif", np.array([[1, -7], [2, 1]], np.int16))
    assert run_error(run_alg, data, REFERENCE=r) == (
        "the reference raster holds the value -7: class values must be in 0..65535; add it to IGNORE (or set it "
        "as the raster's nodata) if it means no data"
    )


def _class_raster(path, a, classes):
    """A class raster written like the tools write one (category names + colours)."""
    from osgeo import gdal

    from satclassify_plugin.core import raster
    from tests.rasters import wkt

    ds = raster.create_geotiff(
        str(path),
        a.shape[1],
        a.shape[0],
        1,
        gdal.GDT_Byte,
        (500000, 10, 0, 5000000, 0, -10),
        wkt(32632),
        nodata=0,
        classes=classes,
    )
    ds.GetRasterBand(1).WriteArray(a)
    ds = None
    return str(path)


def test_an_image_as_classified_map_is_refused(run_alg, data):
    """A 4-band reflectance stack used to give '1088 classes, OA 0'."""
    img = np.random.default_rng(0).integers(1, 5000, (4, 40, 40)).astype(np.uint16)
    ref = np.random.default_rng(1).integers(1, 4, (40, 40)).astype(np.uint8)
    stack = make_raster(data["tmp"] / "s2.tif", img)
    msg = run_error(run_alg, data, CLASSIFIED=stack, REFERENCE=make_raster(data["tmp"] / "ref40.tif", ref))
    assert "holds" in msg and "distinct values (band 1 of 4): that is an image, not a class map" in msg
    assert "OUTPUT of satclassify:classify" in msg


def test_maps_without_a_common_class_value_are_refused(run_alg, data):
    c = make_raster(data["tmp"] / "c1.tif", np.array([[1, 2], [3, 1]], np.uint8))
    r = make_raster(data["tmp"] / "r1.tif", np.array([[11, 12], [21, 11]], np.uint8))
    msg = run_error(run_alg, data, CLASSIFIED=c, REFERENCE=r)
    assert (
        ("no class value in common (classified: 1, 2, 3; reference: 11, 12, 21): they use different class codes") in msg
        and "LEVEL" in msg
        and "RECLASSIFY" in msg
    )


def test_level1_map_against_level2_reference_is_refused_and_level_fixes_it(run_alg, data):
    from satclassify_plugin.core.contract import clc

    rng = np.random.default_rng(4)
    l2 = rng.integers(1, 16, (30, 30)).astype(np.uint8)
    l2_to_l1 = {c.value: int(c.code[0]) for c in clc.classes(2)}
    l1 = np.vectorize(l2_to_l1.get)(l2).astype(np.uint8)
    c = _class_raster(data["tmp"] / "level1.tif", l1, clc.classes(1))
    r = _class_raster(data["tmp"] / "level2.tif", l2, clc.classes(2))
    msg = run_error(run_alg, data, CLASSIFIED=c, REFERENCE=r)
    assert (
        "the two maps use different class tables: value 1 is 'Artificial surfaces' in the classified map but "
        "'Urban fabric' in the reference"
        in msg
        and "RECLASSIFY" in msg
    )
    table = data["tmp"] / "l2_to_l1.csv"  # the fix the message names: the reference mapped to level 1
    table.write_text("map,from,to\n" + "".join(f"reference,{a},{b}\n" for a, b in l2_to_l1.items()))
    out = data["tmp"] / "ok"
    res = run_alg(
        ALG,
        {
            "CLASSIFIED": c,
            "REFERENCE": r,
            "RECLASSIFY": str(table),
            "OUTPUT_MATRIX": str(out / "m.csv"),
            "OUTPUT_METRICS": str(out / "m.json"),
            "OUTPUT_REPORT": str(out / "m.html"),
        },
    )
    assert res["OA"] == pytest.approx(1.0)


def test_huge_scale_is_refused_with_its_own_message(run_alg, data):
    """SCALE=100000 used to say 'ran out of memory: use a smaller extent, tile size or batch size'."""
    msg = run_error(run_alg, data, SCALE=100000)
    assert "SCALE 100000 is too large" in msg and "use at most 1024" in msg
    msg = run_error(run_alg, data, SCALE=3)
    assert "SCALE 3 is larger than the classified raster (2 x 2 pixels)" in msg


def test_out_of_memory_names_the_tools_own_parameters(provider, monkeypatch):
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    from satclassify_plugin.algorithms import base

    def boom(self, parameters, context, feedback):
        raise MemoryError()

    monkeypatch.setattr(base.SatClassifyAlgorithm, "check_output_paths", lambda *a: None)
    hints = {}
    for alg_id in ("assessaccuracy", "classify", "buildpatches", "rasterizeclc"):
        alg = provider.algorithm(alg_id).createInstance()
        monkeypatch.setattr(type(alg), "run_tool", boom)
        with pytest.raises(QgsProcessingException) as e:
            alg.processAlgorithm({}, QgsProcessingContext(), QgsProcessingFeedback())
        hints[alg_id] = str(e.value)
    assert hints["assessaccuracy"].endswith(
        "ran out of memory: use a smaller SCALE, or compare a smaller area (crop both maps)"
    )
    assert hints["classify"].endswith("use a smaller EXTENT, TILE_SIZE or BATCH_SIZE")
    assert "PATCH_SIZE" in hints["buildpatches"] and "TILE_SIZE" not in hints["rasterizeclc"]
