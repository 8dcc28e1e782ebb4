"""satclassify:trainmodel through processing.run: the training CLI in the training environment as a child process.

Needs SATCLASSIFY_TRAIN_PYTHON or SATCLASSIFY_TRAINING_PYTHON (scripts/test.sh sets the first to .venv-train's
Python). Every training here is tiny (a 30-patch dataset, 1-2 epochs of CNN-dual: seconds)."""

import json
import os
import subprocess
import time

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TRAIN_PY = os.environ.get("SATCLASSIFY_TRAINING_PYTHON") or os.environ.get("SATCLASSIFY_TRAIN_PYTHON")
pytestmark = pytest.mark.skipif(
    not TRAIN_PY,
    reason="no training environment: SATCLASSIFY_TRAIN_PYTHON is not set "
    "(scripts/test.sh sets it to .venv-train/bin/python)",
)

BANDS = ["B02", "B03", "B04", "B08"]
MEANS = np.array([[800, 900, 700, 3000], [400, 600, 300, 4000], [600, 500, 300, 200]], dtype=np.float64)
CLASSES = [
    {"value": 1, "code": "211", "name": "Arable land", "color": "#ffffa8"},
    {"value": 2, "code": "311", "name": "Broad-leaved forest", "color": "#80ff00"},
    {"value": 3, "code": "512", "name": "Water bodies", "color": "#80f2e6"},
]
#: a tiny CNN-dual: seconds per epoch on 2 CPU cores
TINY = "widths: {s1: 16, s2: 32, s3: 32, head: 32}\nearly_stopping: 0\ntile_size: 64\n"


def _image(lab, rng):
    img = MEANS[lab - 1].transpose(2, 0, 1) + rng.normal(0, 120, (4,) + lab.shape)
    return np.clip(img, 1, 10000).astype(np.uint16)


def _make_dataset(folder, n_train=24, n_val=6):
    from satclassify_plugin.core.contract.dataset import DatasetSpec, DatasetWriter

    rng = np.random.default_rng(0)
    w = DatasetWriter(folder, DatasetSpec(tuple(BANDS), 32, tuple(CLASSES)), overwrite=True)
    for split, n in (("train", n_train), ("val", n_val)):
        for _ in range(n):
            lab = np.ones((32, 32), np.uint8)
            a, b = np.sort(rng.integers(4, 28, 2))
            lab[:, :a], lab[:, a:b], lab[:, b:] = rng.permutation(3) + 1
            w.add(split, _image(lab, rng), lab)
    w.close({"resolution_m": 10.0})
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _make_dataset(str(tmp_path_factory.mktemp("tm") / "ds"))


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text(TINY)
    return str(p)


class RecordingFeedback(QgsProcessingFeedback):
    """Records progress and log lines with the time they came; cancels when ``cancel_when(line)`` is true."""

    def __init__(self, cancel_when=None, cancel_at_progress=None):
        super().__init__()
        self.progress, self.lines, self.warnings = [], [], []
        self.cancel_when, self.canceled_at = cancel_when, None
        self.progressChanged.connect(self._progress)
        self.cancel_at_progress = cancel_at_progress

    def _progress(self, p):
        self.progress.append((time.time(), p))
        if self.cancel_at_progress is not None and self.canceled_at is None and 0 < p:
            self.canceled_at = time.time()
            self.cancel()

    def pushInfo(self, info):
        self.lines.append((time.time(), info))
        if self.cancel_when and self.canceled_at is None and self.cancel_when(info):
            self.canceled_at = time.time()
            self.cancel()
        super().pushInfo(info)

    def pushCommandInfo(self, info):
        if self.cancel_when and self.canceled_at is None and self.cancel_when(info):
            self.canceled_at = time.time()
            self.cancel()
        super().pushCommandInfo(info)

    def pushWarning(self, warning):
        self.warnings.append(warning)
        super().pushWarning(warning)


def _params(dataset, tmp_path, config, **kw):
    p = {
        "INPUT": dataset,
        "ARCHITECTURE": 1,
        "EPOCHS": 2,
        "DEVICE": 1,
        "SEED": 3,
        "CONFIG": config,
        "OUTPUT": str(tmp_path / "model.onnx"),
        "CHECKPOINTS": str(tmp_path / "run"),
        "REPORT": str(tmp_path / "report.html"),
    }
    p.update(kw)
    return p


def _card(path):
    import onnx

    m = onnx.load(path, load_external_data=False)
    return json.loads({p.key: p.value for p in m.metadata_props}["satclassify"])


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("SATCLASSIFY_TRAINING_PYTHON", TRAIN_PY)


def test_trains_exports_and_reports_with_progress_during_training(run_alg, dataset, tiny_config, tmp_path):
    fb = RecordingFeedback()
    t0 = time.time()
    res = run_alg(
        "satclassify:trainmodel",
        _params(dataset, tmp_path, tiny_config, OUTPUT_INT8=str(tmp_path / "model-int8.onnx")),
        feedback=fb,
    )
    end = time.time()
    int8 = _card(res["OUTPUT_INT8"])
    assert int8["quantization"]["dtype"] == "int8" and int8["heads"] == _card(res["OUTPUT"])["heads"]
    assert res["OUTPUT"] == str(tmp_path / "model.onnx") and os.path.isfile(res["OUTPUT"])
    card = _card(res["OUTPUT"])
    assert card["architecture"] == "cnn_dual" and card["bands"] == BANDS
    assert [c["value"] for c in card["heads"][0]["classes"]] == [1, 2, 3]
    assert res["DEVICE_USED"].startswith("cpu") and res["EPOCHS_RUN"] == 2
    assert 0.5 < res["VAL_OA"] <= 1.0
    # progress reached the feedback during the training (epoch 1 of 2: 42.5 %), well before the tool ended
    mid = [t for t, p in fb.progress if 0 < p < 85]
    assert mid and min(mid) < end - 3, fb.progress
    epochs = [line for _t, line in fb.lines if line.startswith("epoch ")]
    assert len(epochs) == 2 and "val_miou" in epochs[0]
    assert any(line.startswith("Training cnn_dual") and " on cpu" in line for _t, line in fb.lines)
    for f in ("best.pt", "last.pt", "log.csv", "curves.png", "metrics-val.json"):
        assert os.path.isfile(tmp_path / "run" / f), f
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "Validation figures" in html and "Water bodies" in html
    assert "device used" in html and f">{res['DEVICE_USED']}<" in html
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]
    assert end - t0 < 120


def test_same_recipe_and_seed_as_the_cli_gives_the_same_card(run_alg, dataset, tiny_config, tmp_path):
    """The tool and `python -m training train` + `export` with the same recipe and seed: the same card, and the two
    models classify the dataset's validation patches alike (agreement printed)."""
    res = run_alg("satclassify:trainmodel", _params(dataset, tmp_path, tiny_config), feedback=RecordingFeedback())
    env = dict(os.environ, PYTHONPATH=ROOT)
    cli_run, cli_onnx = str(tmp_path / "cli-run"), str(tmp_path / "cli.onnx")
    for args in (
        [
            "train",
            "--data",
            dataset,
            "--model",
            "cnn_dual",
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--seed",
            "3",
            "--config",
            tiny_config,
            "--out",
            cli_run,
            "--no-progress",
        ],
        ["export", "--checkpoint", os.path.join(cli_run, "best.pt"), "--out", cli_onnx],
    ):
        r = subprocess.run([TRAIN_PY, "-m", "training"] + args, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    a, b = _card(res["OUTPUT"]), _card(cli_onnx)
    assert a == b
    import onnxruntime as ort

    x = (
        np.concatenate(
            [np.load(os.path.join(dataset, f)) for f in sorted(os.listdir(dataset)) if f.startswith("images-val")]
        ).astype(np.float32)
        * a["input_scale"]
    )
    x = (x - np.array(a["mean"], np.float32)[:, None, None]) / np.array(a["std"], np.float32)[:, None, None]
    preds = [
        ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0].argmax(1)
        for p in (res["OUTPUT"], cli_onnx)
    ]
    agreement = float((preds[0] == preds[1]).mean())
    print(f"trainmodel vs CLI: class agreement {agreement:.4%} on {preds[0].size} validation pixels")
    assert agreement > 0.999


def _alive(marker):
    """Processes whose command line holds ``marker`` (the child and its workers)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


def test_cancel_during_an_epoch_stops_the_child_within_5_s_and_a_rerun_works(run_alg, dataset, tiny_config, tmp_path):
    # a long run (CNN-class, 200 epochs of 300 steps) with 2 DataLoader workers; cancelled at its first step within
    # epoch 1 (an epoch of the small dataset lasts 0.1 s on a quiet machine: shorter than the tool's poll)
    big = _make_dataset(str(tmp_path / "big"), n_train=600, n_val=6)
    cfg = tmp_path / "slow.yaml"
    cfg.write_text(
        "early_stopping: 0\nnum_workers: 2\nencoder: satimnet\nlight_widths: [8, 16, 16, 16]\nbatch_size: 2\n"
    )
    fb = RecordingFeedback(cancel_at_progress=0)
    params = _params(big, tmp_path, str(cfg), ARCHITECTURE=2, EPOCHS=200)
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run_alg("satclassify:trainmodel", params, feedback=fb)
    stopped = time.time()
    assert fb.canceled_at is not None, [line for _t, line in fb.lines]
    assert not [line for _t, line in fb.lines if line.startswith("epoch 1/")]  # it stopped inside epoch 1
    print(f"cancel -> tool returned in {stopped - fb.canceled_at:.2f} s")
    assert stopped - fb.canceled_at < 5
    assert _alive(str(tmp_path / "run")) == []  # the child and its DataLoader workers are gone
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".onnx", ".part"))]
    assert not (tmp_path / "report.html").exists()
    res = run_alg(
        "satclassify:trainmodel", _params(dataset, tmp_path, tiny_config, EPOCHS=1), feedback=RecordingFeedback()
    )
    assert os.path.isfile(res["OUTPUT"]) and res["EPOCHS_RUN"] == 1


def test_a_dataset_the_training_package_refuses_gives_its_message(run_alg, tiny_config, tmp_path):
    empty = tmp_path / "not-a-dataset"
    empty.mkdir()
    with pytest.raises(QgsProcessingException) as e:
        run_alg("satclassify:trainmodel", _params(str(empty), tmp_path, tiny_config), feedback=RecordingFeedback())
    msg = str(e.value)
    assert "has no manifest.json: it is not a SatClassify dataset folder" in msg
    assert "Traceback" not in msg and "error:" not in msg
    assert not (tmp_path / "model.onnx").exists()


def test_a_missing_environment_says_how_to_set_one_up(run_alg, dataset, tiny_config, tmp_path, monkeypatch):
    from qgis.core import QgsSettings

    from satclassify_plugin.install import training_env

    for var in training_env.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    settings = QgsSettings()
    old = settings.value(training_env.SETTING, "")
    settings.setValue(training_env.SETTING, "")
    monkeypatch.setattr(training_env, "env_dir", lambda _d: str(tmp_path / "no-env"))
    try:
        with pytest.raises(QgsProcessingException, match="Set up training environment"):
            run_alg("satclassify:trainmodel", _params(dataset, tmp_path, tiny_config), feedback=RecordingFeedback())
        from qgis.core import QgsApplication

        alg = QgsApplication.processingRegistry().algorithmById("satclassify:trainmodel")
        ok, message = alg.canExecute()
        assert not ok and "SATCLASSIFY_TRAINING_PYTHON" in message
    finally:
        settings.setValue(training_env.SETTING, old)
    assert not (tmp_path / "model.onnx").exists()


def test_qgis_process_trains_with_the_environment_variable_and_refuses_without(dataset, tiny_config, tmp_path):
    """qgis_process (scripts/qgis_process.sh installs the plugin as the zip has it, training_pkg/ included)."""
    base = {k: v for k, v in os.environ.items() if k not in ("SATCLASSIFY_TRAINING_PYTHON", "SATCLASSIFY_TRAIN_PYTHON")}
    base.update(SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    args = [
        os.path.join(ROOT, "scripts", "qgis_process.sh"),
        "run",
        "satclassify:trainmodel",
        "--",
        f"INPUT={dataset}",
        "ARCHITECTURE=1",
        "EPOCHS=1",
        "DEVICE=1",
        f"CONFIG={tiny_config}",
        f"OUTPUT={tmp_path / 'qp.onnx'}",
        f"CHECKPOINTS={tmp_path / 'qp-run'}",
        f"REPORT={tmp_path / 'qp.html'}",
    ]
    refused = subprocess.run(args, env=base, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "Set up training environment" in refused.stdout + refused.stderr
    assert not (tmp_path / "qp.onnx").exists()
    proc = subprocess.run(
        args, env=dict(base, SATCLASSIFY_TRAINING_PYTHON=TRAIN_PY), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    package = [line for line in proc.stdout.splitlines() if line.startswith("Training package: ")]
    assert package and "qgis-config" in package[0] and "training_pkg" in package[0], proc.stdout  # the zip's copy
    assert "DEVICE_USED:\tcpu" in proc.stdout and "epoch 1/1:" in proc.stdout
    assert _card(str(tmp_path / "qp.onnx"))["architecture"] == "cnn_dual"


def test_an_environment_without_torch_says_what_is_missing(run_alg, dataset, tiny_config, tmp_path, monkeypatch):
    import sys

    monkeypatch.setenv("SATCLASSIFY_TRAINING_PYTHON", sys.executable)  # QGIS's own Python: no torch (never)
    with pytest.raises(QgsProcessingException) as e:
        run_alg("satclassify:trainmodel", _params(dataset, tmp_path, tiny_config), feedback=RecordingFeedback())
    msg = str(e.value)
    assert "No module named 'torch'" in msg and "Set up training environment" in msg and "Traceback" not in msg
    assert not (tmp_path / "model.onnx").exists()


def test_cancel_during_the_export_leaves_no_model(run_alg, dataset, tiny_config, tmp_path):
    fb = RecordingFeedback(cancel_when=lambda line: " -m training export " in line)
    with pytest.raises(QgsProcessingException, match="cancelled: no model was written"):
        run_alg("satclassify:trainmodel", _params(dataset, tmp_path, tiny_config, EPOCHS=1), feedback=fb)
    assert fb.canceled_at is not None and time.time() - fb.canceled_at < 5
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no model, no temporary file, no report
    assert os.path.isfile(tmp_path / "run" / "best.pt")  # the training itself finished
