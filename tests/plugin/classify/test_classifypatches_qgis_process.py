"""satclassify:classifypatches through qgis_process (scripts/qgis_process.sh: plugin installed in a temp profile)."""

import os
import subprocess

import numpy as np

from tests import onnx_models as om
from tests.rasters import make_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def run_qgis_process(tmp_path, params):
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [os.path.join(ROOT, "scripts", "qgis_process.sh"), "run", "satclassify:classifypatches", "--"]
        + [f"{k}={v}" for k, v in params.items()],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_classifypatches_with_qgis_process(tmp_path):
    from osgeo import ogr

    raw = np.random.default_rng(2).integers(200, 5000, (4, 24, 32)).astype(np.uint16)
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    w, b = [[40.0, -40.0, 0.0, 0.0], [0.0, 0.0, 0.0, 12.0]], [0.0, -3.0]
    model = om.patch_model(tmp_path / "ml.onnx", w, b, thresholds=[0.5, 0.4])
    out = tmp_path / "patches.gpkg"
    stdout = run_qgis_process(tmp_path, {"INPUT": src, "MODEL": model, "THRESHOLD": 0.45, "DEVICE": 1, "OUTPUT": out})
    assert "COUNT:\t12" in stdout and "PROVIDER:\tCPUExecutionProvider" in stdout
    ds = ogr.Open(str(out))  # keep the dataset referenced while its layer is read
    lyr = ds.GetLayer(0)
    assert lyr.GetFeatureCount() == 12
    for f in lyr:
        r, c = f["row"], f["col"]
        p = om.patch_expected(raw[:, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8], w, b)
        np.testing.assert_allclose([f["p_1"], f["p_2"]], p, atol=2e-6)
        assert f["labels"] == "; ".join(f"class {k + 1}" for k in np.argsort(-p) if p[k] >= 0.45)
    lyr = None
    ds = None
