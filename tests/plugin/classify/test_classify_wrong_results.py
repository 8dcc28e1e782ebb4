"""Issue 25, wrong results with exit 0 (items 4, 5, 6, 7, 8, 11) through processing.run in real QGIS: classify and
classifypatches refuse what they cannot do right, and never turn a broken score or value into a class."""

import math
import os

import numpy as np
import pytest
from onnx import helper
from osgeo import gdal

from tests import onnx_models as om
from tests.rasters import make_raster, read_raster

ALG = "satclassify:classify"
PATCHES = "satclassify:classifypatches"
ORIGIN = (500000.0, 5000000.0)


def s2_raw(shape=(4, 40, 48), seed=0):
    return np.random.default_rng(seed).integers(10, 4000, shape).astype(np.uint16)


class Feedback:
    def __new__(cls):
        from qgis.core import QgsProcessingFeedback

        class _FB(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.infos = []

            def pushInfo(self, msg):
                self.infos.append(msg)

            def pushWarning(self, msg):
                self.infos.append(msg)

        return _FB()


def refused(run_alg, alg, params, match):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=match):
        run_alg(alg, params)
    out = params["OUTPUT"]
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(os.path.dirname(out)) if ".part" in f]


def lin(tmp_path, **card_kw):
    return om.linear_model(tmp_path / "lin.onnx", np.eye(3, 4), card_kw={"tile_size": 16, **card_kw})


# 4. rotated rasters ---------------------------------------------------------------------------------------------
def test_rotated_raster_is_refused_not_written_north_up(run_alg, tmp_path):
    src = make_raster(tmp_path / "rot.tif", s2_raw(), band_names=om.S2_BANDS4)
    ds = gdal.Open(src, gdal.GA_Update)
    ds.SetGeoTransform((ORIGIN[0], 10.0, 2.0, ORIGIN[1], 2.0, -10.0))
    ds = None
    refused(
        run_alg, ALG, {"INPUT": src, "MODEL": lin(tmp_path), "OUTPUT": str(tmp_path / "c.tif")}, "rotated.*north-up"
    )
    patch = om.patch_model(tmp_path / "p.onnx", np.eye(2, 4), p=8)
    refused(run_alg, PATCHES, {"INPUT": src, "MODEL": patch, "OUTPUT": str(tmp_path / "p.gpkg")}, "rotated.*north-up")


# 5. non-finite scores ---------------------------------------------------------------------------------------------
def sqrt_model(path):
    """softmax(sqrt(W x + b)): NaN for every class where B02 < 2000 DN (a logit is negative there), finite
    elsewhere; class 1 is the largest where finite."""
    w = np.array([[10.0, 0, 0, 0], [5.0, 0, 0, 0], [1.0, 0, 0, 0]], np.float32)
    b = np.array([-2.0, -1.0, -0.2], np.float32)
    node, inits = om._conv("lin", "image", w.reshape(3, 4, 1, 1), b, "logits", 0)
    sq = helper.make_node("Sqrt", ["logits"], ["root"])
    soft = helper.make_node("Softmax", ["root"], ["probs"], axis=1)
    meta = {
        "satclassify": om.card(heads=[{"name": "class", "output": "probs", "classes": om.classes(3)}], tile_size=16)
    }
    return om._save(path, [node, sq, soft], inits, 4, [("probs", 3)], meta)


@pytest.mark.parametrize("graph", [True, False], ids=["argmax-in-graph", "argmax-in-numpy"])
def test_nan_scores_are_nodata_not_class_1(run_alg, tmp_path, monkeypatch, graph):
    from satclassify_plugin.core.classify import inference

    if not graph:
        monkeypatch.setattr(inference, "add_top_outputs", lambda *a, **k: None)
    raw = s2_raw()
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    out, conf = str(tmp_path / "c.tif"), str(tmp_path / "conf.tif")
    fb = Feedback()
    run_alg(
        ALG, {"INPUT": src, "MODEL": sqrt_model(tmp_path / "sqrt.onnx"), "OUTPUT": out, "CONFIDENCE": conf}, feedback=fb
    )
    nan = raw[0] < 2000
    classes, confidence = read_raster(out), read_raster(conf)
    assert nan.any() and (~nan).any()
    assert (classes[nan] == 0).all() and (confidence[nan] == 255).all()
    assert (classes[~nan] == 1).all() and (confidence[~nan] <= 100).all()
    assert any("non-finite scores" in m and f"{int(nan.sum())} of {nan.size} valid pixels" in m for m in fb.infos)


def test_model_giving_only_nan_fails_clearly(run_alg, tmp_path):
    src = make_raster(tmp_path / "s2.tif", s2_raw(), band_names=om.S2_BANDS4)
    model = om.linear_model(
        tmp_path / "nan.onnx", np.eye(3, 4), bias=[0.0, float("nan"), 0.0], card_kw={"tile_size": 16}
    )
    refused(
        run_alg,
        ALG,
        {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "c.tif"), "CONFIDENCE": str(tmp_path / "conf.tif")},
        "no finite score",
    )
    assert not os.path.exists(tmp_path / "conf.tif")


def test_patches_with_nan_scores_get_no_class(run_alg, tmp_path):
    src = make_raster(tmp_path / "s2.tif", s2_raw(), band_names=om.S2_BANDS4)
    model = om.patch_model(tmp_path / "p.onnx", np.eye(2, 4), bias=[float("nan"), 0.0], p=8, activation="softmax")
    refused(run_alg, PATCHES, {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "p.gpkg")}, "no finite score")


# 6. / 7. pixel size on the ground ----------------------------------------------------------------------------------
def test_100_km_pixels_for_a_10_m_model_are_refused(run_alg, tmp_path):
    src = make_raster(
        tmp_path / "coarse.tif", s2_raw(), band_names=om.S2_BANDS4, pixel=100000.0, origin=(0.0, 9000000.0)
    )
    refused(
        run_alg,
        ALG,
        {"INPUT": src, "MODEL": lin(tmp_path), "OUTPUT": str(tmp_path / "c.tif")},
        r"e\+04 m pixels on the ground but the model was trained on 10 m pixels.*coarser.*warp the raster",
    )
    patch = om.patch_model(tmp_path / "p.onnx", np.eye(2, 4), p=8)
    refused(
        run_alg,
        PATCHES,
        {"INPUT": src, "MODEL": patch, "OUTPUT": str(tmp_path / "p.gpkg")},
        r"m pixels on the ground but the model was trained on 10 m",
    )


def test_geographic_stack_is_refused_by_classifypatches_too(run_alg, tmp_path):
    src = make_raster(
        tmp_path / "ll.tif", s2_raw(), band_names=om.S2_BANDS4, pixel=1e-4, origin=(10.0, 45.0), epsg=4326
    )
    patch = om.patch_model(tmp_path / "p.onnx", np.eye(2, 4), p=8)
    refused(
        run_alg, PATCHES, {"INPUT": src, "MODEL": patch, "OUTPUT": str(tmp_path / "p.gpkg")}, "geographic.*reproject"
    )


def merc_y(lat):
    return 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def test_web_mercator_pixels_are_measured_on_the_ground(run_alg, tmp_path):
    """10 map units of EPSG:3857 at 70 N are 3.4 m on the ground: a 10 m model gets a warning, and RESAMPLE runs it
    at 10 ground metres (29 map units)."""
    src = make_raster(
        tmp_path / "merc.tif",
        s2_raw((4, 64, 64)),
        band_names=om.S2_BANDS4,
        pixel=10.0,
        origin=(1000000.0, merc_y(70.0)),
        epsg=3857,
    )
    fb = Feedback()
    run_alg(ALG, {"INPUT": src, "MODEL": lin(tmp_path), "OUTPUT": str(tmp_path / "c.tif")}, feedback=fb)
    assert any("not ground metres" in m for m in fb.infos)
    assert any(m.startswith("warning: the raster has 3.4") and "trained on 10 m" in m for m in fb.infos)
    out = str(tmp_path / "r.tif")
    run_alg(ALG, {"INPUT": src, "MODEL": lin(tmp_path), "OUTPUT": out, "RESAMPLE": True})
    px = gdal.Open(out).GetGeoTransform()[1]
    assert px * math.cos(math.radians(70.0)) == pytest.approx(10.0, rel=0.01)


# 8. GDAL scale/offset, negative DN ------------------------------------------------------------------------------
def test_gdal_band_offset_is_applied_before_the_card(run_alg, tmp_path):
    raw = s2_raw(seed=3)
    w = np.array([[2.0, -1.0, 0.5, 0.0], [-1.0, 2.0, 0.0, 0.3], [0.2, 0.1, -2.0, 1.0]])
    model = om.linear_model(tmp_path / "lin.onnx", w, bias=[0.1, -0.05, 0.2], card_kw={"tile_size": 16})
    plain = make_raster(tmp_path / "plain.tif", raw, band_names=om.S2_BANDS4)
    # the same DNs stored + 1000 with GDAL offset -1000 (how a processing-baseline offset may be kept)
    stored = make_raster(tmp_path / "offset.tif", (raw + 1000).astype(np.uint16), band_names=om.S2_BANDS4)
    ds = gdal.Open(stored, gdal.GA_Update)
    for i in range(4):
        ds.GetRasterBand(i + 1).SetOffset(-1000.0)
        ds.GetRasterBand(i + 1).SetScale(1.0)
    ds = None
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    run_alg(ALG, {"INPUT": plain, "MODEL": model, "OUTPUT": a})
    fb = Feedback()
    run_alg(ALG, {"INPUT": stored, "MODEL": model, "OUTPUT": b}, feedback=fb)
    assert np.array_equal(read_raster(a), read_raster(b))
    assert any("GDAL scale/offset" in m and "-1000" in m for m in fb.infos)


def test_negative_dn_in_an_int16_stack_is_nodata(run_alg, tmp_path):
    raw = s2_raw(seed=5).astype(np.int16)
    raw[:, :10, :] = -9999
    src = make_raster(tmp_path / "i16.tif", raw, band_names=om.S2_BANDS4)
    out = str(tmp_path / "c.tif")
    fb = Feedback()
    run_alg(ALG, {"INPUT": src, "MODEL": lin(tmp_path), "OUTPUT": out}, feedback=fb)
    classes = read_raster(out)
    assert (classes[:10] == 0).all() and (classes[10:] > 0).all()
    assert any("negative value" in m and "no valid Sentinel-2 digital number" in m for m in fb.infos)


# 11. zero-width EXTENT --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", [ALG, PATCHES])
def test_zero_width_extent_is_refused(run_alg, tmp_path, alg):
    src = make_raster(tmp_path / "s2.tif", s2_raw(), band_names=om.S2_BANDS4)
    model = lin(tmp_path) if alg == ALG else om.patch_model(tmp_path / "p.onnx", np.eye(2, 4), p=8)
    out = str(tmp_path / ("c.tif" if alg == ALG else "p.gpkg"))
    x = ORIGIN[0] + 100
    extent = f"{x},{x},{ORIGIN[1] - 300},{ORIGIN[1] - 100} [EPSG:32632]"
    refused(run_alg, alg, {"INPUT": src, "MODEL": model, "EXTENT": extent, "OUTPUT": out}, "no area.*zero width")
