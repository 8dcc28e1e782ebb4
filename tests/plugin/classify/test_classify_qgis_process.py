"""satclassify:classify through qgis_process (scripts/qgis_process.sh: plugin installed in a temp profile)."""

import os
import subprocess

import numpy as np

from tests import onnx_models as om
from tests.rasters import make_raster, read_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_classify_with_qgis_process(tmp_path):
    import onnxruntime as ort

    raw = np.random.default_rng(1).integers(10, 4000, (4, 30, 40)).astype(np.uint16)
    raw[:, 3, 4] = 0
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    model = om.conv_model(tmp_path / "conv.onnx", layers=(3, 3), card_kw={"tile_size": 16})
    out, conf = tmp_path / "classes.tif", tmp_path / "conf.tif"
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [
            os.path.join(ROOT, "scripts", "qgis_process.sh"),
            "run",
            "satclassify:classify",
            "--",
            f"INPUT={src}",
            f"MODEL={model}",
            f"OUTPUT={out}",
            f"CONFIDENCE={conf}",
            "DEVICE=1",
            "BATCH_SIZE=2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "ran on CPUExecutionProvider" in proc.stdout and "MPix/s" in proc.stdout
    assert "PROVIDER:\tCPUExecutionProvider" in proc.stdout
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    probs = sess.run(None, {"image": (raw.astype(np.float32) * np.float32(1e-4))[None]})[0][0]
    expected = (probs.argmax(0) + 1).astype(np.uint8)
    expected[3, 4] = 0
    assert np.array_equal(read_raster(out), expected)
    c = read_raster(conf)
    exp_conf = np.rint(probs.max(0) * 100).astype(np.uint8)
    exp_conf[3, 4] = 255
    assert np.array_equal(c, exp_conf)
