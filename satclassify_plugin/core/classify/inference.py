"""ONNX model loading, band mapping, input scaling and execution-provider choice (no GDAL, no QGIS).

onnxruntime is imported lazily (inside :func:`load_model`), so importing this module never fails.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple, Union

import numpy as np

from ..contract.errors import SatClassifyError
from ..contract.modelcard import ModelCard, ModelCardError, card_from_metadata, input_transform
from ..contract.timeseries import DOY_INPUT
from .options import DEVICES

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
INPUT_NAME = "image"
#: architectures without downsampling: any tile edge works (others keep multiples of 32 when shrunk)
NO_DOWNSAMPLING = ("cnn_dual",)


class ModelError(SatClassifyError):
    """The model file cannot be used."""


# Providers --------------------------------------------------------------------------------------
def choose_providers(device: str, available: Sequence[str], log: Callable[[str], None] = lambda m: None) -> List[str]:
    """onnxruntime providers (in priority order) for a DEVICE choice; raises when the device is missing."""
    available = list(available)
    if device not in DEVICES:
        raise SatClassifyError(f"unknown DEVICE '{device}': choose one of {', '.join(DEVICES)}")
    if device == "CPU":
        return [CPU_EP]
    if device == "Auto":
        if CUDA_EP in available:
            return [CUDA_EP, CPU_EP]
        log(f"DEVICE Auto: no CUDA in this onnxruntime (providers: {', '.join(available)}); running on the CPU")
        return [CPU_EP]
    wanted = CUDA_EP if device == "CUDA" else TRT_EP
    if wanted not in available:
        raise SatClassifyError(
            f"DEVICE {device} was requested but this onnxruntime has no {wanted} (available: "
            f"{', '.join(available)}). Install onnxruntime-gpu matching your CUDA/cuDNN"
            f"{' and TensorRT' if device == 'TensorRT' else ''} version, or choose DEVICE Auto or CPU"
        )
    return [TRT_EP, CUDA_EP, CPU_EP] if device == "TensorRT" else [CUDA_EP, CPU_EP]


# Band mapping -----------------------------------------------------------------------------------
def parse_band_list(text: str) -> List[str]:
    return [t for t in re.split(r"[,;\s]+", (text or "").strip()) if t]


def map_bands(
    model_bands: Sequence[str],
    raster_names: Sequence[str],
    bands_param: str = "",
    log: Callable[[str], None] = lambda m: None,
) -> List[int]:
    """1-based raster band numbers feeding the model's bands, in the model's order.

    ``bands_param`` (the BANDS parameter) lists band numbers or band names; without it the model's band
    names are looked up in the raster's band descriptions (case-insensitive). Models with positional
    band names ("1", "2", ... e.g. Deepness models) take the raster bands by number.
    """
    model_bands = list(model_bands)
    n = len(model_bands)
    count = len(raster_names)
    lower = [s.strip().lower() for s in raster_names]
    shown = ", ".join(f"{i + 1}:{s or '(no name)'}" for i, s in enumerate(raster_names))
    if bands_param and bands_param.strip():
        items = parse_band_list(bands_param)
        if len(items) != n:
            raise SatClassifyError(
                f"BANDS lists {len(items)} band(s) ({', '.join(items)}) but the model needs {n}: "
                f"{', '.join(model_bands)}"
            )
        out = []
        for it in items:
            if it.isdigit():
                b = int(it)
                if not 1 <= b <= count:
                    raise SatClassifyError(
                        f"BANDS: band number {b} does not exist; the raster has {count} band(s) ({shown})"
                    )
                out.append(b)
            elif it.lower() in lower:
                out.append(lower.index(it.lower()) + 1)
            else:
                raise SatClassifyError(f"BANDS: no raster band is named '{it}'; the raster's bands are {shown}")
        return out
    if all(b.isdigit() for b in model_bands):
        nums = [int(b) for b in model_bands]
        if max(nums) > count:
            raise SatClassifyError(
                f"wrong band count: the model needs {n} bands but the raster has {count} ({shown}); "
                "choose a raster with enough bands or give BANDS"
            )
        return nums
    missing = [b for b in model_bands if b.lower() not in lower]
    if not missing:
        return [lower.index(b.lower()) + 1 for b in model_bands]
    if not any(lower):
        if count == n:
            log(f"the raster's bands have no names; using bands 1..{n} as the model's {', '.join(model_bands)}")
            return list(range(1, n + 1))
        raise SatClassifyError(
            f"wrong band count: the model needs {n} bands ({', '.join(model_bands)}) but the raster has {count} "
            "unnamed band(s); give BANDS (band numbers in the model's order) or use a stack with band names"
        )
    raise SatClassifyError(
        f"model bands {', '.join(missing)} not found in the raster: the model needs {', '.join(model_bands)}, "
        f"the raster's bands are {shown}; give BANDS (numbers or names in the model's order)"
    )


# Scaling ----------------------------------------------------------------------------------------
def scale_coefficients(card: ModelCard) -> Tuple[np.ndarray, np.ndarray]:
    """Per-band (a, b) so that model input = raw * a + b (input_scale, then (x - mean) / std); a card's
    input_clip is applied after it by :func:`input_bounds` (a > 0, so clipping the input is clipping the raw)."""
    a, b, _lo, _hi = input_transform(card)
    return a.astype(np.float32), b.astype(np.float32)


def input_bounds(card: ModelCard) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Per band (low, high) of the model input that the card's input_clip gives (raw clip mapped through the
    scaling), or None when the card has no clip."""
    if card.input_clip is None:
        return None
    a, b, lo, hi = input_transform(card)
    return (lo * a + b).astype(np.float32), (hi * a + b).astype(np.float32)


# Model -------------------------------------------------------------------------------------------
class Session(Protocol):
    """What :class:`Model` uses of an ``onnxruntime.InferenceSession`` (tests pass look-alikes)."""

    def run(self, output_names: Sequence[str], input_feed: Dict[str, np.ndarray]) -> Sequence[Any]: ...


@dataclass
class Model:
    path: str
    card: ModelCard
    session: Session
    input_name: str
    output_names: List[str]  # one per card head, in head order
    fixed_hw: Optional[Tuple[int, int]] = None
    batch_dim: Optional[int] = None
    size_multiple: Optional[int] = None  # card extension: tile edges the model accepts (None = unknown)
    providers: List[str] = field(default_factory=list)
    #: the session's graph has each output's ArgMax and ReduceMax over the classes added as extra outputs
    #: (see :func:`add_top_outputs`); False when the ``onnx`` package is missing or the graph can't be extended
    graph_top: bool = False
    #: inputs besides the image, the same for every batch (a multi-date model's ``doy``: core/classify/temporal.py)
    feeds: Dict[str, np.ndarray] = field(default_factory=dict)
    #: the DEVICE it was loaded for (:data:`DEVICES`); ``providers`` are the session's providers that came of it
    device: str = "Auto"

    def run(self, batch: np.ndarray) -> List[np.ndarray]:
        outs = self.session.run(self.output_names, {self.input_name: batch, **self.feeds})
        return [np.asarray(o) for o in outs]

    def run_top(self, batch: np.ndarray, prob_heads: Sequence[int] = ()):
        """Per head (argmax (N, H, W), max (N, H, W), probabilities (N, K, H, W) or None).

        With :attr:`graph_top` the class index and top probability come out of onnxruntime (computed
        next to the model, on the GPU when it runs there, and only they are copied back); the
        probabilities only for the heads in ``prob_heads``. Without it, from the probabilities in numpy.
        Ties go to the lowest class either way (ONNX ArgMax and np.argmax agree)."""
        n = len(self.output_names)
        if not self.graph_top:
            probs = self.run(batch)
            return [top_of(p) + (p,) for p in probs]
        names = []
        for o in self.output_names:
            names += [o + ARGMAX_SUFFIX, o + MAX_SUFFIX]
        names += [self.output_names[h] for h in prob_heads]
        outs = self.session.run(names, {self.input_name: batch, **self.feeds})
        head_probs = {h: np.asarray(outs[2 * n + i]) for i, h in enumerate(prob_heads)}
        return [(np.asarray(outs[2 * h]), np.asarray(outs[2 * h + 1]), head_probs.get(h)) for h in range(n)]


ARGMAX_SUFFIX = "__satclassify_argmax"
MAX_SUFFIX = "__satclassify_max"


def top_of(p: np.ndarray):
    """(argmax, max) over the class axis of (N, K, H, W) probabilities, in K vectorised passes
    (np.putmask beats boolean-index assignment and np.argmax on channel-first data); ties go to the
    lowest class, like np.argmax."""
    best = p[:, 0].copy()
    idx = np.zeros(best.shape, np.uint8)
    for k in range(1, p.shape[1]):
        np.putmask(idx, p[:, k] > best, k)
        np.maximum(best, p[:, k], out=best)
    return idx, best


def add_top_outputs(model_bytes: Union[bytes, bytearray, Any]) -> Optional[bytes]:
    """The serialized ONNX graph with ``<output>__satclassify_argmax`` (uint8; int64 above 256 classes) and
    ``<output>__satclassify_max`` (float) added for each graph output (class axis 1), or None when the
    ``onnx`` package is missing (it is optional: the plugin then takes the argmax in numpy)."""
    try:
        import onnx
    except ImportError:
        return None
    # bytes(): no copy of bytes; onnx.load_from_string is declared for bytes only
    m = onnx.load_from_string(bytes(model_bytes)) if isinstance(model_bytes, (bytes, bytearray)) else model_bytes
    return m.SerializeToString() if _add_top(m) else None


def _add_top(m) -> bool:
    """Add the ArgMax/ReduceMax outputs to the ``onnx.ModelProto`` in place; False (unchanged) below opset 13."""
    from onnx import TensorProto, helper

    opset = max([o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] or [0])
    if opset < 13:
        return False
    g = m.graph
    axes_name = "__satclassify_axes_1"
    # ReduceSum takes the axes as an input from opset 13, ReduceMax from opset 18
    g.initializer.append(helper.make_tensor(axes_name, TensorProto.INT64, [1], [1]))
    for v in list(g.output):
        o = v.name
        dims = v.type.tensor_type.shape.dim
        k = dims[1].dim_value if len(dims) > 1 and dims[1].HasField("dim_value") else 0
        if k > 256:
            g.node.append(
                helper.make_node("ArgMax", [o], [o + ARGMAX_SUFFIX], axis=1, keepdims=0, name=o + ARGMAX_SUFFIX)
            )
            argmax_type = TensorProto.INT64
        else:  # the class index as uint8 (what the class raster stores): 8x less to copy out than int64
            g.node.append(
                helper.make_node("ArgMax", [o], [o + ARGMAX_SUFFIX + "64"], axis=1, keepdims=0, name=o + ARGMAX_SUFFIX)
            )
            g.node.append(
                helper.make_node(
                    "Cast",
                    [o + ARGMAX_SUFFIX + "64"],
                    [o + ARGMAX_SUFFIX],
                    to=TensorProto.UINT8,
                    name=o + ARGMAX_SUFFIX + "_uint8",
                )
            )
            argmax_type = TensorProto.UINT8
        raw_max = o + MAX_SUFFIX + "_raw"
        if opset >= 18:
            g.node.append(helper.make_node("ReduceMax", [o, axes_name], [raw_max], keepdims=0, name=raw_max))
        else:
            g.node.append(helper.make_node("ReduceMax", [o], [raw_max], axes=[1], keepdims=0, name=raw_max))
        # onnxruntime's ReduceMax skips a NaN that is not first; max + (sum - sum) is NaN wherever any class score
        # is NaN or infinite (as numpy's maximum), so the writer can tell a broken score from a class
        total, zero = o + MAX_SUFFIX + "_sum", o + MAX_SUFFIX + "_zero"
        g.node.append(helper.make_node("ReduceSum", [o, axes_name], [total], keepdims=0, name=total))
        g.node.append(helper.make_node("Sub", [total, total], [zero], name=zero))
        g.node.append(helper.make_node("Add", [raw_max, zero], [o + MAX_SUFFIX], name=o + MAX_SUFFIX))
        g.output.append(helper.make_tensor_value_info(o + ARGMAX_SUFFIX, argmax_type, None))
        g.output.append(helper.make_tensor_value_info(o + MAX_SUFFIX, TensorProto.FLOAT, None))
    return True


def quantization_of(props) -> dict:
    """The card's ``quantization`` block ({} for a float32 model) from the ONNX metadata_props."""
    import json

    try:
        raw = json.loads((props or {}).get("satclassify") or "{}")
    except ValueError:
        return {}
    q = raw.get("quantization") if isinstance(raw, dict) else None
    return q if isinstance(q, dict) else {}


def check_precision(path: str, props, providers: Sequence[str]) -> None:
    """Refuse a float16 model (``export --half``) where it would run on the CPU: onnxruntime's CPU provider has
    no float16 kernels for most operators (it would fail on the first tile, or crawl through casts)."""
    if quantization_of(props).get("dtype") == "float16" and providers[0] not in (CUDA_EP, TRT_EP):
        raise ModelError(
            f"'{os.path.basename(path)}' is a float16 model for NVIDIA GPUs (python -m training export --half) and "
            f"would run on the CPU here ({providers[0]}), which has no float16 kernels: choose DEVICE CUDA with "
            "onnxruntime-gpu, or classify with the model's float32 or int8 export (python -m training export "
            "[--quantize int8]) on the CPU"
        )


def _dim(d):
    return d if isinstance(d, int) and d > 0 else None


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise SatClassifyError(
            "the Python package onnxruntime is not installed in QGIS's Python: install onnxruntime "
            f"(or onnxruntime-gpu with an NVIDIA GPU) with Plugins > SatClassify > Install Python dependencies ({e})"
        )
    return onnxruntime


def load_model(path: str, device: str = "Auto", log: Callable[[str], None] = lambda m: None, threads: int = 0) -> Model:
    """Open an ONNX model, read and check its card, and create an inference session on ``device``."""
    if not path:
        raise ModelError("no model given: choose an .onnx file")
    if not os.path.isfile(path):
        raise ModelError(f"model file '{path}' does not exist")
    with open(path, "rb") as f:
        head = f.read(2)
    # An ONNX file is a protobuf ModelProto; it starts with field 1 (ir_version, varint): byte 0x08.
    if head[:1] != b"\x08":
        raise ModelError(
            f"'{os.path.basename(path)}' is not an ONNX file: choose a model exported to .onnx "
            "(e.g. with 'python -m training export')"
        )
    ort = import_onnxruntime()
    providers = choose_providers(device, ort.get_available_providers(), log)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    # onnxruntime's compute threads busy-wait between operators by default; in the tool they share the cores
    # with the reader and writer threads (and QGIS): sleeping instead measured ~10 % faster end to end on
    # 2 loaded cores (docs/performance.md). SATCLASSIFY_ORT_SPIN=1 restores the default.
    if os.environ.get("SATCLASSIFY_ORT_SPIN", "0") != "1":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    sess, graph_top = _session(ort, path, opts, providers, log)
    used = sess.get_providers()
    if device in ("CUDA", "TensorRT") and providers[0] not in used:
        raise SatClassifyError(
            f"DEVICE {device} was requested but onnxruntime could not start {providers[0]} (it fell back to "
            f"{', '.join(used)}): check the CUDA/cuDNN libraries, or choose DEVICE Auto or CPU"
        )
    if device == "Auto" and providers[0] != used[0]:
        log(f"DEVICE Auto: {providers[0]} could not start; running on {used[0]}")
    inputs = sess.get_inputs()
    model_outputs = [o for o in sess.get_outputs() if not o.name.endswith((ARGMAX_SUFFIX, MAX_SUFFIX))]
    outputs = [o.name for o in model_outputs]
    out_channels = [_dim(o.shape[1]) if len(o.shape) == 4 else None for o in model_outputs]
    doy_inputs = [i for i in inputs if i.name == DOY_INPUT]  # a multi-date model's days of year (T,)
    if len(inputs) - len(doy_inputs) != 1 or len(doy_inputs) > 1:
        raise ModelError(
            f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
            f"SatClassify runs models with one input '{INPUT_NAME}' (N, C, H, W), and multi-date "
            f"models with '{INPUT_NAME}' and '{DOY_INPUT}' (T,)"
        )
    inp = next(i for i in inputs if i.name != DOY_INPUT)
    if len(inp.shape) != 4:
        raise ModelError(f"the model's input '{inp.name}' has shape {inp.shape}; expected (N, C, H, W)")
    if inp.type != "tensor(float)":
        raise ModelError(f"the model's input '{inp.name}' is {inp.type}; expected float32 (tensor(float))")
    channels = _dim(inp.shape[1])
    props = dict(sess.get_modelmeta().custom_metadata_map or {})
    check_precision(path, props, used)
    card = card_from_metadata(props, outputs, channels or 0, out_channels)
    if doy_inputs and not (card.timeseries and card.timeseries.get("doy_input")):
        raise ModelCardError(
            f"the model takes a '{DOY_INPUT}' input but its card has no multi-date "
            "'timeseries' entry naming it: export it again with 'python -m training export'"
        )
    if channels is not None and channels != card.input_channels:
        what = (
            f"{card.num_dates} dates x ({card.num_bands} bands + validity) = {card.input_channels} input channels"
            if card.timeseries
            else f"{card.num_bands} bands"
        )
        raise ModelCardError(
            f"the model card lists {what} ({', '.join(card.bands)}) but the "
            f"model's input '{inp.name}' has {channels} channels"
        )
    for h in card.heads:
        k = out_channels[outputs.index(h.output)]
        if k is not None and k != h.num_classes:
            raise ModelCardError(
                f"head '{h.name}': the card lists {h.num_classes} classes but output '{h.output}' has {k} channels"
            )
    multiple = None
    if card.source == "satclassify":
        import json

        try:
            raw = json.loads(props.get("satclassify", "{}"))
        except ValueError:
            raw = {}
        m = raw.get("size_multiple") if isinstance(raw, dict) else None
        if isinstance(m, int) and not isinstance(m, bool) and m >= 1:
            multiple = m
        elif card.architecture in NO_DOWNSAMPLING:
            multiple = 1
    hw = (_dim(inp.shape[2]), _dim(inp.shape[3]))
    fixed = hw if hw[0] and hw[1] else None
    return Model(
        path,
        card,
        sess,
        inp.name,
        [h.output for h in card.heads],
        fixed,
        _dim(inp.shape[0]),
        multiple,
        used,
        graph_top,
        device=device,
    )


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _session(ort, path, opts, providers, log):
    """(session, graph_top): one inference session (one copy of the weights, one provider start-up).
    Its graph has each output's ArgMax/ReduceMax added when the ``onnx`` package can extend it; otherwise
    (no onnx, a model over 1 GiB, an old opset, a graph that does not load extended) the plain file is
    loaded and numpy takes the argmax."""
    data = None
    if os.path.getsize(path) <= (1 << 30):
        try:
            import onnx

            with open(path, "rb") as f:
                m = onnx.load_from_string(f.read())
        except Exception:  # no onnx package, or a file onnx cannot parse: onnxruntime gets the plain file
            m = None
        if m is not None:
            check_precision(path, {p.key: p.value for p in m.metadata_props}, providers)
            try:
                data = add_top_outputs(m)
            except Exception:
                data = None
    if data is not None:
        try:
            return ort.InferenceSession(data, sess_options=opts, providers=providers), True
        except Exception as e:
            log(f"class argmax in numpy (the extended graph did not load: {_first_line(e)[:200]})")
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=providers), False
    except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidProtobuf, ...)
        raise ModelError(
            f"cannot load the ONNX model '{os.path.basename(path)}': the file is corrupt, truncated "
            f"or uses operators this onnxruntime does not support ({_first_line(e)[:300]})"
        )
