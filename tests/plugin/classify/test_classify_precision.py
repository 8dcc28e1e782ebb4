"""satclassify:classify with reduced-precision models: a static int8 (QDQ) model runs on the CPU and gives
(nearly) the float32 model's classes; a float16 model (``export --half``) is refused on the CPU with the fix."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qgis.core import QgsProcessingException

from tests import onnx_models as om
from tests.rasters import make_raster, read_raster

ALG = "satclassify:classify"


def _raw(shape, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[1], 0 : shape[2]]
    base = 1500 + 1200 * np.sin(xx / 9.0)[None] * np.cos(yy / 13.0)[None] * np.arange(1, shape[0] + 1)[:, None, None]
    return np.clip(base + rng.normal(0, 200, shape), 1, 10000).astype(np.uint16)


def _set_quantization(path, block):
    m = onnx.load(str(path))
    for p in m.metadata_props:
        if p.key == "satclassify":
            card = json.loads(p.value)
            card["quantization"] = block
            p.value = json.dumps(card)
    onnx.save(m, str(path))


def int8_of(fp32, out, raw):
    """Static QDQ int8 copy of ``fp32`` calibrated on tiles of ``raw`` (what export --quantize int8 makes)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Tiles(CalibrationDataReader):
        def __init__(self):
            x = raw.astype(np.float32) * np.float32(1e-4)
            self.items = iter([{"image": x[None, :, y : y + 32, c : c + 32]} for y in (0, 40) for c in (0, 50)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(fp32),
        str(out),
        Tiles(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    _set_quantization(out, {"dtype": "int8", "format": "QDQ"})
    return str(out)


def half_of(fp32, out):
    """float16 weights and activations, float32 input/outputs through Cast nodes (like export --half)."""
    m = onnx.load(str(fp32))
    g = m.graph
    for t in g.initializer:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for n in g.node:
        n.input[:] = ["image_h" if i == "image" else i for i in n.input]
        n.output[:] = [o + "_h" if o in {v.name for v in g.output} else o for o in n.output]
    g.node.insert(0, helper.make_node("Cast", ["image"], ["image_h"], to=TensorProto.FLOAT16))
    for v in g.output:
        g.node.append(helper.make_node("Cast", [v.name + "_h"], [v.name], to=TensorProto.FLOAT))
    onnx.checker.check_model(m)
    onnx.save(m, str(out))
    _set_quantization(out, {"dtype": "float16", "device": "CUDA", "io": "float32"})
    return str(out)


def test_int8_model_classifies_like_float32(run_alg, tmp_path):
    raw = _raw((4, 80, 100), 1)
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    fp32 = om.conv_model(tmp_path / "fp32.onnx", layers=(3, 3), k=4, hidden=16, card_kw={"tile_size": 64})
    q = int8_of(fp32, tmp_path / "int8.onnx", raw)
    ops = [n.op_type for n in onnx.load(q).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    outs = {}
    for name, model in (("fp32", fp32), ("int8", q)):
        out = str(tmp_path / f"{name}.tif")
        res = run_alg(ALG, {"INPUT": src, "MODEL": model, "OUTPUT": out, "DEVICE": 1})  # CPU
        outs[name] = read_raster(res["OUTPUT"])
    a, b = outs["fp32"], outs["int8"]
    assert a.shape == (80, 100) and set(np.unique(a)) <= {1, 2, 3, 4} and len(np.unique(a)) >= 2
    assert (a == b).mean() >= 0.95, (a == b).mean()


def test_float16_model_is_refused_on_the_cpu(run_alg, tmp_path):
    raw = _raw((4, 40, 50), 2)
    src = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    fp32 = om.conv_model(tmp_path / "fp32.onnx", layers=(3,), k=3, card_kw={"tile_size": 32})
    half = half_of(fp32, tmp_path / "fp16.onnx")
    out = tmp_path / "c.tif"
    for device in (0, 1):  # Auto without CUDA here, and CPU
        with pytest.raises(QgsProcessingException) as e:
            run_alg(ALG, {"INPUT": src, "MODEL": half, "OUTPUT": str(out), "DEVICE": device})
        msg = str(e.value)
        assert "'fp16.onnx' is a float16 model for NVIDIA GPUs" in msg and "choose DEVICE CUDA" in msg
        assert "float32 or int8 export" in msg
    assert not out.exists()
