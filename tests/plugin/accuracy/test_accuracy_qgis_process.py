"""satclassify:assessaccuracy through qgis_process (scripts/qgis_process.sh: plugin installed in a temp profile)."""

import json
import os
import subprocess

import numpy as np

from tests.rasters import make_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_assessaccuracy_with_qgis_process(tmp_path):
    c = np.array([[1, 1, 2, 2], [1, 2, 2, 3], [0, 3, 3, 3], [1, 1, 3, 3]], np.uint8)
    r = np.array([[1, 1, 2, 1], [1, 2, 2, 2], [3, 3, 3, 0], [2, 1, 3, 3]], np.uint8)
    cls, ref = make_raster(tmp_path / "c.tif", c), make_raster(tmp_path / "r.tif", r)
    out = tmp_path / "out"
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [
            os.path.join(ROOT, "scripts", "qgis_process.sh"),
            "run",
            "satclassify:assessaccuracy",
            "--",
            f"CLASSIFIED={cls}",
            f"REFERENCE={ref}",
            "IGNORE=0",
            f"OUTPUT_MATRIX={out / 'cm.csv'}",
            f"OUTPUT_METRICS={out / 'metrics.json'}",
            f"OUTPUT_REPORT={out / 'report.html'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "14 pixels compared over 3 classes: OA 0.7857, kappa 0.6794" in proc.stdout
    assert "OA:\t0.7857142857142857" in proc.stdout
    assert f"OUTPUT_REPORT:\t{out / 'report.html'}" in proc.stdout
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["confusion_matrix"] == [[4, 1, 0], [1, 3, 1], [0, 0, 4]]
    assert (out / "cm.csv").read_text(encoding="utf-8").splitlines()[-1] == "total,,5,4,5,14"
    assert (out / "report_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
