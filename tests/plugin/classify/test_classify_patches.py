"""satclassify:classifypatches: a patch classifier over the patch grid -> one polygon per cell with labels and
probabilities; multi-label thresholds (card / THRESHOLD), single-label top class, EXTENT, nodata, style, errors."""

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer

from tests import onnx_models as om
from tests.rasters import make_raster

ALG = "satclassify:classifypatches"
W = [[40.0, -40.0, 0.0, 0.0], [0.0, 0.0, 0.0, 12.0], [-30.0, 0.0, 30.0, 0.0]]
B = [0.0, -3.0, 0.5]


def _scene(tmp_path, h=40, w=60, seed=0, nodata_cells=()):
    raw = np.random.default_rng(seed).integers(200, 5000, (4, h, w)).astype(np.uint16)
    for r, c in nodata_cells:
        raw[:, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = 0
    return make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4), raw


def _features(path):
    layer = QgsVectorLayer(path, "p", "ogr")
    assert layer.isValid()
    return layer, {(f["row"], f["col"]): f for f in layer.getFeatures()}


def test_multilabel_patches_with_the_card_thresholds(run_alg, tmp_path):
    src, raw = _scene(tmp_path)
    th = [0.5, 0.3, 0.9]
    model = om.patch_model(tmp_path / "ml.onnx", W, B, thresholds=th)
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "p.gpkg")})
    layer, feats = _features(res["OUTPUT"])
    assert res["COUNT"] == 5 * 7 == len(feats)  # 40 x 60 pixels: 5 x 7 whole cells of 8 (4 columns left out)
    assert layer.crs().authid() == "EPSG:32632"
    names = ["class 1", "class 2", "class 3"]
    assert [f.name() for f in layer.fields()][-3:] == ["p_1", "p_2", "p_3"]
    assert layer.fields().field("p_2").alias() in ("", "class 2")
    seen = set()
    for (r, c), f in feats.items():
        p = om.patch_expected(raw[:, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8], W, B)
        np.testing.assert_allclose([f["p_1"], f["p_2"], f["p_3"]], p, atol=2e-6)
        want = [names[k] for k in np.argsort(-p) if p[k] >= th[k]]
        assert f["labels"] == "; ".join(want)
        assert f["top_value"] == int(p.argmax()) + 1 and f["top_label"] == names[p.argmax()]
        assert f["top_p"] == pytest.approx(p.max(), abs=2e-6) and f["valid"] == 1.0
        seen.add(f["labels"])
        bb = f.geometry().boundingBox()
        assert (bb.xMinimum(), bb.yMaximum(), bb.width(), bb.height()) == (500000 + 80 * c, 5000000 - 80 * r, 80, 80)
    assert len(seen) > 2  # cells with one, several and no labels


def test_threshold_overrides_the_card(run_alg, tmp_path):
    src, raw = _scene(tmp_path, seed=3)
    model = om.patch_model(tmp_path / "ml.onnx", W, B, thresholds=[0.99, 0.99, 0.99])
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "THRESHOLD": 0.2, "OUTPUT": str(tmp_path / "p.gpkg")})
    _layer, feats = _features(res["OUTPUT"])
    for (r, c), f in feats.items():
        p = om.patch_expected(raw[:, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8], W, B)
        assert set(filter(None, f["labels"].split("; "))) == {f"class {k + 1}" for k in range(3) if p[k] >= 0.2}


def test_single_label_model_gives_its_top_class(run_alg, tmp_path):
    src, raw = _scene(tmp_path, seed=5)
    model = om.patch_model(tmp_path / "sl.onnx", W, B, activation="softmax")
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "THRESHOLD": 0.01, "OUTPUT": str(tmp_path / "p.gpkg")})
    _layer, feats = _features(res["OUTPUT"])
    for (r, c), f in feats.items():
        p = om.patch_expected(raw[:, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8], W, B, activation="softmax")
        assert f["labels"] == f"class {p.argmax() + 1}" == f["top_label"]
        assert f["p_1"] + f["p_2"] + f["p_3"] == pytest.approx(1.0, abs=1e-5)


def test_extent_and_nodata_cells(run_alg, tmp_path):
    src, raw = _scene(tmp_path, nodata_cells=((1, 2),))
    raw2 = raw.copy()
    raw2[:, 16:20, 40:48] = 0  # half of cell (2, 5) nodata
    src = make_raster(tmp_path / "nd.tif", raw2, band_names=om.S2_BANDS4)
    model = om.patch_model(tmp_path / "ml.onnx", W, B)
    # extent from pixel (4, 2) to (52, 34): 48 x 32 pixels -> 4 rows x 6 columns of cells from (2, 4)
    ext = f"{500000 + 40},{500000 + 520},{5000000 - 340},{5000000 - 20} [EPSG:32632]"
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "EXTENT": ext, "OUTPUT": str(tmp_path / "e.gpkg")})
    _layer, feats = _features(res["OUTPUT"])
    assert len(feats) == 4 * 6
    f = feats[(0, 0)]
    assert f.geometry().boundingBox().xMinimum() == 500040 and f.geometry().boundingBox().yMaximum() == 4999980
    cell = raw2[:, 2:10, 4:12]
    np.testing.assert_allclose(f["p_1"], om.patch_expected(cell, W, B)[0], atol=2e-6)
    # the extent grid starts at pixel (2, 4): the nodata cell of the full grid is not a cell here; check valid
    part = raw2[:, 10:18, 36:44]
    v = feats[(1, 4)]["valid"]
    assert v == pytest.approx(1.0 - ((part == 0).any(axis=0)).mean())
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "full.gpkg")})
    _layer, full = _features(res["OUTPUT"])
    assert (1, 2) not in full and len(full) == 34  # the all-nodata cell is left out
    assert full[(2, 5)]["valid"] == pytest.approx(0.5)


def test_style_by_top_label(run_alg, tmp_path):
    from qgis.core import QgsCategorizedSymbolRenderer, QgsProcessingContext, QgsProject

    src, _raw = _scene(tmp_path)
    table = [
        {"value": 12, "code": "211", "name": "Non-irrigated arable land", "color": "#ffffa8"},
        {"value": 24, "code": "312", "name": "Coniferous forest", "color": "#00a600"},
        {"value": 41, "code": "512", "name": "Water bodies", "color": "#80f2e6"},
    ]
    model = om.patch_model(tmp_path / "ml.onnx", W, B, class_table=table)
    out = str(tmp_path / "p.gpkg")
    context = QgsProcessingContext()
    context.addLayerToLoadOnCompletion(
        out, QgsProcessingContext.LayerDetails("patches", QgsProject.instance(), "OUTPUT")
    )
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out}, context=context)
    pp = context.layerToLoadOnCompletionDetails(out).postProcessor()
    layer, feats = _features(out)
    assert {f["top_value"] for f in feats.values()} <= {12, 24, 41}
    assert [f.name() for f in layer.fields()][-3:] == ["p_12", "p_24", "p_41"]
    pp.postProcessLayer(layer, context, None)
    r = layer.renderer()
    assert isinstance(r, QgsCategorizedSymbolRenderer) and r.classAttribute() == "top_value"
    assert [(c.value(), c.label(), c.symbol().color().name()) for c in r.categories()] == [
        (12, "Non-irrigated arable land", "#ffffa8"),
        (24, "Coniferous forest", "#00a600"),
        (41, "Water bodies", "#80f2e6"),
    ]


@pytest.mark.parametrize(
    "case, message",
    [
        ("shp", "the tool writes a GeoPackage: name the file .gpkg"),
        ("small", "smaller than one 8 x 8 patch of the model"),
        ("bands", "model bands B08 not found in the raster"),
    ],
)
def test_errors(run_alg, tmp_path, case, message):
    model = om.patch_model(tmp_path / "ml.onnx", W, B)
    out = str(tmp_path / ("p.shp" if case == "shp" else "p.gpkg"))
    if case == "small":
        src = make_raster(tmp_path / "s.tif", np.ones((4, 6, 20), np.uint16), band_names=om.S2_BANDS4)
    elif case == "bands":
        src = make_raster(tmp_path / "s.tif", np.ones((4, 16, 16), np.uint16), band_names=["B02", "B03", "B04", "B05"])
    else:
        src, _ = _scene(tmp_path)
    with pytest.raises(QgsProcessingException, match=message):
        run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out})
    import os

    assert not [f for f in os.listdir(tmp_path) if f.startswith("p.") or ".part" in f]


def test_right_click_action(plugin):
    from satclassify_plugin.plugin import LAYER_ACTIONS

    assert ("Classify patches with SatClassify model...", "satclassify:classifypatches", "INPUT") in [
        (a[0], a[2], a[3]) for a in LAYER_ACTIONS
    ]
    assert "satclassify:classifypatches" in [alg for _a, alg, _p in plugin.layer_actions]


def test_card_input_clip_applies_to_patches(run_alg, tmp_path):
    """classifypatches clips each band to the card's input_clip before scaling, like classify."""
    src, raw = _scene(tmp_path, seed=9)
    clip = [[0, 2750], [0, 2750], [0, 2750], [0, 2750]]
    model = om.patch_model(tmp_path / "sl.onnx", W, B, activation="softmax", card_kw={"input_clip": clip})
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "p.gpkg")})
    _layer, feats = _features(res["OUTPUT"])
    differ = 0
    for (r, c), f in feats.items():
        cell = raw[:, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8]
        p = om.patch_expected(np.clip(cell, 0, 2750), W, B, activation="softmax")
        np.testing.assert_allclose([f["p_1"], f["p_2"], f["p_3"]], p, atol=2e-6)
        differ += not np.allclose(p, om.patch_expected(cell, W, B, activation="softmax"), atol=1e-4)
    assert differ > 0
