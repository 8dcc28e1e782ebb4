"""The satclassify command installed with pip into a virtualenv without QGIS (.venv-headless, made by
`bash scripts/setup.sh headless`): it classifies a stack and writes the same bytes as the core's classify in the
QGIS environment (the Processing tool's own call: tests/plugin/test_headless_parity.py), and a batch runs there."""

import json
import os
import subprocess

import numpy as np
import pytest

from satclassify_plugin.core.classify.pipeline import classify
from tests import onnx_models as om
from tests.rasters import make_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VENV = os.path.join(ROOT, ".venv-headless")
COMMAND = os.path.join(VENV, "bin", "satclassify")

pytestmark = pytest.mark.skipif(
    not os.access(COMMAND, os.X_OK),
    reason=f"{VENV} has no satclassify command: run 'bash scripts/setup.sh headless' (scripts/test.sh does)",
)


def run(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [COMMAND, *[str(a) for a in args]], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_the_env_has_no_qgis_and_runs_the_installed_package(tmp_path):
    py = os.path.join(VENV, "bin", "python")
    p = subprocess.run(
        [
            py,
            "-c",
            "import importlib.util as u, json, satclassify_plugin, osgeo.gdal as g; "
            "print(json.dumps([u.find_spec('qgis') is None, u.find_spec('torch') is None, "
            "satclassify_plugin.__file__, g.__version__]))",
        ],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        timeout=120,
    )
    no_qgis, no_torch, where, _gdal = json.loads(p.stdout)
    assert no_qgis and no_torch, "the headless env must not see QGIS or torch"
    assert where.startswith(VENV), where  # the pip-installed copy, not the work tree


def test_classify_from_the_headless_env_equals_the_core_in_qgis_env(tmp_path):
    raw = np.random.default_rng(4).integers(10, 4000, (4, 50, 61)).astype(np.uint16)
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4, nodata=0)
    model = om.dual_model(tmp_path / "dual.onnx", card_kw={"tile_size": 16})
    classify(src, model, [str(tmp_path / "q.tif"), str(tmp_path / "q_clc_level1.tif")])
    p = run("classify", "--input", src, "--model", model, "--output", tmp_path / "h.tif", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert read(tmp_path / "q.tif") == read(tmp_path / "h.tif")
    assert read(tmp_path / "q_clc_level1.tif") == read(tmp_path / "h_clc_level1.tif")
    assert json.loads(p.stdout)["PROVIDER"] == "CPUExecutionProvider"
    p = run(
        "batch",
        "classify",
        "--scenes",
        src,
        "--model",
        model,
        "--out",
        tmp_path / "b",
        "--workers",
        "1",
        cwd=str(tmp_path),
    )
    assert p.returncode == 0, p.stderr
    assert read(tmp_path / "q.tif") == read(tmp_path / "b" / "s2.tif")
