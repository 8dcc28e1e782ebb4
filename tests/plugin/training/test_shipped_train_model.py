"""The shipped model "Sentinel-2 + CLC -> trained model -> map" end to end on the embedded sample:
rasterizeclc -> buildpatches -> trainmodel (training environment, a tiny CNN-dual, one epoch) -> classify ->
assessaccuracy, through processing.run as the Graphical Modeler runs it."""

import json
import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

from ..model_helpers import check_model_steps, model_dest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODEL = "model:Sentinel-2 + CLC -> trained model -> map"
TRAIN_PY = os.environ.get("SATCLASSIFY_TRAINING_PYTHON") or os.environ.get("SATCLASSIFY_TRAIN_PYTHON")


def test_model_installed_listed_and_built_on_declared_parameters(plugin):
    assert os.path.exists(os.path.join(plugin.models_folder(), "satclassify_train_and_map.model3"))
    alg = QgsApplication.processingRegistry().algorithmById(MODEL)
    assert alg is not None
    assert check_model_steps(QgsApplication.processingRegistry(), alg) == [
        "satclassify:assessaccuracy",
        "satclassify:buildpatches",
        "satclassify:classify",
        "satclassify:rasterizeclc",
        "satclassify:trainmodel",
    ]


@pytest.mark.skipif(not TRAIN_PY, reason="SATCLASSIFY_TRAIN_PYTHON is not set (scripts/test.sh sets it)")
def test_the_chain_runs_on_the_embedded_sample(plugin, tmp_path, monkeypatch):
    import sys

    import processing

    monkeypatch.setenv("SATCLASSIFY_TRAINING_PYTHON", TRAIN_PY)
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from make_sample import make_sample

    image, clc = make_sample(str(tmp_path / "sample"), size=192, seed=3)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        "widths: {s1: 16, s2: 32, s3: 32, head: 32}\nearly_stopping: 0\npixels_per_patch: 256\nbatch_size: 64\n"
    )  # a tiny CNN-dual: seconds
    alg = QgsApplication.processingRegistry().algorithmById(MODEL)
    out = {
        name: str(tmp_path / f)
        for name, f in (
            ("labels", "labels.tif"),
            ("dataset", "dataset"),
            ("model", "model.onnx"),
            ("training_report", "train.html"),
            ("checkpoints", "run"),
            ("classes", "classes.tif"),
            ("accuracy_report", "accuracy.html"),
            ("metrics", "metrics.json"),
        )
    }
    params = {
        "IMAGE": image,
        "CLC": clc,
        "LEVEL": 1,
        "PATCH_SIZE": 32,
        "ARCHITECTURE": 1,
        "EPOCHS": 2,
        "DEVICE": 1,
        "CONFIG": str(cfg),
        "SEED": 0,
        **{model_dest(alg, k): v for k, v in out.items()},
    }
    res = processing.run(MODEL, params, context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    for k in ("model", "classes", "accuracy_report", "training_report"):
        assert os.path.isfile(out[k]), k
        assert os.path.samefile(res[model_dest(alg, k)], out[k])
    with open(out["metrics"]) as f:
        metrics = json.load(f)
    print(f"chain on the sample: OA {metrics['overall_accuracy']:.3f}, kappa {metrics['kappa']:.3f}")
    assert metrics["overall_accuracy"] > 0.5
    cls = gdal.Open(out["classes"]).ReadAsArray()
    with open(os.path.join(out["dataset"], "manifest.json")) as f:
        values = {c["value"] for c in json.load(f)["classes"]}
    assert set(np.unique(cls).tolist()) - {0} <= values and len(set(np.unique(cls).tolist()) - {0}) >= 2
    with open(out["training_report"], encoding="utf-8") as f:
        assert "Validation figures" in f.read()
