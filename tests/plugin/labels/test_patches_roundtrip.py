"""Cross-env round trip of a multi-label patch classifier: a BigEarthNet-style archive written and imported,
cnn_class trained and exported in the training env (SATCLASSIFY_TRAIN_PYTHON), then satclassify:classifypatches
through processing.run and qgis_process in QGIS."""

import json
import os
import subprocess

import numpy as np
import pytest

from tests.plugin.classify.test_classifypatches_qgis_process import run_qgis_process
from tests.rasters import make_raster

TRAIN_PY = os.environ.get("SATCLASSIFY_TRAIN_PYTHON")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
pytestmark = pytest.mark.skipif(
    not TRAIN_PY, reason="SATCLASSIFY_TRAIN_PYTHON is not set (scripts/test.sh sets it to .venv-train/bin/python)"
)
BANDS = ["B02", "B03", "B04", "B08"]


def _train_env(args, module="training"):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([TRAIN_PY, "-m", module] + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    base = tmp_path_factory.mktemp("ml")
    _train_env(["bigearthnet", str(base / "BigEarthNet-v1.0")], module="tests.benchmark_archives")
    _train_env(
        ["import", "bigearthnet", str(base / "BigEarthNet-v1.0"), "--out", str(base / "ds"), "--bands", ",".join(BANDS)]
    )
    _train_env(
        [
            "train",
            "--data",
            str(base / "ds"),
            "--model",
            "cnn_class",
            "--encoder",
            "resnet18",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--device",
            "cpu",
            "--no-progress",
            "--early-stopping",
            "0",
            "--out",
            str(base / "run"),
        ]
    )
    onnx_path = str(base / "ml.onnx")
    _train_env(["export", "--checkpoint", str(base / "run" / "best.pt"), "--out", onnx_path])
    return onnx_path


def _scene(tmp_path):
    """72 x 96 pixels = 3 x 4 patches of 24: forest, water and arable signatures in blocks."""
    from tests.benchmark_archives import SIGNATURE

    rng = np.random.default_rng(1)
    names = [
        ["Coniferous forest"] * 4,
        ["Water bodies"] * 2 + ["Coniferous forest"] * 2,
        ["Non-irrigated arable land"] * 4,
    ]
    img = np.zeros((4, 72, 96))
    for r, row in enumerate(names):
        for c, n in enumerate(row):
            img[:, r * 24 : (r + 1) * 24, c * 24 : (c + 1) * 24] = np.array(SIGNATURE[n])[:, None, None]
    img = np.clip(img + rng.normal(0, 120, img.shape), 1, 20000).astype(np.uint16)
    return make_raster(tmp_path / "scene.tif", img, band_names=BANDS)


def _read(path):
    from osgeo import ogr

    ds = ogr.Open(path)
    lyr = ds.GetLayer(0)
    out = {
        (f["row"], f["col"]): {k: f[k] for k in ("labels", "top_label", "top_p")}
        | {"p": [f[f"p_{v}"] for v in (24, 41)]}
        for f in lyr
    }
    lyr = None
    ds = None
    return out


def test_trained_multilabel_model_through_classifypatches(model, tmp_path, run_alg):
    import onnxruntime as ort

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    card = json.loads(sess.get_modelmeta().custom_metadata_map["satclassify"])
    head = card["heads"][0]
    assert (head["task"], head["activation"], card["tile_size"], len(head["classes"])) == (
        "multilabel",
        "sigmoid",
        24,
        43,
    )
    th = head["thresholds"]
    names = [c["name"] for c in head["classes"]]
    scene = _scene(tmp_path)
    res = run_alg("satclassify:classifypatches", {"INPUT": scene, "MODEL": model, "OUTPUT": str(tmp_path / "a.gpkg")})
    assert res["COUNT"] == 12
    a = _read(res["OUTPUT"])
    assert set(a) == {(r, c) for r in range(3) for c in range(4)}
    from osgeo import ogr

    ds = ogr.Open(res["OUTPUT"])
    for f in ds.GetLayer(0):
        probs = [f[f"p_{c['value']}"] for c in head["classes"]]
        assert all(0.0 <= p <= 1.0 for p in probs)
        want = [names[k] for k in np.argsort(-np.array(probs), kind="stable") if probs[k] >= th[k]]
        assert sorted(f["labels"].split("; ")) == sorted(want) if want else f["labels"] in ("", None)
        assert f["top_label"] == names[int(np.argmax(probs))]
    ds = None
    # the same through qgis_process
    out = tmp_path / "b.gpkg"
    stdout = run_qgis_process(tmp_path, {"INPUT": scene, "MODEL": model, "OUTPUT": out})
    assert "COUNT:\t12" in stdout
    b = _read(str(out))
    for k in a:
        assert a[k]["labels"] == b[k]["labels"] and a[k]["p"] == pytest.approx(b[k]["p"], abs=1e-6)
