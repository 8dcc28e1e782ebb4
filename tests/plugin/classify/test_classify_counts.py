"""classify's core returns what it wrote and counted: per head, the pixels of each class value, so the tool styles
the loaded rasters (classes present, area) without reading them again; the core owns the model's device."""

import numpy as np
import pytest

from satclassify_plugin.core.classify.options import ClassifyOptions
from satclassify_plugin.core.contract.errors import SatClassifyError
from tests import onnx_models as om
from tests.rasters import make_raster, read_raster

ALG = "satclassify:classify"


def s2_raw(shape, seed=0):
    return np.random.default_rng(seed).integers(10, 4000, shape).astype(np.uint16)


def test_core_counts_each_written_head_like_the_file(tmp_path):
    from satclassify_plugin.core.classify.pipeline import classify

    raw = s2_raw((4, 70, 90), seed=4)
    raw[:, 5:9, 3:20] = 0  # nodata: class 0
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    model = om.dual_model(tmp_path / "dual.onnx", card_kw={"tile_size": 24})
    fine = str(tmp_path / "fine.tif")
    # several tiles, an extent that cuts tiles: the counts are those of the window written
    res = classify(
        src, model, [fine, None], options=ClassifyOptions(device="CPU", extent=(500030, 4999400, 500870, 4999980))
    )
    assert len(res.class_counts) == 2 and res.class_counts[1] is None  # the second head was not written
    written = read_raster(fine)
    assert res.tiles > 1 and written.shape == (58, 84)
    assert np.array_equal(res.class_counts[0], np.bincount(written.ravel(), minlength=256))
    assert res.class_counts[0][0] == 4 * 17 and res.class_counts[0][1:5].sum() == written.size - 68

    coarse = str(tmp_path / "coarse.tif")
    res = classify(src, model, [fine.replace("fine", "fine2"), coarse], options=ClassifyOptions(device="CPU"))
    for path, counts in zip((fine.replace("fine", "fine2"), coarse), res.class_counts):
        assert np.array_equal(counts, np.bincount(read_raster(path).ravel(), minlength=256))


def test_tool_styles_its_outputs_from_the_core_counts_without_reading_pixels(run_alg, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer

    from satclassify_plugin.core.maps import legend

    raw = s2_raw((4, 40, 50), seed=2)
    raw[:, :3, :3] = 0
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    model = om.dual_model(tmp_path / "dual.onnx", card_kw={"tile_size": 16})
    o1, o2 = str(tmp_path / "fine.tif"), str(tmp_path / "coarse.tif")
    context = QgsProcessingContext()
    for path, name in ((o1, "OUTPUT"), (o2, "OUTPUT_2")):
        context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(name, QgsProject.instance(), name))
    counted = legend.class_counts

    def no_reading(*args, **kwargs):
        raise AssertionError("the class raster's pixels were read again to count them")

    monkeypatch.setattr(legend, "class_counts", no_reading)
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": o1, "OUTPUT_2": o2}, context=context)
    monkeypatch.setattr(legend, "class_counts", counted)
    for path in (o1, o2):
        layer = QgsRasterLayer(path, "x")
        context.layerToLoadOnCompletionDetails(path).postProcessor().postProcessLayer(layer, context, None)
        labels = [c.label for c in layer.renderer().classes()]
        expected = [legend.legend_label(e) for e in legend.class_areas(path)]  # counted from the file
        assert labels == expected and len(labels) >= 2 and " ha (" in labels[0]


def test_a_model_loaded_for_another_device_is_refused(tmp_path):
    from satclassify_plugin.core.classify.inference import load_model
    from satclassify_plugin.core.classify.pipeline import classify, open_model

    src = make_raster(tmp_path / "s2.tif", s2_raw((4, 20, 20)), band_names=om.S2_BANDS4)
    path = om.conv_model(tmp_path / "conv.onnx", card_kw={"tile_size": 16})
    model = load_model(path, "CPU")
    assert model.device == "CPU" and open_model(model, ClassifyOptions(device="CPU")) is model
    assert open_model(path, ClassifyOptions(device="CPU")).device == "CPU"  # a path: loaded on the options' device
    with pytest.raises(SatClassifyError, match="was loaded for DEVICE CPU but the run asks for DEVICE Auto"):
        classify(src, model, [str(tmp_path / "c.tif")])
    assert not (tmp_path / "c.tif").exists()
