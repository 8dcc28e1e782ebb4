"""The dependency installer, driven through a fake pip (no network)."""

import json
import os
import stat
import sys

import numpy
import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.install import deps

FAKE_PIP = r"""#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_PIP_LOG"], "w") as f:
    cons = open(args[args.index("--constraint") + 1]).read()
    json.dump({{"args": args, "constraints": cons}}, f)
if os.environ.get("FAKE_PIP_FAIL"):
    sys.stderr.write("ERROR: No matching distribution found for onnxruntime\n")
    sys.exit(1)
target = args[args.index("--target") + 1]
for pkg in ("onnxruntime", "pystac_client", "numpy", "numpy-1.26.4.dist-info"):
    os.makedirs(os.path.join(target, pkg), exist_ok=True)
open(os.path.join(target, "onnxruntime", "__init__.py"), "w").write("FAKE = True\n")
"""


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
    exe = tmp_path / "python-fake"
    exe.write_text(FAKE_PIP.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "pip.json"
    monkeypatch.setenv("FAKE_PIP_LOG", str(log))
    return str(exe), log


def test_install_keeps_numpy_and_appends_folder(tmp_path, fake_python, monkeypatch):
    exe, log = fake_python
    target = str(tmp_path / "profile" / "python" / deps.DEPS_DIR_NAME)
    monkeypatch.setattr(sys, "path", list(sys.path))
    reqs = deps.install(target, python=exe, gpu=False, log=lambda m: None)
    rec = json.loads(log.read_text())
    assert rec["args"][:4] == ["-m", "pip", "install", "--upgrade"]
    assert "--target" in rec["args"] and target in rec["args"]
    assert rec["constraints"].strip() == f"numpy=={numpy.__version__}"
    assert "onnxruntime>=1.17,<2" in rec["args"] and reqs[0].startswith("onnxruntime>=")
    assert sorted(os.listdir(target)) == ["onnxruntime", "pystac_client"]  # numpy copy removed
    assert sys.path[-1] == target  # appended: QGIS's numpy/GDAL keep precedence


def test_gpu_machines_get_onnxruntime_gpu(tmp_path, fake_python, monkeypatch):
    exe, log = fake_python
    monkeypatch.setattr(sys, "path", list(sys.path))
    deps.install(str(tmp_path / "d"), python=exe, gpu=True, log=lambda m: None)
    args = json.loads(log.read_text())["args"]
    assert "onnxruntime-gpu>=1.17,<2" in args and "onnxruntime>=1.17,<2" not in args


def test_pip_failure_is_a_clear_error(tmp_path, fake_python, monkeypatch):
    exe, _ = fake_python
    monkeypatch.setenv("FAKE_PIP_FAIL", "1")
    with pytest.raises(SatClassifyError, match="pip failed \\(exit 1\\):\nERROR: No matching distribution"):
        deps.install(str(tmp_path / "d"), python=exe, gpu=False, log=lambda m: None)


def test_missing_interpreter_is_a_clear_error(tmp_path):
    with pytest.raises(SatClassifyError, match="could not run pip"):
        deps.install(str(tmp_path / "d"), python=str(tmp_path / "nope"), gpu=False, log=lambda m: None)


def test_activate_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert deps.activate(str(tmp_path)) is True
    assert deps.activate(str(tmp_path)) is False
    assert deps.activate(str(tmp_path / "missing")) is False
    assert sys.path.count(str(tmp_path)) == 1


def test_python_executable_exists():
    assert os.path.exists(deps.python_executable())


def test_qt_bindings_of_either_major_are_removed_from_the_deps_folder(tmp_path):
    """A package that drags in PyQt6 (or its sip) must not shadow the Qt bindings of a Qt6 build of QGIS."""
    for name in ("PyQt6", "PyQt6_sip", "PyQt5", "numpy", "onnxruntime"):
        (tmp_path / name).mkdir()
        (tmp_path / f"{name}-1.0.dist-info").mkdir()
    removed = deps.remove_protected(str(tmp_path))
    assert {"PyQt6", "PyQt6-1.0.dist-info", "PyQt6_sip", "PyQt5", "numpy"} <= set(removed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnxruntime", "onnxruntime-1.0.dist-info"]
