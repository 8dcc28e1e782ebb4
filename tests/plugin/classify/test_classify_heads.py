"""classify with a two-head model: every head written next to OUTPUT by default (WRITE_ALL_HEADS), a clear log
line when a head is left out, OUTPUT_2 still wins, the derived name goes through the output guard."""

import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProject

from satclassify_plugin.core import raster
from tests import onnx_models as om
from tests.rasters import make_raster

from ..sentinel_helpers import LogFeedback

ALG = "satclassify:classify"


def inputs(tmp_path, name="s2.tif"):
    raw = np.random.default_rng(0).integers(10, 4000, (4, 20, 24)).astype(np.uint16)
    src = make_raster(tmp_path / name, raw, band_names=om.S2_BANDS4)
    model = om.dual_model(tmp_path / "dual.onnx", card_kw={"tile_size": 16})
    return src, model


def names_of(path):
    return raster.category_names(gdal.Open(str(path)))


def test_every_head_is_written_next_to_output_by_default(run_alg, tmp_path):
    src, model = inputs(tmp_path)
    fb = LogFeedback()
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "classes.tif")}, feedback=fb)
    second = tmp_path / "classes_clc_level1.tif"
    assert second.is_file() and res["HEAD_OUTPUTS"] == [str(tmp_path / "classes.tif"), str(second)]
    assert names_of(tmp_path / "classes.tif")[1:] == ["fine 1", "fine 2", "fine 3", "fine 4"]
    assert names_of(second)[1:] == ["coarse 1", "coarse 2"]
    a = gdal.Open(str(second)).ReadAsArray()
    assert set(np.unique(a)) <= {1, 2} and a.shape == (20, 24)
    assert f"head 'clc_level1' written to {second}" in fb.text
    # the same result as naming it in OUTPUT_2
    run_alg(
        ALG, {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "o.tif"), "OUTPUT_2": str(tmp_path / "o2.tif")}
    )
    assert np.array_equal(gdal.Open(str(tmp_path / "o2.tif")).ReadAsArray(), a)


def test_output_2_wins_and_nothing_extra(run_alg, tmp_path):
    src, model = inputs(tmp_path)
    res = run_alg(
        ALG,
        {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "fine.tif"), "OUTPUT_2": str(tmp_path / "coarse.tif")},
    )
    assert res["HEAD_OUTPUTS"] == [str(tmp_path / "fine.tif"), str(tmp_path / "coarse.tif")]
    assert not (tmp_path / "fine_clc_level1.tif").exists()


def test_without_write_all_heads_the_log_says_what_was_left_out(run_alg, tmp_path):
    src, model = inputs(tmp_path)
    fb = LogFeedback()
    res = run_alg(
        ALG,
        {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "classes.tif"), "WRITE_ALL_HEADS": False},
        feedback=fb,
    )
    assert res["HEAD_OUTPUTS"] == [str(tmp_path / "classes.tif")]
    assert not (tmp_path / "classes_clc_level1.tif").exists()
    assert (
        "the model has 2 heads: head 'clc_level1' (2 classes) was not written: give OUTPUT_2, or tick "
        "'Write every head next to OUTPUT' (WRITE_ALL_HEADS)"
    ) in fb.text


def test_single_head_model_writes_one_file(run_alg, tmp_path):
    src, _ = inputs(tmp_path)
    model = om.linear_model(tmp_path / "m.onnx", np.eye(3, 4))
    res = run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "classes.tif")})
    assert res["HEAD_OUTPUTS"] == [str(tmp_path / "classes.tif")]
    assert [p.name for p in tmp_path.glob("classes*.tif")] == ["classes.tif"]


def test_derived_name_goes_through_the_output_guard(run_alg, tmp_path):
    src, model = inputs(tmp_path, name="x_clc_level1.tif")  # the input has the name head 2 would get
    before = gdal.Open(src).ReadAsArray()
    with pytest.raises(QgsProcessingException) as e:
        run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": str(tmp_path / "x.tif")})
    assert "is the input INPUT: writing it would destroy the input" in str(e.value)
    assert "x_clc_level1.tif" in str(e.value) and not (tmp_path / "x.tif").exists()
    assert np.array_equal(gdal.Open(src).ReadAsArray(), before)
    # ... and two outputs on one file
    with pytest.raises(QgsProcessingException, match="are the same file"):
        run_alg(
            ALG,
            {
                "INPUT": src,
                "MODEL": model,
                "OUTPUT": str(tmp_path / "y.tif"),
                "CONFIDENCE": str(tmp_path / "y_clc_level1.tif"),
            },
        )


def test_every_head_is_loaded_and_styled(run_alg, tmp_path):
    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer

    src, model = inputs(tmp_path)
    out = str(tmp_path / "classes.tif")
    context = QgsProcessingContext()
    context.addLayerToLoadOnCompletion(
        out, QgsProcessingContext.LayerDetails("Classes", QgsProject.instance(), "OUTPUT")
    )
    run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out}, context=context)
    second = os.path.join(str(tmp_path), "classes_clc_level1.tif")
    assert context.willLoadLayerOnCompletion(second)
    assert context.layerToLoadOnCompletionDetails(second).name == "Classes (clc_level1)"
    pp = context.layerToLoadOnCompletionDetails(second).postProcessor()
    layer = QgsRasterLayer(second, "x")
    pp.postProcessLayer(layer, context, None)
    assert isinstance(layer.renderer(), QgsPalettedRasterRenderer)
    assert all(c.label.startswith("coarse ") for c in layer.renderer().classes())


def test_qgis_process_writes_every_head_unless_told_not_to(tmp_path):
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    src, model = inputs(tmp_path)
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")

    def run(*extra):
        proc = subprocess.run(
            [
                os.path.join(root, "scripts", "qgis_process.sh"),
                "run",
                ALG,
                "--",
                f"INPUT={src}",
                f"MODEL={model}",
                *extra,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout + proc.stderr

    out = run(f"OUTPUT={tmp_path / 'a.tif'}")
    assert (tmp_path / "a_clc_level1.tif").is_file() and "head 'clc_level1' written to" in out
    out = run(f"OUTPUT={tmp_path / 'b.tif'}", "WRITE_ALL_HEADS=false")
    assert not (tmp_path / "b_clc_level1.tif").exists() and "was not written" in out
