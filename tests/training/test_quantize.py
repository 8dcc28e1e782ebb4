"""Reduced-precision exports: ``export --quantize int8 --calibration-data`` (QDQ, card block, agreement) and
``export --half`` (float16 graph, float32 I/O)."""

import json

import numpy as np
import pytest

from satclassify_plugin.core.contract.modelcard import parse_card
from training.cli import main
from training.quantize import half_problems

from .conftest import make_dataset, run_train

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """A small U-Net trained one epoch on a tiny dataset made here (train / val splits)."""
    base = tmp_path_factory.mktemp("q")
    data = make_dataset(base / "ds", splits=(("train", 16), ("val", 8)), seed=3)
    res = run_train(data, base / "run", model="unet", epochs=1, lr=3e-3, batch_size=4)
    return {"data": data, "ckpt": res["best"], "dir": base}


def _card(path):
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    return json.loads(props["satclassify"])


def test_int8_export_is_qdq_with_card_block_and_agreement(unet, capsys):
    out = unet["dir"] / "int8.onnx"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                unet["ckpt"],
                "--out",
                str(out),
                "--quantize",
                "int8",
                "--calibration-data",
                unet["data"],
                "--calibration-patches",
                "12",
                "--no-check",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "int8 QDQ" in printed and "agree with float32 on class" in printed and "OA " in printed
    m = onnx.load(str(out))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") > 5 and ops.count("DequantizeLinear") > 5
    # per-channel weights: a weight's DequantizeLinear has one scale per output channel
    inits = {t.name: t for t in m.graph.initializer}
    per_channel = [
        n
        for n in m.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in inits
        and inits[n.input[0]].data_type == onnx.TensorProto.INT8
        and len(inits[n.input[0]].dims) == 4
        and int(np.prod(inits[n.input[1]].dims)) == inits[n.input[0]].dims[0] > 1
    ]
    assert per_channel
    card = _card(str(out))
    q = card["quantization"]
    assert q["dtype"] == "int8" and q["format"] == "QDQ" and q["weights"] == "int8 per channel"
    assert q["calibration"]["patches"] == 12 and q["calibration"]["split"] == "train"
    v = q["validation"]
    assert v["split"] == "val" and v["patches"] == 8
    assert 0.9 <= v["agreement"]["class"] <= 1.0
    assert set(v["float32"]) == {"overall_accuracy", "miou"}
    assert v["change"]["overall_accuracy"] == pytest.approx(
        v["int8"]["overall_accuracy"] - v["float32"]["overall_accuracy"]
    )
    assert parse_card(card).architecture == "unet"  # the rest of the card is the float32 one
    # the float graph I/O is kept: float32 input, float32 probabilities summing to 1 (softmax stays float)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)"
    x = np.random.default_rng(0).normal(size=(1, 4, 64, 64)).astype(np.float32)
    p = sess.run(None, {"image": x})[0]
    assert p.dtype == np.float32 and p.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)


def test_int8_export_errors(unet, tmp_path, capsys):
    out = str(tmp_path / "q.onnx")
    assert main(["export", "--checkpoint", unet["ckpt"], "--out", out, "--quantize", "int8"]) == 2
    assert "--quantize int8 needs --calibration-data DATASET" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "--checkpoint",
                unet["ckpt"],
                "--out",
                out,
                "--half",
                "--quantize",
                "int8",
                "--calibration-data",
                unet["data"],
            ]
        )
        == 2
    )
    assert "--half and --quantize exclude each other" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "--checkpoint",
                unet["ckpt"],
                "--out",
                out,
                "--quantize",
                "int8",
                "--calibration-data",
                str(tmp_path / "none"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    # the output may not replace a file of the calibration dataset
    assert (
        main(
            [
                "export",
                "--checkpoint",
                unet["ckpt"],
                "--out",
                unet["data"] + "/manifest.json",
                "--quantize",
                "int8",
                "--calibration-data",
                unet["data"],
            ]
        )
        == 2
    )
    assert "manifest.json" in capsys.readouterr().err
    assert not (tmp_path / "q.onnx").exists()


def test_half_export_graph_and_cpu_behaviour(unet, tmp_path):
    out = tmp_path / "fp16.onnx"
    assert main(["export", "--checkpoint", unet["ckpt"], "--out", str(out), "--half", "--no-check"]) == 0
    m = onnx.load(str(out))
    assert half_problems(m) == []
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in m.graph.output)
    card = _card(str(out))
    assert card["quantization"]["dtype"] == "float16" and card["quantization"]["device"] == "CUDA"
    # a float32 graph is what half_problems rejects
    fp32 = tmp_path / "fp32.onnx"
    assert main(["export", "--checkpoint", unet["ckpt"], "--out", str(fp32), "--no-check"]) == 0
    assert "no float16 weights" in half_problems(onnx.load(str(fp32)))
