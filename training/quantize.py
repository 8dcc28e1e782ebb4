"""Reduced-precision exports: ``python -m training export --quantize int8 --calibration-data DATASET`` and
``python -m training export --half``.

int8 (for CPUs): the checkpoint is exported to float32 ONNX as usual (parity-checked against torch, see
:mod:`.export`), then quantized statically with onnxruntime's quantization tools: QDQ format (QuantizeLinear /
DequantizeLinear pairs around each quantized operator, which onnxruntime's CPU provider fuses into integer
kernels), int8 weights per output channel, uint8 activations with MinMax ranges calibrated on the dataset's
patches (``--calibration-split``, default train, at most ``--calibration-patches``), preprocessed exactly as the
classify tool does from the card: ``(clip(DN) * input_scale - mean) / std``. The layers that make the class
probabilities (each head's softmax and the convolution feeding it) stay float32, so the probabilities are not
rounded to 256 levels (that would turn near-equal classes into ties). The graph's input and outputs stay
float32: the plugin runs the file like any other.
Then both models run on the validation patches: class agreement per head (share of pixels where int8 and
float32 pick the same class) and the first head's metrics (OA, mIoU against the labels) for both. They are
printed and stored in the card's ``quantization`` block, with the calibration details:
``{"dtype": "int8", "format": "QDQ", "weights": "int8 per channel", "activations": "uint8", "calibration":
{...}, "float_nodes": [...], "validation": {"split", "patches", "agreement", "float32", "int8", "change"}}``.
Below :data:`MIN_AGREEMENT` agreement the export still writes the file and warns.

fp16 (for NVIDIA GPUs): the float32 graph converted to float16 weights and activations (onnxconverter-common,
input and outputs kept float32). onnxruntime's CPU provider has no float16 kernels for most operators, so the
classify tool refuses such a model on the CPU with a message naming the fix (use the float32 or int8 export);
card block ``{"dtype": "float16", "device": "CUDA", ...}``. Without a GPU here the export checks the graph
(onnx checker, float16 weights, float32 input/outputs, Cast nodes at the borders), not its numbers.
"""

import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from satclassify_plugin.core.contract.metrics import ConfusionMatrix
from satclassify_plugin.core.contract.modelcard import METADATA_KEY, ModelCard, parse_card
from satclassify_plugin.core.contract.modelcard import preprocess as card_preprocess

from .card import add_card
from .data import DataInfo, dataset_files, open_dataset
from .errors import TrainingError
from .files import atomic_open, make_dir, refuse_inputs

MIN_AGREEMENT = 0.99
CALIBRATION_PATCHES = 64
VALIDATION_PATCHES = 256
BATCH = 8


def preprocess(images: np.ndarray, card: ModelCard, band_idx: Sequence[int]) -> np.ndarray:
    """uint16 patches (N, C_dataset, H, W) -> the model input (N, C, H, W) float32, as the classify tool makes it
    (the card's input_clip, input_scale, mean and std: modelcard.preprocess)."""
    return card_preprocess(card, np.asarray(images)[:, band_idx])


def spread(total: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``total`` items spread evenly over them (all when limit >= total).
    Datasets are often written in class or place order (an importer's class folders, a scene's rows): the first N
    patches would calibrate on one class only and make the int8 ranges wrong for the others."""
    if limit >= total:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, int(limit)).round().astype(np.int64))


def patches(
    info: DataInfo, split: str, card: ModelCard, limit: int, batch: int = BATCH
) -> Iterator[Tuple[np.ndarray, Optional[np.ndarray]]]:
    """(x, labels or None) batches of at most ``limit`` patches of ``split``, spread evenly over the split
    (:func:`spread`), in dataset order."""
    shards = info.shards(split)
    sizes = [int(sh[0].shape[0]) for sh in shards]
    chosen = spread(sum(sizes), limit)
    start = 0
    for shard, n_sh in zip(shards, sizes):
        imgs, labels = shard[0], shard[1]
        local = chosen[(chosen >= start) & (chosen < start + n_sh)] - start
        start += n_sh
        for s in range(0, len(local), batch):
            idx = local[s : s + batch]
            yield preprocess(imgs[idx], card, info.band_idx), (np.asarray(labels[idx]) if labels is not None else None)


def _reader(info, split, card, limit):
    from onnxruntime.quantization import CalibrationDataReader

    class PatchReader(CalibrationDataReader):
        """Calibration batches from the dataset's patches (preprocessed as the card says)."""

        def __init__(self):
            self.it = patches(info, split, card, limit)
            self.count = 0

        def get_next(self):
            item = next(self.it, None)
            if item is None:
                return None
            self.count += item[0].shape[0]
            return {"image": item[0]}

    return PatchReader()


def float_nodes(proto: Any) -> List[str]:
    """Names of the nodes that make the graph outputs and the node feeding each (softmax and the head's conv):
    they stay float32."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    keep = []
    for out in proto.graph.output:
        n = producer.get(out.name)
        for _ in range(2):
            if n is None:
                break
            if n.name:
                keep.append(n.name)
            n = producer.get(n.input[0]) if n.input else None
    return keep


def _set_card(proto, card_dict):
    """Store ``card_dict`` (the card plus the ``quantization`` block, validated with parse_card) as the model card."""
    add_card(proto, parse_card(card_dict))  # checks it against the graph's inputs and outputs
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            p.value = json.dumps(card_dict)


def _finish(proto, card_dict, block):
    """The serialized model with ``card_dict`` plus its ``quantization`` block as the model card, checked."""
    import onnx

    card_dict["quantization"] = block
    _set_card(proto, card_dict)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _card_dict(proto):
    for p in proto.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    raise TrainingError("the float32 export has no model card")


def _prepare(checkpoint, out, inputs):
    refuse_inputs("--out", out, {"--checkpoint": checkpoint, **inputs})
    if os.path.isdir(out):
        raise TrainingError(
            f"--out '{out}' is a folder: give the ONNX file's name (e.g. {os.path.join(out, 'model.onnx')})"
        )
    out = os.path.abspath(out)
    make_dir(os.path.dirname(out), out)
    return out


def _float32(checkpoint, tmp, tile_size, check):
    from .export import export

    return export(checkpoint, os.path.join(tmp, "float32.onnx"), check=check, tile_size=tile_size, log=None)


def compare_models(
    fp32_path: str, int8_path: str, info: DataInfo, card: ModelCard, split: str, limit: int = VALIDATION_PATCHES
) -> Dict[str, Any]:
    """Agreement per head and the first head's OA/mIoU (float32 and int8) on ``split``'s patches."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]) for p in (fp32_path, int8_path)]
    heads = card.heads
    names = [h.output for h in heads]
    same = np.zeros(len(heads))
    total = 0
    values = [c.value for c in heads[0].classes]
    cms = [ConfusionMatrix(values), ConfusionMatrix(values)]
    luts = [np.array([c.value for c in h.classes], np.uint16) for h in heads]
    n = 0
    for x, labels in patches(info, split, card, limit):
        outs = [s.run(names, {"image": x}) for s in sessions]
        for h in range(len(heads)):
            a, b = outs[0][h].argmax(1), outs[1][h].argmax(1)
            same[h] += int((a == b).sum())
            if h == 0 and labels is not None and labels.shape == a.shape:
                for cm, o in zip(cms, (a, b)):
                    cm.update(labels, luts[0][o])
        total += outs[0][0].argmax(1).size
        n += x.shape[0]
    if n == 0:
        raise TrainingError(f"the dataset's '{split}' split has no patches to check the quantized model on")
    res = {"split": split, "patches": n, "agreement": {h.name: float(same[i] / total) for i, h in enumerate(heads)}}
    if cms[0].matrix.sum() > 0:
        m = [cm.metrics() for cm in cms]
        keys = ("overall_accuracy", "miou")
        res["float32"] = {k: m[0][k] for k in keys}
        res["int8"] = {k: m[1][k] for k in keys}
        res["change"] = {k: (m[1][k] - m[0][k]) if m[0][k] is not None and m[1][k] is not None else None for k in keys}
    return res


def export_int8(
    checkpoint: str,
    out: str,
    calibration_data: str,
    calibration_split: str = "train",
    calibration_patches: Optional[int] = None,
    validation_split: str = "val",
    tile_size: Optional[int] = None,
    check: bool = True,
    log: Optional[Callable[[str], None]] = print,
) -> Dict[str, Any]:
    """Export ``checkpoint`` as a static int8 QDQ model to ``out``; returns {"path", "card", "quantization"}."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    out = _prepare(checkpoint, out, dataset_files(calibration_data))
    limit = int(calibration_patches or CALIBRATION_PATCHES)
    if limit < 1:
        raise TrainingError(f"--calibration-patches must be >= 1, not {limit}")
    ds = open_dataset(calibration_data)
    tmp = tempfile.mkdtemp(prefix=".int8-", dir=os.path.dirname(out))
    try:
        fp32 = _float32(checkpoint, tmp, tile_size, check)
        card = fp32["card"]
        _check_bands(card, ds, calibration_data)
        info = DataInfo(ds, card.bands)
        info.check_split(calibration_split)
        src = _pre_process(fp32["path"], os.path.join(tmp, "prepared.onnx"))
        proto = onnx.load(src)
        keep = float_nodes(proto)
        reader = _reader(info, calibration_split, card, limit)
        q_path = os.path.join(tmp, "int8.onnx")
        quantize_static(
            src,
            q_path,
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=keep,
        )
        val_split = validation_split if validation_split in list(ds.splits) else calibration_split
        validation = compare_models(fp32["path"], q_path, info, card, val_split)
        block = {
            "dtype": "int8",
            "format": "QDQ",
            "weights": "int8 per channel",
            "activations": "uint8",
            "calibration": {
                "dataset": os.path.abspath(calibration_data),
                "split": calibration_split,
                "patches": reader.count,
                "method": "MinMax",
            },
            "float_nodes": keep,
            "validation": validation,
        }
        d = _card_dict(onnx.load(fp32["path"]))
        data = _finish(onnx.load(q_path), d, block)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with atomic_open(out, "wb") as f:
        f.write(data)
    if log:
        _log_export(log, out, reader.count, calibration_split, validation)
    return {"path": out, "card": parse_card(d), "quantization": block}


def _check_bands(card, ds, calibration_data):
    """Refuse a calibration dataset that lacks one of the model's bands."""
    missing = [b for b in card.bands if b not in [str(b) for b in ds.bands]]
    if missing:
        raise TrainingError(
            f"the calibration dataset '{calibration_data}' lacks the model's band(s) "
            f"{', '.join(missing)} (it has {', '.join(map(str, ds.bands))})"
        )


def _pre_process(src, pre):
    """Shape inference + graph optimisation (folds batch norms into the convolutions) of the ONNX file ``src``
    into ``pre`` before quantizing; returns the file to quantize (``src`` itself if the optional step failed)."""
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(src, pre, skip_symbolic_shape=True)
        return pre
    except Exception:  # noqa: BLE001 - an optional step; quantize the plain export then
        return src


def _log_export(log, out, patches, calibration_split, validation):
    """Report the written int8 model: its calibration, its agreement with float32 (and the change of the figures
    where the validation split has labels), and a warning where the agreement is low."""
    agree = ", ".join(f"{k} {v:.2%}" for k, v in validation["agreement"].items())
    line = (
        f"exported {out}: int8 QDQ (per-channel weights, {patches} calibration patches of "
        f"'{calibration_split}'); on {validation['patches']} '{validation['split']}' patches the classes "
        f"agree with float32 on {agree}"
    )
    if "change" in validation:
        f32, i8 = validation["float32"], validation["int8"]
        line += (
            f"; OA {f32['overall_accuracy']:.4f} -> {i8['overall_accuracy']:.4f}, mIoU "
            f"{_fmt(f32['miou'])} -> {_fmt(i8['miou'])}"
        )
    log(line)
    low = [k for k, v in validation["agreement"].items() if v < MIN_AGREEMENT]
    if low:
        log(
            f"warning: int8 and float32 classes agree on less than {MIN_AGREEMENT:.0%} of the validation pixels "
            f"for head(s) {', '.join(low)}: calibrate on more patches (--calibration-patches) or use the "
            "float32 export"
        )


def _fmt(v):
    return "n/a" if v is None else f"{v:.4f}"


def export_half(
    checkpoint: str,
    out: str,
    tile_size: Optional[int] = None,
    check: bool = True,
    log: Optional[Callable[[str], None]] = print,
) -> Dict[str, Any]:
    """Export ``checkpoint`` as a float16 model (float32 input/outputs) for CUDA to ``out``."""
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError as e:
        raise TrainingError(
            f"--half needs the Python package onnxconverter-common in the training environment "
            f"(scripts/setup.sh train installs it): {e}"
        )
    out = _prepare(checkpoint, out, {})
    tmp = tempfile.mkdtemp(prefix=".fp16-", dir=os.path.dirname(out))
    try:
        fp32 = _float32(checkpoint, tmp, tile_size, check)
        proto = onnx.load(fp32["path"])
        d = _card_dict(proto)
        import warnings

        with warnings.catch_warnings():  # "the float32 number 3e-09 will be truncated to 1e-07": tiny weights
            warnings.simplefilter("ignore")
            half = float16.convert_float_to_float16(proto, keep_io_types=True, disable_shape_infer=False)
        problems = half_problems(half)
        if problems:
            raise TrainingError("the float16 graph is not usable: " + "; ".join(problems))
        data = _finish(
            half,
            d,
            {
                "dtype": "float16",
                "device": "CUDA",
                "io": "float32",
                "checked": "graph structure only (float16 numbers need a GPU run)",
            },
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with atomic_open(out, "wb") as f:
        f.write(data)
    if log:
        log(
            f"exported {out}: float16 weights and activations, float32 input/outputs, for DEVICE CUDA (the CPU "
            "runs the float32 or int8 export)"
        )
    return {"path": out, "card": parse_card(d), "quantization": d["quantization"]}


def half_problems(proto: Any) -> List[str]:
    """What makes ``proto`` not a float16 graph with float32 input/outputs (empty when it is one)."""
    from onnx import TensorProto

    out = []
    io = list(proto.graph.input) + list(proto.graph.output)
    inits = {t.name for t in proto.graph.initializer}
    for v in io:
        if v.name in inits:
            continue
        if v.type.tensor_type.elem_type != TensorProto.FLOAT:
            out.append(f"'{v.name}' is not float32")
    kinds = {t.data_type for t in proto.graph.initializer if t.dims and np.prod(t.dims) > 1}
    if TensorProto.FLOAT16 not in kinds:
        out.append("no float16 weights")
    if not any(n.op_type == "Cast" for n in proto.graph.node):
        out.append("no Cast between the float32 input/outputs and the float16 graph")
    return out
