"""Small ONNX models with known behaviour for the classify tests and benchmark (onnx helper API).

Every model follows the SatClassify contract: input ``image`` float32 (N, C, H, W), one softmax
output (N, K, H, W) per head, the card in ``metadata_props["satclassify"]``.
"""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8
S2_BANDS4 = ["B02", "B03", "B04", "B08"]
COLORS = ["#e6004d", "#ffffa8", "#80ff00", "#00ccf2", "#a6a6ff", "#4d4dff", "#ccffcc", "#a64d00"]


def classes(k, start=1, prefix="class"):
    return [
        {"value": start + i, "code": str(start + i), "name": f"{prefix} {start + i}", "color": COLORS[i % len(COLORS)]}
        for i in range(k)
    ]


def card(bands=S2_BANDS4, heads=None, **kw):
    c = {
        "schema_version": 1,
        "architecture": "test",
        "bands": list(bands),
        "resolution_m": 10.0,
        "input_scale": 0.0001,
        "tile_size": 64,
        "halo": 0,
        "heads": heads or [{"name": "class", "output": "probs", "classes": classes(3)}],
        "training": {"dataset": "synthetic"},
    }
    c.update(kw)
    return c


def _save(path, nodes, inits, c_in, outputs, metadata=None, fixed_hw=None, batch=None):
    hw = list(fixed_hw) if fixed_hw else ["H", "W"]
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch or "N", c_in] + hw)
    outs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch or "N", k] + hw) for name, k in outputs]
    graph = helper.make_graph(nodes, "satclassify_test", [inp], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _conv(name, x, w, b, out, pad):
    inits = [
        numpy_helper.from_array(np.asarray(w, np.float32), f"{name}_w"),
        numpy_helper.from_array(np.asarray(b, np.float32), f"{name}_b"),
    ]
    node = helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [out], pads=[pad] * 4, name=name)
    return node, inits


def linear_model(
    path,
    weights,
    bias=None,
    bands=S2_BANDS4,
    card_kw=None,
    metadata=None,
    with_card=True,
    fixed_hw=None,
    batch=None,
    output="probs",
):
    """Per-pixel softmax(W @ x + b): a 1x1 convolution, receptive field 1 (halo 0)."""
    w = np.asarray(weights, np.float32)
    k, c = w.shape
    b = np.zeros(k, np.float32) if bias is None else np.asarray(bias, np.float32)
    node, inits = _conv("lin", "image", w.reshape(k, c, 1, 1), b, "logits", 0)
    soft = helper.make_node("Softmax", ["logits"], [output], axis=1)
    meta = dict(metadata or {})
    if with_card:
        kw = {"bands": list(bands), "heads": [{"name": "class", "output": output, "classes": classes(k)}]}
        kw.update(card_kw or {})
        meta["satclassify"] = card(**kw)
    return _save(path, [node, soft], inits, c, [(output, k)], meta, fixed_hw, batch)


def linear_expected(raw, weights, bias=None, scale=1e-4, values=None):
    """Class values a linear model gives for ``raw`` (C, H, W) DNs (argmax of W @ (raw*scale) + b)."""
    w = np.asarray(weights, np.float64)
    b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, np.float64)
    logits = np.einsum("kc,chw->khw", w, raw.astype(np.float64) * scale) + b[:, None, None]
    idx = logits.argmax(axis=0)
    values = np.arange(1, w.shape[0] + 1) if values is None else np.asarray(values)
    return values[idx].astype(np.uint8), logits


def conv_model(path, c_in=4, k=3, layers=(3, 3), hidden=8, seed=0, card_kw=None, relu=True):
    """A stack of same-padded convolutions (kernel sizes ``layers``), receptive field
    1 + sum(k - 1): halo = sum((k - 1) // 2). Random but fixed weights."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x, ch = "image", c_in
    for i, ks in enumerate(layers):
        out_ch = k if i == len(layers) - 1 else hidden
        w = rng.normal(0, 1.0 / np.sqrt(ch * ks * ks), size=(out_ch, ch, ks, ks)) * (20.0 if i == 0 else 1.0)
        node, ini = _conv(f"c{i}", x, w, rng.normal(0, 0.1, out_ch), f"y{i}", ks // 2)
        nodes.append(node)
        inits += ini
        x = f"y{i}"
        if relu and i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
        ch = out_ch
    nodes.append(helper.make_node("Softmax", [x], ["probs"], axis=1))
    halo = sum(ks // 2 for ks in layers)
    kw = {"halo": halo}
    kw.update(card_kw or {})
    meta = {
        "satclassify": card(
            S2_BANDS4[:c_in] if c_in <= 4 else [f"B{i:02d}" for i in range(c_in)],
            [{"name": "class", "output": "probs", "classes": classes(k)}],
            **kw,
        )
    }
    return _save(path, nodes, inits, c_in, [("probs", k)], meta)


def dual_model(path, k_fine=4, k_coarse=2, seed=1, card_kw=None):
    """CNN-dual style: a shared 5x5 conv (halo 2), then a fine head and a coarse head (1x1 convs)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    node, ini = _conv("trunk", "image", rng.normal(0, 5.0, (8, 4, 5, 5)), rng.normal(0, 0.1, 8), "t", 2)
    nodes += [node, helper.make_node("Relu", ["t"], ["tr"])]
    inits += ini
    for name, k in (("fine", k_fine), ("coarse", k_coarse)):
        node, ini = _conv(name, "tr", rng.normal(0, 1.0, (k, 8, 1, 1)), rng.normal(0, 0.1, k), f"{name}_l", 0)
        nodes += [node, helper.make_node("Softmax", [f"{name}_l"], [f"probs_{name}"], axis=1)]
        inits += ini
    heads = [
        {"name": "clc_level2", "output": "probs_fine", "classes": classes(k_fine, 1, "fine")},
        {"name": "clc_level1", "output": "probs_coarse", "classes": classes(k_coarse, 1, "coarse")},
    ]
    kw = {"architecture": "cnn_dual", "halo": 2}
    kw.update(card_kw or {})
    return _save(
        path,
        nodes,
        inits,
        4,
        [("probs_fine", k_fine), ("probs_coarse", k_coarse)],
        {"satclassify": card(S2_BANDS4, heads, **kw)},
    )


def deepness_model(path, weights, bias=None):
    """A 1x1 linear segmentor carrying Deepness metadata (inputs value/255, standardisation, class names)."""
    w = np.asarray(weights, np.float32)
    k, c = w.shape
    b = np.zeros(k, np.float32) if bias is None else np.asarray(bias, np.float32)
    node, inits = _conv("lin", "image", w.reshape(k, c, 1, 1), b, "logits", 0)
    soft = helper.make_node("Softmax", ["logits"], ["output"], axis=1)
    meta = {
        "model_type": "Segmentor",
        "class_names": json.dumps({str(i): f"deep {i}" for i in range(k)}),
        "resolution": "50",
        "tiles_size": "64",
        "tiles_overlap": "10",
        "standardization_mean": json.dumps([0.5] * c),
        "standardization_std": json.dumps([0.25] * c),
    }
    return _save(path, [node, soft], inits, c, [("output", k)], meta)


def bench_model(path, c_in=4, k=8, hidden=(16, 32, 16), seed=0, tile=256):
    """A realistic small conv net: 3x3 convs with ``hidden`` channels + ReLU, a 1x1 classifier, softmax."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x, ch = "image", c_in
    for i, out_ch in enumerate(hidden):
        w = rng.normal(0, np.sqrt(2.0 / (ch * 9)), (out_ch, ch, 3, 3))
        node, ini = _conv(f"c{i}", x, w, np.zeros(out_ch), f"y{i}", 1)
        nodes += [node, helper.make_node("Relu", [f"y{i}"], [f"r{i}"])]
        inits += ini
        x, ch = f"r{i}", out_ch
    node, ini = _conv("cls", x, rng.normal(0, 0.3, (k, ch, 1, 1)), np.zeros(k), "logits", 0)
    nodes += [node, helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    inits += ini
    meta = {
        "satclassify": card(
            S2_BANDS4[:c_in],
            [{"name": "class", "output": "probs", "classes": classes(k)}],
            architecture="bench_cnn",
            tile_size=tile,
            halo=len(hidden),
            size_multiple=1,
        )
    }
    return _save(path, nodes, inits, c_in, [("probs", k)], meta)


def patch_model(
    path,
    weights,
    bias=None,
    p=8,
    activation="sigmoid",
    bands=S2_BANDS4,
    thresholds=None,
    card_kw=None,
    class_table=None,
):
    """A patch classifier (CNN-class style, fixed p x p input): act(W @ mean over the patch of x + b) for each of
    the K classes, broadcast over the patch's pixels; ``activation`` "sigmoid" (multi-label) or "softmax"."""
    w = np.asarray(weights, np.float32)
    k, c = w.shape
    b = np.zeros(k, np.float32) if bias is None else np.asarray(bias, np.float32)
    gap = helper.make_node("GlobalAveragePool", ["image"], ["gap"])
    conv, inits = _conv("fc", "gap", w.reshape(k, c, 1, 1), b, "logits", 0)
    act = (
        helper.make_node("Sigmoid", ["logits"], ["act"])
        if activation == "sigmoid"
        else helper.make_node("Softmax", ["logits"], ["act"], axis=1)
    )
    inits.append(numpy_helper.from_array(np.array([1, 1, p, p], np.int64), "bshape"))
    expand = helper.make_node("Expand", ["act", "bshape"], ["probs"])
    head = {"name": "class", "output": "probs", "classes": class_table or classes(k)}
    if activation == "sigmoid":
        head.update({"task": "multilabel", "activation": "sigmoid"})
        if thresholds is not None:
            head["thresholds"] = list(thresholds)
    meta = {
        "satclassify": card(bands=bands, heads=[head], architecture="cnn_class", tile_size=p, halo=0, **(card_kw or {}))
    }
    return _save(path, [gap, conv, act, expand], inits, c, [("probs", k)], meta, (p, p))


def patch_expected(cell, weights, bias=None, activation="sigmoid", scale=1e-4):
    """The probabilities :func:`patch_model` gives for one cell of raw DNs (C, p, p) (float64)."""
    w = np.asarray(weights, np.float64)
    b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, np.float64)
    z = w @ (cell.astype(np.float64) * scale).mean(axis=(1, 2)) + b
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z - z.max())
    return e / e.sum()
