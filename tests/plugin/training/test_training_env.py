"""The training environment: set-up (plugin-owned venv), choosing an existing one, diagnostics.

The set-up test installs a small wheel made here from a local folder (``--no-index --find-links``): it proves the
venv creation, the pip call, the marker and that the tools then find the environment, without the network. The
real set-up (torch and the training requirements from the package index, minutes and gigabytes) is
``test_real_setup_from_the_package_index``: marked slow and run only with SATCLASSIFY_NETWORK_TESTS=1."""

import base64
import hashlib
import os
import time
import zipfile

import pytest
from qgis.core import QgsApplication, QgsSettings

from satclassify_plugin.install import training_env
from satclassify_plugin.install.training_dialogs import TrainingEnvDialog, diagnostics_lines

TRAIN_PY = os.environ.get("SATCLASSIFY_TRAINING_PYTHON") or os.environ.get("SATCLASSIFY_TRAIN_PYTHON")
needs_train = pytest.mark.skipif(not TRAIN_PY, reason="SATCLASSIFY_TRAIN_PYTHON is not set")


def _wheel(folder, name="satclassify_probe", version="0.1"):
    """A minimal pure-Python wheel (PEP 427) with one module."""
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for p, data in files.items():
            z.writestr(p, data)
        z.writestr(f"{name}-{version}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No environment variable, no setting; the plugin's environment folder in tmp_path."""
    for var in training_env.ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    settings = QgsSettings()
    old = settings.value(training_env.SETTING, "")
    settings.remove(training_env.SETTING)
    folder = str(tmp_path / "profile-env")
    monkeypatch.setattr(training_env, "env_dir", lambda _d: folder)
    yield folder
    if old:
        settings.setValue(training_env.SETTING, old)
    else:
        settings.remove(training_env.SETTING)


def test_menu_has_the_entries(plugin):
    labels = [a.text() for a in plugin.menu_actions]
    assert "Set up training environment..." in labels and "Diagnostics..." in labels


def test_setup_creates_a_venv_the_tools_then_use(plugin, no_env, tmp_path):
    wheels = str(tmp_path / "wheels")
    _wheel(wheels)
    assert training_env.resolve("", QgsApplication.qgisSettingsDirPath())[0] is None
    progress, lines = [], []
    py = plugin.setup_training_env(
        reqs=["satclassify_probe==0.1"],
        find_links=wheels,
        no_index=True,
        gpu=False,
        torch_index="",
        log=lines.append,
        progress=progress.append,
    )
    assert py == training_env.env_python(no_env) and os.path.isfile(py)
    assert progress and progress[-1] == 1.0 and all(0 <= f <= 1 for f in progress)
    assert any("Successfully installed satclassify_probe-0.1" in line for line in lines), lines
    import subprocess

    out = subprocess.run(
        [py, "-c", "import satclassify_probe, sys; print(satclassify_probe.VALUE, sys.prefix)"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.split()[0] == "42" and os.path.samefile(out.stdout.split()[1], no_env)
    # QGIS's own Python did not get it
    import importlib.util

    assert importlib.util.find_spec("satclassify_probe") is None
    assert training_env.resolve("", QgsApplication.qgisSettingsDirPath()) == (
        py,
        f"the plugin's training environment {no_env}",
    )
    # this environment has no torch: diagnostics and the tool say so
    text = "\n".join(diagnostics_lines())
    assert f"Training environment: {py}" in text and "cannot use it: torch cannot be imported here" in text


def test_a_cancelled_setup_leaves_no_environment_that_looks_complete(plugin, no_env, tmp_path):
    from satclassify_plugin.core.contract.errors import SatClassifyError

    wheels = str(tmp_path / "wheels")
    _wheel(wheels)
    kw = dict(reqs=["satclassify_probe==0.1"], find_links=wheels, no_index=True, gpu=False)
    assert plugin.setup_training_env(**kw)
    with pytest.raises(SatClassifyError, match="cancelled"):  # an update, cancelled
        plugin.setup_training_env(is_canceled=lambda: True, **kw)
    python, why = training_env.resolve("", QgsApplication.qgisSettingsDirPath())
    assert python is None and "was not set up completely" in why


def test_setup_runs_as_a_background_task(plugin, no_env, tmp_path):
    wheels = str(tmp_path / "wheels")
    _wheel(wheels)
    result = {}
    task = plugin.start_training_env_setup(
        finished=lambda ok, msg: result.update(ok=ok, msg=msg),
        reqs=["satclassify_probe==0.1"],
        find_links=wheels,
        no_index=True,
        gpu=False,
        torch_index="",
    )
    t0 = time.time()
    while "ok" not in result and time.time() - t0 < 240:
        QgsApplication.processEvents()
        time.sleep(0.05)
    assert result.get("ok"), result
    assert task.progress() == 100
    assert "Training environment ready" in result["msg"]


def test_a_pip_failure_says_what_failed(plugin, no_env, tmp_path):
    from satclassify_plugin.core.contract.errors import SatClassifyError

    with pytest.raises(SatClassifyError, match="pip install failed") as e:
        plugin.setup_training_env(
            reqs=["satclassify_no_such_package==1"], find_links=str(tmp_path), no_index=True, gpu=False
        )
    assert "No matching distribution found for satclassify_no_such_package" in str(e.value)


@needs_train
def test_choosing_an_existing_environment(plugin, no_env):
    dialog = TrainingEnvDialog(plugin)
    assert dialog.show_status() is None
    import sys

    msg = dialog.use_existing(sys.executable)  # QGIS's Python: no torch
    assert "cannot train" in msg and QgsSettings().value(training_env.SETTING, "") in ("", None)
    msg = dialog.use_existing(TRAIN_PY)
    assert msg.startswith(f"Using {TRAIN_PY}: Python") and "torch 2." in msg
    assert QgsSettings().value(training_env.SETTING) == TRAIN_PY
    assert dialog.show_status() == TRAIN_PY
    assert training_env.resolve(TRAIN_PY, None) == (TRAIN_PY, f"setting {training_env.SETTING}")
    dialog.use_existing("")
    assert dialog.show_status() is None
    dialog.close()


@needs_train
def test_diagnostics_report(plugin, monkeypatch):
    monkeypatch.setenv("SATCLASSIFY_TRAINING_PYTHON", TRAIN_PY)
    dialog = plugin.open_diagnostics(blocking=True)
    lines = dialog.text.toPlainText().splitlines()
    dialog.close()
    import onnxruntime

    assert lines[0].startswith("QGIS 3.") and "Python 3." in lines[0]
    assert lines[1].startswith(f"onnxruntime {onnxruntime.__version__} (classify), execution providers: ")
    assert "CPUExecutionProvider" in lines[1]
    assert lines[2] == f"Training environment: {TRAIN_PY} (environment variable SATCLASSIFY_TRAINING_PYTHON)"
    assert "torch 2." in lines[3]
    cuda = [line for line in lines if "CUDA" in line and ("usable" in line)]
    assert cuda, lines
    assert lines[-1].strip() in ("device 'auto' trains on: cpu", "device 'auto' trains on: cuda")


def test_diagnostics_of_a_gpu_environment(monkeypatch):
    from satclassify_plugin.core.trainrun.diagnostics import training_lines

    info = {
        "python": "3.12.1",
        "torch": "2.14.1+cu130",
        "torch_cuda_build": "13.0",
        "onnxruntime": "1.32.0",
        "cuda_available": True,
        "default_device": "cuda",
        "threads": 16,
        "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.2, "capability": "9.0"}],
    }
    lines = training_lines(info, "/env/bin/python", "setting")
    assert lines[2] == "  CUDA usable: GPU 0 NVIDIA H100 80GB HBM3, 79.2 GiB"
    assert lines[-1] == "  device 'auto' trains on: cuda"
    cpu = training_lines(
        {**info, "cuda_available": False, "gpus": [], "default_device": "cpu", "torch_cuda_build": None},
        "/env/bin/python",
        "setting",
    )
    assert "CUDA not usable (this torch has no CUDA): training runs on the CPU (16 threads)" in cpu[2]


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("SATCLASSIFY_NETWORK_TESTS") != "1",
    reason="downloads torch and the training requirements: set SATCLASSIFY_NETWORK_TESTS=1",
)
def test_real_setup_from_the_package_index(plugin, no_env):
    py = plugin.setup_training_env()
    info = training_env.probe(py)
    assert info.get("torch"), info
