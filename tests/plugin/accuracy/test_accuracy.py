"""satclassify:assessaccuracy against hand-computed confusion matrices and metrics."""

import json
import os

import numpy as np
import pytest
from osgeo import gdal, osr

from satclassify_plugin.core import raster
from satclassify_plugin.core.contract import clc
from tests.rasters import LAEA, UTM32N, make_raster

ALG = "satclassify:assessaccuracy"

C = np.array([[1, 1, 2, 2], [1, 2, 2, 3], [0, 3, 3, 3], [1, 1, 3, 3]], np.uint8)
R = np.array([[1, 1, 2, 1], [1, 2, 2, 2], [3, 3, 3, 0], [2, 1, 3, 3]], np.uint8)
CLASSES = [
    {"value": 1, "name": "Water", "color": "#0000ff"},
    {"value": 2, "name": "Forest", "color": "#00a000"},
    {"value": 3, "name": "Urban", "color": "#e6004d"},
]


def styled(path, array, classes=CLASSES, **kw):
    make_raster(path, array, **kw)
    ds = gdal.Open(str(path), gdal.GA_Update)
    raster.write_class_metadata(ds.GetRasterBand(1), classes)
    ds = None
    return str(path)


def outputs(tmp_path, name="acc"):
    return {
        "OUTPUT_MATRIX": str(tmp_path / f"{name}.csv"),
        "OUTPUT_METRICS": str(tmp_path / f"{name}.json"),
        "OUTPUT_REPORT": str(tmp_path / f"{name}.html"),
    }


def run(run_alg, tmp_path, name="acc", **params):
    res = run_alg(ALG, {**params, **outputs(tmp_path, name)})
    with open(res["OUTPUT_METRICS"], encoding="utf-8") as f:
        metrics = json.load(f)
    return res, metrics


def test_hand_computed_matrix_metrics_and_outputs(run_alg, tmp_path):
    res, m = run(
        run_alg, tmp_path, CLASSIFIED=styled(tmp_path / "c.tif", C), REFERENCE=make_raster(tmp_path / "r.tif", R)
    )
    # rows = reference, columns = classified; (2,0) classified 0 and (2,3) reference 0 are ignored
    assert m["confusion_matrix"] == [[4, 1, 0], [1, 3, 1], [0, 0, 4]]
    assert m["values"] == [1, 2, 3] and m["pixels"] == 14
    assert m["overall_accuracy"] == pytest.approx(11 / 14)
    assert m["kappa"] == pytest.approx((154 - 65) / (196 - 65))  # pe = (5*5 + 5*4 + 4*5) / 14^2
    f1 = [0.8, 6 / 9, 8 / 9]
    iou = [4 / 6, 3 / 6, 4 / 5]
    for c, p, r, f, i, s in zip(m["classes"], [4 / 5, 3 / 4, 4 / 5], [4 / 5, 3 / 5, 1.0], f1, iou, [5, 5, 4]):
        assert (c["precision"], c["recall"], c["f1"], c["iou"], c["support"]) == (
            pytest.approx(p),
            pytest.approx(r),
            pytest.approx(f),
            pytest.approx(i),
            s,
        )
    assert [(c["name"], c["color"]) for c in m["classes"]] == [
        ("Water", "#0000ff"),
        ("Forest", "#00a000"),
        ("Urban", "#e6004d"),
    ]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3) and m["miou"] == pytest.approx(sum(iou) / 3)
    assert m["excluded"]["ignored_in_classified"] == 1 and m["excluded"]["ignored_in_reference"] == 1
    assert m["inputs"]["reference_warped"] is False and m["inputs"]["ignore"] == [0]
    # numeric outputs for models
    assert res["OA"] == pytest.approx(11 / 14) and res["KAPPA"] == pytest.approx(m["kappa"])
    assert res["MIOU"] == pytest.approx(m["miou"]) and res["MACRO_F1"] == pytest.approx(m["macro_f1"])
    with open(res["OUTPUT_MATRIX"], encoding="utf-8") as f:
        assert f.read().splitlines() == [
            "reference_value,reference_name,1 Water,2 Forest,3 Urban,total",
            "1,Water,4,1,0,5",
            "2,Forest,1,3,1,5",
            "3,Urban,0,0,4,4",
            "total,,5,4,5,14",
        ]
    with open(res["OUTPUT_REPORT"], encoding="utf-8") as f:
        page = f.read()
    assert "78.6&nbsp;%" in page and "Cohen's kappa" in page and "data:image/png;base64," in page
    assert "background:#e6004d" in page and ">Urban<" in page
    png = tmp_path / "acc_matrix.png"
    ds = gdal.Open(str(png))
    assert ds.GetDriver().ShortName == "PNG" and ds.RasterCount == 3 and ds.RasterXSize == ds.RasterYSize > 3 * 4
    # outputs and nothing else (QGIS itself may cache statistics of the inputs in .aux.xml files)
    assert sorted(f for f in os.listdir(tmp_path) if not f.endswith(".aux.xml")) == [
        "acc.csv",
        "acc.html",
        "acc.json",
        "acc_matrix.png",
        "c.tif",
        "r.tif",
    ]


def test_report_is_an_html_output_and_numbers_are_outputs(provider):
    from qgis.core import QgsProcessingOutputHtml, QgsProcessingOutputNumber

    alg = provider.algorithm("assessaccuracy")
    assert isinstance(alg.outputDefinition("OUTPUT_REPORT"), QgsProcessingOutputHtml)
    for key in ("OA", "KAPPA", "MIOU", "MACRO_F1"):
        assert isinstance(alg.outputDefinition(key), QgsProcessingOutputNumber)


def test_classes_absent_from_one_map(run_alg, tmp_path):
    c = np.array([[1, 5], [1, 1]], np.uint8)
    r = np.array([[1, 1], [4, 1]], np.uint8)
    _, m = run(
        run_alg, tmp_path, CLASSIFIED=make_raster(tmp_path / "c.tif", c), REFERENCE=make_raster(tmp_path / "r.tif", r)
    )
    assert m["values"] == [1, 4, 5]
    assert m["confusion_matrix"] == [[2, 0, 1], [1, 0, 0], [0, 0, 0]]
    c1, c4, c5 = m["classes"]
    assert (c4["name"], c4["precision"], c4["recall"], c4["f1"], c4["support"], c4["predicted"]) == (
        "class 4",
        None,
        0.0,
        0.0,
        1,
        0,
    )
    assert (c5["precision"], c5["recall"], c5["f1"], c5["iou"], c5["support"]) == (0.0, None, 0.0, 0.0, 0)
    assert c1["precision"] == pytest.approx(2 / 3) and c1["recall"] == pytest.approx(2 / 3)
    assert m["overall_accuracy"] == 0.5
    assert m["macro_f1"] == pytest.approx((2 / 3) / 3)


def test_mask_on_another_grid_is_warped(run_alg, tmp_path):
    # 20 m mask: top-left and bottom-right 20 m cells valid -> 10 m pixels rows 0-1/cols 0-1 and rows 2-3/cols 2-3
    mask = make_raster(tmp_path / "mask.tif", np.array([[1, 0], [0, 7]], np.uint8), pixel=20.0)
    _, m = run(
        run_alg,
        tmp_path,
        CLASSIFIED=make_raster(tmp_path / "c.tif", C),
        REFERENCE=make_raster(tmp_path / "r.tif", R),
        MASK=mask,
    )
    # kept: (0,0)1/1 (0,1)1/1 (1,0)1/1 (1,1)2/2 (2,2)3/3 (2,3)c3/r0 ign (3,2)3/3 (3,3)3/3
    assert m["confusion_matrix"] == [[3, 0, 0], [0, 1, 0], [0, 0, 3]]
    assert m["excluded"]["masked_out"] == 8 and m["excluded"]["ignored_in_reference"] == 1
    assert m["excluded"]["ignored_in_classified"] == 0  # the classified 0 at (2,0) is masked out first


def test_reference_at_another_resolution_and_extent(run_alg, tmp_path):
    # reference at 20 m, shifted 20 m east: covers classified columns 2-3 with its column 0 only
    ref = make_raster(
        tmp_path / "r20.tif", np.array([[2, 1], [3, 1]], np.uint8), origin=(500020.0, 5000000.0), pixel=20.0
    )
    _, m = run(run_alg, tmp_path, CLASSIFIED=make_raster(tmp_path / "c.tif", C), REFERENCE=ref)
    # compared: rows 0-1 -> ref 2: c (0,2)2 (0,3)2 (1,2)2 (1,3)3; rows 2-3 -> ref 3: c 3 3 3 3
    assert m["values"] == [2, 3]
    assert m["confusion_matrix"] == [[3, 1], [0, 4]]
    assert m["excluded"]["outside_reference"] == 8
    assert m["inputs"]["reference_warped"] is True


def test_reference_in_another_crs(run_alg, tmp_path):
    cls = make_raster(tmp_path / "c.tif", np.array([[1, 1, 2], [2, 2, 2]], np.uint8), epsg=UTM32N)
    # a LAEA reference (constant 2) whose extent covers the classified raster with a wide margin
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(UTM32N)
    dst.ImportFromEPSG(LAEA)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x, y, _ = osr.CoordinateTransformation(src, dst).TransformPoint(500015.0, 4999990.0)
    ref = make_raster(
        tmp_path / "r.tif", np.full((20, 20), 2, np.uint8), origin=(x - 100, y + 100), pixel=10.0, epsg=LAEA
    )
    _, m = run(run_alg, tmp_path, CLASSIFIED=cls, REFERENCE=ref)
    assert m["values"] == [1, 2]
    assert m["confusion_matrix"] == [[0, 0], [2, 4]]
    assert m["overall_accuracy"] == pytest.approx(4 / 6) and m["excluded"]["outside_reference"] == 0
    assert m["inputs"]["reference_warped"] is True


def test_scale_mode_aggregation(run_alg, tmp_path):
    c = np.array(
        [
            [1, 1, 2, 2, 2, 2],
            [1, 0, 0, 2, 3, 3],
            [0, 0, 0, 2, 3, 3],
            [3, 3, 3, 1, 1, 2],
            [3, 1, 1, 2, 2, 1],
            [0, 0, 0, 0, 0, 0],
        ],
        np.uint8,
    )
    r = np.array(
        [
            [1, 1, 1, 2, 2, 2],
            [1, 1, 1, 2, 2, 2],
            [1, 1, 1, 2, 2, 2],
            [3, 3, 3, 0, 0, 0],
            [0, 0, 2, 0, 0, 0],
            [0, 0, 2, 0, 0, 1],
        ],
        np.uint8,
    )
    # classified 3x3 modes (0 does not vote): [1,1,1] -> 1; [2,2,2,2,3,3,2,3,3] -> 2; [3,3,3,3,1,1] -> 3;
    #   [1,1,2,2,2,1] tie 1/2 -> 1
    # reference modes: 1; 2; [3,3,3,2,2] -> 3; [1] -> 1
    _, m = run(
        run_alg,
        tmp_path,
        CLASSIFIED=make_raster(tmp_path / "c.tif", c),
        REFERENCE=make_raster(tmp_path / "r.tif", r),
        SCALE=3,
    )
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert m["pixels"] == 4 and m["inputs"]["scale"] == 3 and m["inputs"]["comparison_pixel_size"] == 30.0


def test_scale_result_does_not_depend_on_block_size(tmp_path):
    from satclassify_plugin.core.accuracy.assess import assess

    rng = np.random.default_rng(3)
    c = rng.integers(0, 4, (50, 47)).astype(np.uint8)
    r = np.where(rng.random((50, 47)) < 0.7, c, rng.integers(0, 4, (50, 47))).astype(np.uint8)
    cp, rp = make_raster(tmp_path / "c.tif", c), make_raster(tmp_path / "r.tif", r)
    # reference computation in one piece with the pure block mode
    from satclassify_plugin.core.accuracy.tables import block_mode

    # (int64 before the -1: under numpy 2's promotion rules np.where(uint8, uint8, -1) stays uint8, -1 -> 255)
    c64, r64 = c.astype(np.int64), r.astype(np.int64)
    cm, rm = block_mode(np.where(c > 0, c64, -1), 4), block_mode(np.where(r > 0, r64, -1), 4)
    ok = (cm >= 0) & (rm >= 0)
    expected = np.zeros((3, 3), int)
    np.add.at(expected, (rm[ok] - 1, cm[ok] - 1), 1)
    for block in (4, 9, 1024):  # 9 -> windows of 8 (aligned to k = 4)
        m = assess(cp, rp, scale=4, block=block).metrics
        assert m["confusion_matrix"] == expected.tolist(), block
    # k = 1 streamed in 7-pixel windows equals the plain count
    m = assess(cp, rp, block=7).metrics
    ok = (c > 0) & (r > 0)
    plain = np.zeros((3, 3), int)
    np.add.at(plain, (r[ok] - 1, c[ok] - 1), 1)
    assert m["confusion_matrix"] == plain.tolist()


def test_clc_level_aggregation_grid_codes_vs_codes(run_alg, tmp_path):
    # classified: level-3 grid codes (uint8); reference: level-3 codes 111..523 (uint16)
    c = np.array([[1, 2, 12], [23, 41, 12]], np.uint8)  # -> level 1: 1 1 2 / 3 5 2
    r = np.array([[111, 121, 211], [311, 211, 512]], np.uint16)  # -> level 1: 1 1 2 / 3 2 5
    _, m = run(
        run_alg,
        tmp_path,
        CLASSIFIED=make_raster(tmp_path / "c.tif", c),
        REFERENCE=make_raster(tmp_path / "r.tif", r),
        LEVEL=1,
    )
    assert m["values"] == [1, 2, 3, 5]
    assert m["confusion_matrix"] == [[2, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]]
    names = {c_.value: c_.name for c_ in clc.classes(1)}
    assert [c_["name"] for c_ in m["classes"]] == [names[1], names[2], names[3], names[5]]
    assert m["inputs"]["clc_source"] == {"classified": "grid", "reference": "code"}
    # level 2 on the reference only: the classified map already holds level-2 values (1..15)
    l2 = {int(x.code): x.value for x in clc.classes(2)}
    c2 = np.array([[l2[11], l2[12], l2[21]], [l2[31], l2[51], l2[21]]], np.uint8)
    _, m2 = run(
        run_alg,
        tmp_path,
        name="l2",
        CLASSIFIED=make_raster(tmp_path / "c2.tif", c2),
        REFERENCE=make_raster(tmp_path / "r.tif", r),
        LEVEL=2,
        LEVEL_MAPS=1,
    )
    assert m2["values"] == [l2[11], l2[12], l2[21], l2[31], l2[51]]
    # pairs (reference, classified): 11/11 12/12 21/21 31/31 21/51 51/21
    assert m2["confusion_matrix"] == [
        [1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 1],
        [0, 0, 0, 1, 0],
        [0, 0, 1, 0, 0],
    ]


def test_reclassify_and_names_tables(run_alg, tmp_path):
    # classified: EuroSAT-like 1 annual crop, 2 forest, 3 residential, 4 river, 5 sea lake
    # reference: FROM-GLC-like 10 cropland, 20 forest, 60 water, 80 impervious
    c = np.array([[1, 1, 2, 3], [4, 5, 2, 9]], np.uint8)
    r = np.array([[10, 20, 20, 80], [60, 60, 10, 10]], np.uint8)
    table = tmp_path / "recl.csv"
    table.write_text(
        "map,from,to\nclassified,1,1\nclassified,2,2\nclassified,3,4\nclassified,4,3\nclassified,5,3\n"
        "reference,10,1\nreference,20,2\nreference,60,3\nreference,80,4\n",
        encoding="utf-8",
    )
    names = tmp_path / "names.csv"
    names.write_text(
        "value,name,color\n1,Cropland,#ffff00\n2,Forest,#008000\n3,Water,#0000ff\n4,Built-up,#ff0000\n",
        encoding="utf-8",
    )
    _, m = run(
        run_alg,
        tmp_path,
        CLASSIFIED=make_raster(tmp_path / "c.tif", c),
        REFERENCE=make_raster(tmp_path / "r.tif", r),
        RECLASSIFY=str(table),
        NAMES=str(names),
    )
    # common: c = 1 1 2 4 / 3 3 2 (9 unmapped); r = 1 2 2 4 / 3 3 1 1
    assert m["values"] == [1, 2, 3, 4]
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]
    assert [(x["name"], x["color"]) for x in m["classes"]] == [
        ("Cropland", "#ffff00"),
        ("Forest", "#008000"),
        ("Water", "#0000ff"),
        ("Built-up", "#ff0000"),
    ]
    assert m["excluded"]["unmapped_in_classified"] == 1


def test_all_ignored_areas_give_a_clear_error(run_alg, tmp_path):
    from qgis.core import QgsProcessingException

    zeros = make_raster(tmp_path / "z.tif", np.zeros((4, 4), np.uint8))
    ref = make_raster(tmp_path / "r.tif", R)
    nd = make_raster(tmp_path / "nd.tif", np.full((4, 4), 9, np.uint8), nodata=9)
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, {"CLASSIFIED": zeros, "REFERENCE": nd, **outputs(tmp_path)})
    assert str(e.value) == (
        "no pixel left to compare: every value of the classified or reference raster is ignored "
        "(IGNORE = [0], nodata = classified None, reference 9) or unmapped by the reclassify "
        "table / LEVEL"
    )
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, {"CLASSIFIED": zeros, "REFERENCE": ref, **outputs(tmp_path)})
    assert str(e.value) == (
        "no pixel left to compare: of 16 pixels, 16 ignored in classified, 1 ignored in "
        "reference (IGNORE = [0]); check the mask, IGNORE, the reclassify table and that the "
        "maps overlap"
    )
    # values exist but never at the same place as the mask's valid pixels
    mask = make_raster(tmp_path / "m.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(QgsProcessingException) as e:
        run_alg(
            ALG, {"CLASSIFIED": make_raster(tmp_path / "c.tif", C), "REFERENCE": ref, "MASK": mask, **outputs(tmp_path)}
        )
    assert str(e.value) == (
        "no pixel left to compare: of 16 pixels, 16 masked out (IGNORE = [0]); check the mask, "
        "IGNORE, the reclassify table and that the maps overlap"
    )
    assert not [f for f in os.listdir(tmp_path) if f.startswith(("acc", ".acc"))]


def test_cancel_stops_before_any_output(run_alg, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    fb = QgsProcessingFeedback()
    fb.cancel()
    with pytest.raises(QgsProcessingException, match="cancelled by the user: no output was written"):
        run_alg(
            ALG,
            {
                "CLASSIFIED": make_raster(tmp_path / "c.tif", C),
                "REFERENCE": make_raster(tmp_path / "r.tif", R),
                **outputs(tmp_path),
            },
            feedback=fb,
        )
    assert not [f for f in os.listdir(tmp_path) if f.startswith(("acc", ".acc"))]


def test_progress_is_reported(tmp_path):
    from satclassify_plugin.core.accuracy.assess import assess
    from satclassify_plugin.core.contract.feedback import Monitor

    seen = []
    a = np.ones((10, 10), np.uint8)
    assess(
        make_raster(tmp_path / "c.tif", a),
        make_raster(tmp_path / "r.tif", a),
        block=4,
        monitor=Monitor(progress=seen.append),
    )
    assert seen == pytest.approx([i / 9 for i in range(1, 10)])  # 3 x 3 windows of 4 pixels, fractions 0-1


def test_int16_nodata_and_uint16_values_without_ignore(tmp_path):
    from satclassify_plugin.core.accuracy.assess import assess

    c = make_raster(tmp_path / "i16.tif", np.array([[-32768, 5, 700], [700, 5, 5]], np.int16), nodata=-32768)
    r = make_raster(tmp_path / "u16.tif", np.array([[5, 5, 700], [60000, 5, 700]], np.uint16))
    m = assess(c, r, ignore="").metrics
    # pairs (reference, classified): 5/nodata (left out) 5/5 700/700 60000/700 5/5 700/5
    assert m["values"] == [5, 700, 60000]
    assert m["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 1, 0]]
    assert m["excluded"]["ignored_in_classified"] == 1 and m["inputs"]["nodata_classified"] == -32768
    assert m["inputs"]["ignore"] == []


def test_warped_reference_nodata_is_left_out(run_alg, tmp_path):
    # 20 m reference with nodata 9 in its top-right cell: those 4 classified pixels have no reference
    ref = make_raster(tmp_path / "r20.tif", np.array([[1, 9], [3, 3]], np.uint8), pixel=20.0, nodata=9)
    _, m = run(run_alg, tmp_path, CLASSIFIED=make_raster(tmp_path / "c.tif", C), REFERENCE=ref)
    # ref 1 over c [1,1,1,2]; ref 3 over c [0 (ignored),3,1,1] and [3,3,3,3]
    assert m["values"] == [1, 2, 3]
    assert m["confusion_matrix"] == [[3, 1, 0], [0, 0, 0], [2, 0, 5]]
    assert m["excluded"]["outside_reference"] == 4 and m["excluded"]["ignored_in_classified"] == 1
    assert m["inputs"]["nodata_reference"] == 9
