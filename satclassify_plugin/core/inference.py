"""ONNX model loading, band mapping, input scaling and execution-provider choice (no GDAL, no QGIS).

onnxruntime is imported lazily (inside :func:`load_model`), so importing this module never fails.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from .errors import SatClassifyError
from .modelcard import ModelCard, ModelCardError, card_from_metadata

DEVICES = ("Auto", "CPU", "CUDA", "TensorRT")
CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
INPUT_NAME = "image"
#: architectures without downsampling: any tile edge works (others keep multiples of 32 when shrunk)
NO_DOWNSAMPLING = ("cnn_dual",)


class ModelError(SatClassifyError):
    """The model file cannot be used."""


# Providers --------------------------------------------------------------------------------------
def choose_providers(device: str, available: Sequence[str], log: Callable[[str], None] = lambda m: None
                     ) -> List[str]:
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
            f"{' and TensorRT' if device == 'TensorRT' else ''} version, or choose DEVICE Auto or CPU")
    return [TRT_EP, CUDA_EP, CPU_EP] if device == "TensorRT" else [CUDA_EP, CPU_EP]


# Band mapping -----------------------------------------------------------------------------------
def parse_band_list(text: str) -> List[str]:
    return [t for t in re.split(r"[,;\s]+", (text or "").strip()) if t]


def map_bands(model_bands: Sequence[str], raster_names: Sequence[str], bands_param: str = "",
              log: Callable[[str], None] = lambda m: None) -> List[int]:
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
                f"{', '.join(model_bands)}")
        out = []
        for it in items:
            if it.isdigit():
                b = int(it)
                if not 1 <= b <= count:
                    raise SatClassifyError(
                        f"BANDS: band number {b} does not exist; the raster has {count} band(s) ({shown})")
                out.append(b)
            elif it.lower() in lower:
                out.append(lower.index(it.lower()) + 1)
            else:
                raise SatClassifyError(
                    f"BANDS: no raster band is named '{it}'; the raster's bands are {shown}")
        return out
    if all(b.isdigit() for b in model_bands):
        nums = [int(b) for b in model_bands]
        if max(nums) > count:
            raise SatClassifyError(
                f"wrong band count: the model needs {n} bands but the raster has {count} ({shown}); "
                "choose a raster with enough bands or give BANDS")
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
            "unnamed band(s); give BANDS (band numbers in the model's order) or use a stack with band names")
    raise SatClassifyError(
        f"model bands {', '.join(missing)} not found in the raster: the model needs {', '.join(model_bands)}, "
        f"the raster's bands are {shown}; give BANDS (numbers or names in the model's order)")


# Scaling ----------------------------------------------------------------------------------------
def scale_coefficients(card: ModelCard) -> Tuple[np.ndarray, np.ndarray]:
    """Per-band (a, b) so that model input = raw * a + b (input_scale, then (x - mean) / std)."""
    n = card.num_bands
    a = np.full(n, card.input_scale, dtype=np.float64)
    b = np.zeros(n, dtype=np.float64)
    if card.mean is not None and card.std is not None:
        mean = np.asarray(card.mean, dtype=np.float64)
        std = np.asarray(card.std, dtype=np.float64)
        a = a / std
        b = -mean / std
    return a.astype(np.float32), b.astype(np.float32)


# Model -------------------------------------------------------------------------------------------
@dataclass
class Model:
    path: str
    card: ModelCard
    session: object
    input_name: str
    output_names: List[str]          # one per card head, in head order
    fixed_hw: Optional[Tuple[int, int]] = None
    batch_dim: Optional[int] = None
    size_multiple: Optional[int] = None  # card extension: tile edges the model accepts (None = unknown)
    providers: List[str] = field(default_factory=list)

    def run(self, batch: np.ndarray) -> List[np.ndarray]:
        outs = self.session.run(self.output_names, {self.input_name: batch})
        return [np.asarray(o) for o in outs]


def _dim(d):
    return d if isinstance(d, int) and d > 0 else None


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise SatClassifyError(
            "the Python package onnxruntime is not installed in QGIS's Python: install onnxruntime "
            f"(or onnxruntime-gpu with an NVIDIA GPU) with Plugins > SatClassify > Install Python dependencies ({e})")
    return onnxruntime


def load_model(path: str, device: str = "Auto", log: Callable[[str], None] = lambda m: None,
               threads: int = 0) -> Model:
    """Open an ONNX model, read and check its card, and create an inference session on ``device``."""
    if not path:
        raise ModelError("no model given: choose an .onnx file")
    if not os.path.isfile(path):
        raise ModelError(f"model file '{path}' does not exist")
    with open(path, "rb") as f:
        head = f.read(2)
    # An ONNX file is a protobuf ModelProto; it starts with field 1 (ir_version, varint): byte 0x08.
    if head[:1] != b"\x08":
        raise ModelError(f"'{os.path.basename(path)}' is not an ONNX file: choose a model exported to .onnx "
                         "(e.g. with 'python -m training export')")
    ort = import_onnxruntime()
    providers = choose_providers(device, ort.get_available_providers(), log)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(path, sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidProtobuf, ...)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load the ONNX model '{os.path.basename(path)}': the file is corrupt, truncated "
                         f"or uses operators this onnxruntime does not support ({msg[:300]})")
    used = sess.get_providers()
    if device in ("CUDA", "TensorRT") and providers[0] not in used:
        raise SatClassifyError(
            f"DEVICE {device} was requested but onnxruntime could not start {providers[0]} (it fell back to "
            f"{', '.join(used)}): check the CUDA/cuDNN libraries, or choose DEVICE Auto or CPU")
    if device == "Auto" and providers[0] != used[0]:
        log(f"DEVICE Auto: {providers[0]} could not start; running on {used[0]}")
    inputs = sess.get_inputs()
    outputs = [o.name for o in sess.get_outputs()]
    out_channels = [_dim(o.shape[1]) if len(o.shape) == 4 else None for o in sess.get_outputs()]
    if len(inputs) != 1:
        raise ModelError(f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                         f"SatClassify runs models with one input '{INPUT_NAME}' (N, C, H, W)")
    inp = inputs[0]
    if len(inp.shape) != 4:
        raise ModelError(f"the model's input '{inp.name}' has shape {inp.shape}; expected (N, C, H, W)")
    if inp.type != "tensor(float)":
        raise ModelError(f"the model's input '{inp.name}' is {inp.type}; expected float32 (tensor(float))")
    channels = _dim(inp.shape[1])
    props = dict(sess.get_modelmeta().custom_metadata_map or {})
    card = card_from_metadata(props, outputs, channels or 0, out_channels)
    if channels is not None and channels != card.num_bands:
        raise ModelCardError(f"the model card lists {card.num_bands} bands ({', '.join(card.bands)}) but the "
                             f"model's input '{inp.name}' has {channels} channels")
    for h in card.heads:
        k = out_channels[outputs.index(h.output)]
        if k is not None and k != h.num_classes:
            raise ModelCardError(f"head '{h.name}': the card lists {h.num_classes} classes but output "
                                 f"'{h.output}' has {k} channels")
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
    return Model(path, card, sess, inp.name, [h.output for h in card.heads], fixed, _dim(inp.shape[0]), multiple,
                 used)
