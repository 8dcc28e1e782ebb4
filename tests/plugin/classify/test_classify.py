"""satclassify:classify end to end in QGIS: values pixel by pixel against a whole-image onnxruntime run."""

import glob
import os

import numpy as np
import pytest
from osgeo import gdal

from satclassify_plugin.core import raster
from satclassify_plugin.core.classify.options import ClassifyOptions
from satclassify_plugin.core.contract.feedback import Monitor
from tests import onnx_models as om
from tests.rasters import make_raster, read_raster

ALG = "satclassify:classify"
ORIGIN = (500000.0, 5000000.0)


def whole_image_probs(model_path, x):
    """The model run once on the whole image (C, H, W float32): list of (K, H, W) per output."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return [o[0] for o in sess.run(None, {"image": np.ascontiguousarray(x[None], dtype=np.float32)})]


def s2_raw(shape=(4, 90, 110), seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(10, 4000, shape).astype(np.uint16)


def assert_classes(got, expected, logits, nodata_mask=None):
    """Equal pixel by pixel, except where the top two logits tie within float32 precision."""
    top = np.sort(logits, axis=0)
    tie = (top[-1] - top[-2]) < 1e-5 * np.maximum(1.0, np.abs(top[-1]))
    if nodata_mask is not None:
        tie &= ~nodata_mask
    assert tie.sum() <= 2
    assert np.array_equal(got[~tie], expected[~tie])


class Feedback:
    """A QgsProcessingFeedback that records messages and can cancel after N progress reports."""

    def __new__(cls, cancel_after=None):
        from qgis.core import QgsProcessingFeedback

        class _FB(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.infos, self.errors, self.progress_values = [], [], []

            def pushInfo(self, msg):
                self.infos.append(msg)

            def reportError(self, msg, fatal=False):
                self.errors.append(msg)

            def setProgress(self, value):
                self.progress_values.append(value)
                if cancel_after is not None and len(self.progress_values) >= cancel_after:
                    self.cancel()
                super().setProgress(value)

        return _FB()


def test_linear_model_values_georef_legend_nodata(run_alg, tmp_path):
    raw = s2_raw()
    raw[:, 10, 20] = 0  # DN 0 in every band: Sentinel-2 nodata
    raw[2, 30:33, 40] = 0  # DN 0 in one band: nodata too
    src = make_raster(tmp_path / "s2.tif", raw, origin=ORIGIN, pixel=10.0, band_names=om.S2_BANDS4)
    w = np.array([[10.3, 0, 0, -5.1], [0, 10.7, 0, 0], [-3.3, 0, 0, 12.9]], np.float32)
    b = np.array([0.1, -0.2, 0.0], np.float32)
    model = om.linear_model(tmp_path / "lin.onnx", w, b, card_kw={"tile_size": 32})
    out = str(tmp_path / "classes.tif")
    fb = Feedback()
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out, "BATCH_SIZE": 3}, feedback=fb)
    assert res["OUTPUT"] == out and res["PROVIDER"] == "CPUExecutionProvider" and res["MPIX_PER_S"] > 0
    expected, logits = om.linear_expected(raw, w, b)
    expected[10, 20] = 0
    expected[30:33, 40] = 0
    got = read_raster(out)
    assert got.dtype == np.uint8
    assert_classes(got, expected, logits)
    assert got[10, 20] == 0 and (got[30:33, 40] == 0).all()
    assert set(np.unique(got)) == {0, 1, 2, 3}
    ds = gdal.Open(out)
    ref = gdal.Open(src)
    assert raster.same_grid(ds, ref)
    band = ds.GetRasterBand(1)
    assert band.GetNoDataValue() == 0
    ct = band.GetColorTable()
    assert ct.GetColorEntry(1)[:3] == (0xE6, 0x00, 0x4D) and ct.GetColorEntry(3)[:3] == (0x80, 0xFF, 0x00)
    assert raster.category_names(ds)[:4] == ["no label", "class 1", "class 2", "class 3"]
    assert (
        "COMPRESSION=DEFLATE" in " ".join(gdal.Info(out).split())
        or ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"
    )
    assert any("ran on CPUExecutionProvider" in m and "MPix/s" in m for m in fb.infos)
    assert fb.progress_values and fb.progress_values[-1] == pytest.approx(100.0)
    assert not glob.glob(str(tmp_path / ".*part*"))


def test_band_nodata_value_and_band_order(run_alg, tmp_path):
    """Bands found by name in any order; a band's own nodata value is honoured."""
    raw = s2_raw((4, 40, 50), seed=2)
    raw[1, 5, 5] = 7
    order = ["B08", "B04", "B02", "B03"]  # stored in a different order
    stored = np.stack([raw[om.S2_BANDS4.index(n)] for n in order])
    src = make_raster(tmp_path / "s2.tif", stored, band_names=order, nodata=7)
    w = np.array([[5.1, -4.9, 0, 0], [0, 0, 5.3, -5.7]], np.float32)
    model = om.linear_model(tmp_path / "lin.onnx", w, card_kw={"tile_size": 16})
    out = str(tmp_path / "c.tif")
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out})
    expected, logits = om.linear_expected(raw, w)
    expected[5, 5] = 0
    assert_classes(read_raster(out), expected, logits)
    assert read_raster(out)[5, 5] == 0
    # explicit BANDS (numbers and names mixed) gives the same
    out2 = str(tmp_path / "c2.tif")
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out2, "BANDS": "3, B03 2 b08"})
    assert np.array_equal(read_raster(out2), read_raster(out))


def test_tiled_equals_whole_image_for_receptive_field_within_halo(run_alg, tmp_path):
    raw = s2_raw((4, 150, 130), seed=5)
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    model = om.conv_model(tmp_path / "conv.onnx", layers=(3, 5), k=4, card_kw={"tile_size": 64})  # halo 3
    probs = whole_image_probs(model, raw.astype(np.float32) * np.float32(1e-4))[0]
    expected = (probs.argmax(0) + 1).astype(np.uint8)
    for tile, batch in ((16, 5), (23, 2), (64, 1), (200, 0)):  # 200 > raster: one padded tile
        out = str(tmp_path / f"c{tile}.tif")
        conf = str(tmp_path / f"conf{tile}.tif")
        prob = str(tmp_path / f"prob{tile}.tif")
        run_alg(
            ALG,
            {
                "INPUT": src,
                "MODEL": model,
                "OUTPUT": out,
                "CONFIDENCE": conf,
                "PROBABILITIES": prob,
                "TILE_SIZE": tile,
                "BATCH_SIZE": batch,
            },
        )
        got = read_raster(out)
        if tile == 200:
            # reflection padding changes the context at the far (right/bottom) edges only
            assert np.array_equal(got[:-3, :-3], expected[:-3, :-3])
            continue
        assert np.array_equal(got, expected), f"tile {tile}: {np.argwhere(got != expected)[:5]}"
        assert np.array_equal(read_raster(conf), np.rint(probs.max(0) * 100).astype(np.uint8))
        p = read_raster(prob)
        assert p.shape == (4, 150, 130) and np.array_equal(p, np.rint(probs * 100).astype(np.uint8))
    ds = gdal.Open(str(tmp_path / "prob16.tif"))
    assert ds.GetRasterBand(2).GetDescription() == "2 class 2 (%)" and ds.GetRasterBand(1).GetNoDataValue() == 255


def test_tiled_probabilities_match_untiled_within_1e6(tmp_path):
    """Core level: the float probabilities a tiled run feeds the writer equal the whole-image run's."""
    from satclassify_plugin.core.classify import pipeline as gdal_classify
    from satclassify_plugin.core.classify.inference import load_model

    raw = s2_raw((4, 70, 90), seed=9)
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    path = om.conv_model(tmp_path / "conv.onnx", layers=(5, 3, 3), k=3)  # halo 4
    whole = whole_image_probs(path, raw.astype(np.float32) * np.float32(1e-4))[0]
    model = load_model(path, "CPU")
    stitched = np.full(whole.shape, np.nan, np.float32)
    real_run = model.run_top
    seen = []

    def spy(batch, prob_heads=()):
        outs = real_run(batch, prob_heads)
        seen.append(outs[0][2])  # head 0: (argmax, max, probabilities)
        return outs

    model.run_top = spy
    res = gdal_classify.classify(
        src,
        model,
        [str(tmp_path / "o.tif")],
        probabilities=str(tmp_path / "p.tif"),
        options=ClassifyOptions(device="CPU", tile_size=20, batch_size=4),
    )
    from satclassify_plugin.core.classify.tiling import plan_tiles

    tiles = plan_tiles(90, 70, res.tile_size, 4)
    flat = np.concatenate(seen)
    assert res.tiles == len(tiles) == flat.shape[0]
    for t, p in zip(tiles, flat):
        (cx, cy, cw, ch), (ox, oy) = t.core, t.core_offset
        stitched[:, cy : cy + ch, cx : cx + cw] = p[:, oy : oy + ch, ox : ox + cw]
    assert not np.isnan(stitched).any()
    assert np.abs(stitched - whole).max() < 1e-6


def test_two_head_model_writes_both_heads(run_alg, tmp_path):
    raw = s2_raw((4, 60, 70), seed=3)
    raw[:, 0, 0] = 0
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    model = om.dual_model(tmp_path / "dual.onnx", card_kw={"tile_size": 24})
    fine, coarse = whole_image_probs(model, raw.astype(np.float32) * np.float32(1e-4))
    o1, o2 = str(tmp_path / "fine.tif"), str(tmp_path / "coarse.tif")
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": o1, "OUTPUT_2": o2})
    assert res["OUTPUT_2"] == o2
    for path, p, names in (
        (o1, fine, ["fine 1", "fine 2", "fine 3", "fine 4"]),
        (o2, coarse, ["coarse 1", "coarse 2"]),
    ):
        exp = (p.argmax(0) + 1).astype(np.uint8)
        exp[0, 0] = 0
        assert np.array_equal(read_raster(path), exp)
        assert raster.category_names(gdal.Open(path))[1:] == names
    assert gdal.Open(o2).GetRasterBand(1).GetDescription() == "clc_level1"
    # without OUTPUT_2 only the first head is written
    o3 = str(tmp_path / "only.tif")
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": o3})
    assert not res["OUTPUT_2"] and os.path.exists(o3)


def test_deepness_model_accepted(run_alg, tmp_path):
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, (3, 40, 45)).astype(np.uint8)
    src = make_raster(tmp_path / "rgb.tif", raw)
    w = np.array([[1.1, -0.9, 0.2], [0.1, 1.3, -1.2], [-1.05, 0.15, 0.95]], np.float32)
    model = om.deepness_model(tmp_path / "deep.onnx", w)
    out = str(tmp_path / "c.tif")
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out})
    x = (raw.astype(np.float64) / 255.0 - 0.5) / 0.25
    logits = np.einsum("kc,chw->khw", w.astype(np.float64), x)
    exp = (logits.argmax(0) + 1).astype(np.uint8)
    assert_classes(read_raster(out), exp, logits)
    assert raster.category_names(gdal.Open(out))[1:] == ["deep 0", "deep 1", "deep 2"]


def test_extent_subset_reads_context_outside_it(run_alg, tmp_path):
    raw = s2_raw((4, 80, 80), seed=6)
    src = make_raster(tmp_path / "s2.tif", raw, origin=ORIGIN, band_names=om.S2_BANDS4)
    model = om.conv_model(tmp_path / "conv.onnx", layers=(3, 3), card_kw={"tile_size": 16})  # halo 2
    probs = whole_image_probs(model, raw.astype(np.float32) * np.float32(1e-4))[0]
    full = (probs.argmax(0) + 1).astype(np.uint8)
    # columns 10..39, rows 20..49 (pixel 10 m, north-up); extent given in the layer CRS
    xmin, xmax = ORIGIN[0] + 100, ORIGIN[0] + 400
    ymax, ymin = ORIGIN[1] - 200, ORIGIN[1] - 500
    out = str(tmp_path / "sub.tif")
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out, "EXTENT": f"{xmin},{xmax},{ymin},{ymax} [EPSG:32632]"})
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize) == (30, 30)
    assert ds.GetGeoTransform() == pytest.approx((xmin, 10.0, 0.0, ymax, 0.0, -10.0))
    assert np.array_equal(read_raster(out), full[20:50, 10:40])
    # the same extent given in another CRS (EPSG:4326) is reprojected to the layer CRS
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRectangle

    tr = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:32632"), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance()
    )
    r = tr.transformBoundingBox(QgsRectangle(xmin + 20, ymin + 20, xmax - 20, ymax - 20))
    out2 = str(tmp_path / "sub2.tif")
    run_alg(
        ALG,
        {
            "INPUT": src,
            "MODEL": model,
            "OUTPUT": out2,
            "EXTENT": f"{r.xMinimum()},{r.xMaximum()},{r.yMinimum()},{r.yMaximum()} [EPSG:4326]",
        },
    )
    ds2 = gdal.Open(out2)
    gt = ds2.GetGeoTransform()
    c0, r0 = int(round((gt[0] - ORIGIN[0]) / 10)), int(round((ORIGIN[1] - gt[3]) / 10))
    assert 8 <= c0 <= 12 and 18 <= r0 <= 22
    assert np.array_equal(read_raster(out2), full[r0 : r0 + ds2.RasterYSize, c0 : c0 + ds2.RasterXSize])


def test_resample_to_model_resolution(run_alg, tmp_path):
    raw = s2_raw((4, 20, 24), seed=7)
    src = make_raster(tmp_path / "s2_20m.tif", raw, origin=ORIGIN, pixel=20.0, band_names=om.S2_BANDS4)
    w = np.array([[10.3, 0, 0, -5.1], [0, 10.7, 0, 0]], np.float32)
    model = om.linear_model(tmp_path / "lin.onnx", w, card_kw={"tile_size": 16})
    out = str(tmp_path / "c10.tif")
    fb = Feedback()
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out, "RESAMPLE": True}, feedback=fb)
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize) == (48, 40)
    assert ds.GetGeoTransform() == pytest.approx((ORIGIN[0], 10.0, 0.0, ORIGIN[1], 0.0, -10.0))
    vrt = gdal.Warp("", src, format="VRT", xRes=10, yRes=10, resampleAlg="bilinear", srcNodata=0, dstNodata=0)
    exp, logits = om.linear_expected(vrt.ReadAsArray(), w)
    exp[(vrt.ReadAsArray() == 0).any(axis=0)] = 0
    assert_classes(read_raster(out), exp, logits)
    assert any("resampled the input from 20 to 10" in m for m in fb.infos)


def test_cancel_leaves_no_file(run_alg, tmp_path):
    from qgis.core import QgsProcessingException

    raw = s2_raw((4, 64, 64))
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    model = om.linear_model(tmp_path / "lin.onnx", np.eye(3, 4), card_kw={"tile_size": 8})
    out = str(tmp_path / "c.tif")
    fb = Feedback(cancel_after=2)
    with pytest.raises(QgsProcessingException, match="cancelled by the user: no output was written"):
        run_alg(
            ALG,
            {"INPUT": src, "MODEL": model, "OUTPUT": out, "CONFIDENCE": str(tmp_path / "conf.tif"), "BATCH_SIZE": 1},
            feedback=fb,
        )
    assert len(fb.progress_values) < 64  # stopped within a batch of the request, not after all tiles
    assert sorted(os.listdir(tmp_path)) == ["lin.onnx", "s2.tif"]


def test_layer_action_opens_dialog_with_layer(plugin, tmp_path):
    from qgis.core import QgsProject, QgsRasterLayer

    src = make_raster(tmp_path / "s2.tif", s2_raw((4, 8, 8)), band_names=om.S2_BANDS4)
    layer = QgsRasterLayer(src, "s2")
    QgsProject.instance().addMapLayer(layer)
    try:
        dlg = plugin.open_dialog_for_layer("satclassify:classify", "INPUT", layer)
        assert dlg is not None and dlg.algorithm().id() == ALG
        value = dlg.mainWidget().wrappers["INPUT"].parameterValue()
        assert value in (layer, layer.id()) or getattr(value, "id", lambda: None)() == layer.id()
        dlg.close()
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_outputs_styled_on_load_with_the_card_classes(run_alg, tmp_path):
    from qgis.core import QgsPalettedRasterRenderer, QgsProcessingContext, QgsProject, QgsRasterLayer

    src = make_raster(tmp_path / "s2.tif", s2_raw((4, 20, 20)), band_names=om.S2_BANDS4)
    model = om.dual_model(tmp_path / "dual.onnx", card_kw={"tile_size": 16})
    o1, o2 = str(tmp_path / "fine.tif"), str(tmp_path / "coarse.tif")
    context = QgsProcessingContext()
    for path, name in ((o1, "OUTPUT"), (o2, "OUTPUT_2")):
        context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(name, QgsProject.instance(), name))
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": o1, "OUTPUT_2": o2}, context=context)
    for path, k, first in ((o1, 4, "fine 1"), (o2, 2, "coarse 1")):
        pp = context.layerToLoadOnCompletionDetails(path).postProcessor()
        assert pp is not None
        layer = QgsRasterLayer(path, "x")
        pp.postProcessLayer(layer, context, None)
        r = layer.renderer()
        assert isinstance(r, QgsPalettedRasterRenderer)
        assert [c.value for c in r.classes()] == list(range(1, k + 1))
        assert r.classes()[0].label.startswith(first + " \u2013 ") and r.classes()[0].color.name() == "#e6004d"


def test_tile_shrinks_to_fit_keeping_the_tile_count(tmp_path):
    """A model that takes any size (card size_multiple 1, or cnn_dual) runs on the smallest tile that needs
    no more tiles; others keep multiples of 32. Results stay equal to the whole-image run."""
    from satclassify_plugin.core.classify.pipeline import classify
    from satclassify_plugin.core.classify.tiling import fit_tile, plan_tiles

    raw = s2_raw((4, 100, 100), seed=11)
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    any_size = om.conv_model(tmp_path / "a.onnx", layers=(3, 3), card_kw={"tile_size": 64, "size_multiple": 1})
    default = om.conv_model(tmp_path / "b.onnx", layers=(3, 3), card_kw={"tile_size": 64})
    expected = whole_image_probs(any_size, raw.astype(np.float32) * np.float32(1e-4))[0].argmax(0) + 1
    r1 = classify(src, any_size, [str(tmp_path / "a.tif")])
    r2 = classify(src, default, [str(tmp_path / "b.tif")])
    assert r1.tile_size == fit_tile(100, 100, 64, 2) == 52 and r2.tile_size == 64
    assert r1.tiles == r2.tiles == len(plan_tiles(100, 100, 64, 2)) == 4
    assert np.array_equal(read_raster(tmp_path / "a.tif"), expected.astype(np.uint8))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_raster_nan_and_inf_are_nodata(run_alg, tmp_path, bad):
    raw = s2_raw((4, 30, 30), seed=12).astype(np.float32)
    raw[1, 7, 9] = bad
    src = make_raster(tmp_path / "f.tif", raw, band_names=om.S2_BANDS4)
    w = np.array([[10.3, 0, 0, -5.1], [0, 10.7, 0, 0], [-3.3, 0, 0, 12.9]], np.float32)
    model = om.linear_model(tmp_path / "lin.onnx", w, card_kw={"tile_size": 16})
    out = str(tmp_path / "c.tif")
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out})
    expected, logits = om.linear_expected(np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0), w)
    expected[7, 9] = 0
    got = read_raster(out)
    assert got[7, 9] == 0 and (got != 0).sum() == 30 * 30 - 1
    assert_classes(got, expected, logits)


def test_fixed_size_model_runs_with_its_tile(run_alg, tmp_path):
    from qgis.core import QgsProcessingException

    raw = s2_raw((4, 40, 50), seed=13)
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    w = np.array([[10.3, 0, 0, -5.1], [0, 10.7, 0, 0]], np.float32)
    model = om.linear_model(tmp_path / "fixed.onnx", w, fixed_hw=(16, 16), batch=2, card_kw={"tile_size": 16})
    out = str(tmp_path / "c.tif")
    fb = Feedback()
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out}, feedback=fb)
    expected, logits = om.linear_expected(raw, w)
    assert_classes(read_raster(out), expected, logits)
    assert any("tile(s) of 16 x 16 px (halo 0), batch 2" in m for m in fb.infos)
    with pytest.raises(QgsProcessingException, match=r"the model takes fixed 16 x 16 tiles: set TILE_SIZE to 16 or 0"):
        run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out, "TILE_SIZE": 32})
    with pytest.raises(QgsProcessingException, match=r"the model takes a fixed batch of 2: set BATCH_SIZE to 2 or 0"):
        run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out, "BATCH_SIZE": 3})


def test_multithreaded_block_decoding_gives_the_same_result(tmp_path):
    """decode_threads (automatic on GPU runs) reopens a compressed GeoTIFF with GDAL NUM_THREADS; the
    union reads of neighbouring tiles and the threaded decoding must not change a single pixel."""
    from satclassify_plugin.core.classify.pipeline import classify

    raw = s2_raw((4, 300, 420), seed=5)
    src = str(tmp_path / "s2_deflate.tif")
    ds = gdal.GetDriverByName("GTiff").Create(
        src, 420, 300, 4, gdal.GDT_UInt16, ["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64", "COMPRESS=DEFLATE"]
    )
    ds.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    for i, name in enumerate(om.S2_BANDS4):
        ds.GetRasterBand(i + 1).WriteArray(raw[i])
        ds.GetRasterBand(i + 1).SetDescription(name)
    ds = None
    model = om.conv_model(tmp_path / "conv.onnx", card_kw={"tile_size": 96, "halo": 2})
    logs = {True: [], False: []}
    outs = {}
    for threaded in (False, True):
        out = str(tmp_path / f"c_{threaded}.tif")
        conf = str(tmp_path / f"p_{threaded}.tif")
        res = classify(
            src,
            model,
            [out],
            confidence=conf,
            options=ClassifyOptions(device="CPU", batch_size=3, decode_threads=threaded),
            monitor=Monitor(info=logs[threaded].append),
        )
        assert res.tiles > 6
        outs[threaded] = (read_raster(out), read_raster(conf))
    assert np.array_equal(outs[True][0], outs[False][0]) and np.array_equal(outs[True][1], outs[False][1])
    assert any("NUM_THREADS" in m for m in logs[True]) and not any("NUM_THREADS" in m for m in logs[False])
    # and the tiled result is the whole-image result (receptive field within the halo)
    probs = whole_image_probs(model, raw.astype(np.float32) * 1e-4)[0]
    assert np.array_equal(outs[False][0], (probs.argmax(axis=0) + 1).astype(np.uint8))


def test_argmax_in_the_graph_equals_numpy_argmax(tmp_path, monkeypatch):
    """load_model adds ArgMax/ReduceMax outputs to the graph (onnx installed); without onnx the tool takes
    them in numpy. Both give the same class, confidence and probability rasters, ties included."""
    from satclassify_plugin.core.classify import inference
    from satclassify_plugin.core.classify import pipeline as gdal_classify

    raw = s2_raw((4, 60, 80), seed=11)
    raw[:, :10, :10] = 1000  # a flat corner: a linear model with equal rows ties there
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    dual = om.dual_model(tmp_path / "dual.onnx", card_kw={"tile_size": 32})
    lin = om.linear_model(tmp_path / "tie.onnx", [[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    results = {}
    for mode in ("graph", "numpy"):
        if mode == "numpy":
            monkeypatch.setattr(inference, "add_top_outputs", lambda *a, **k: None)
        for name, path in (("dual", dual), ("tie", lin)):
            model = inference.load_model(path, "CPU")
            assert model.graph_top == (mode == "graph")
            outs = [str(tmp_path / f"{mode}_{name}_{h}.tif") for h in range(len(model.card.heads))]
            conf, prob = str(tmp_path / f"{mode}_{name}_c.tif"), str(tmp_path / f"{mode}_{name}_p.tif")
            gdal_classify.classify(
                src,
                model,
                outs,
                confidence=conf,
                probabilities=prob,
                options=ClassifyOptions(device="CPU", batch_size=3),
            )
            results[(mode, name)] = [read_raster(p) for p in outs + [conf, prob]]
    for name in ("dual", "tie"):
        for a, b in zip(results[("graph", name)], results[("numpy", name)]):
            assert np.array_equal(a, b), name
    classes = results[("graph", "tie")][0]
    assert (classes[:10, :10] == 1).all()  # tie between classes 1 and 2: the lower one, like np.argmax


def test_run_reports_where_the_inference_thread_spent_its_time(tmp_path):
    from satclassify_plugin.core.classify.pipeline import classify

    src = make_raster(tmp_path / "s2.tif", s2_raw((4, 64, 64)), band_names=om.S2_BANDS4)
    model = om.conv_model(tmp_path / "conv.onnx", card_kw={"tile_size": 32, "halo": 2})
    logs = []
    res = classify(
        src, model, [str(tmp_path / "c.tif")], options=ClassifyOptions(device="CPU"), monitor=Monitor(info=logs.append)
    )
    assert set(res.stats) == {"inference", "wait_input", "wait_writer", "reader_cpu", "writer_cpu", "process_cpu"}
    assert all(v >= 0 for v in res.stats.values()) and res.stats["inference"] > 0
    assert res.stats["inference"] + res.stats["wait_input"] + res.stats["wait_writer"] <= res.seconds
    # CPU seconds: the reader and writer threads are part of the process's CPU time
    assert res.stats["reader_cpu"] > 0 and res.stats["reader_cpu"] + res.stats["writer_cpu"] <= res.stats["process_cpu"]
    line = [m for m in logs if m.startswith("time of the inference thread")]
    assert len(line) == 1 and "onnxruntime" in line[0] and "waiting for input" in line[0]
    cpu = [m for m in logs if m.startswith("CPU time: reader thread")]
    assert len(cpu) == 1 and "writer thread" in cpu[0] and "whole process" in cpu[0]


def test_card_input_clip_saturates_the_stack_like_the_training_imagery(run_alg, tmp_path):
    """A card's input_clip (EuroSAT RGB models: DN 0..2750) clips each band before the scaling: a stack with bright
    pixels classifies as if they were saturated at the clip, exactly as the training data were."""
    raw = s2_raw()
    raw[:, :30] = np.random.default_rng(3).integers(2000, 9000, (4, 30, raw.shape[2]))
    src = make_raster(tmp_path / "s2.tif", raw, origin=ORIGIN, pixel=10.0, band_names=om.S2_BANDS4)
    w = np.array([[10.3, 0, 0, -5.1], [0, 10.7, 0, 0], [-3.3, 0, 0, 12.9]], np.float32)
    clip = [[0, 2750], [0, 2750], [500, 2750], [0, 4000]]
    model = om.linear_model(tmp_path / "lin.onnx", w, card_kw={"tile_size": 32, "input_clip": clip})
    out = str(tmp_path / "classes.tif")
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out})
    lo, hi = np.array(clip, np.float64).T
    expected, logits = om.linear_expected(np.clip(raw.astype(np.float64), lo[:, None, None], hi[:, None, None]), w)
    assert_classes(read_raster(out), expected, logits)
    unclipped, _ = om.linear_expected(raw, w)
    assert (unclipped != expected).mean() > 0.05  # the clip changes the map: the test would see it missing
