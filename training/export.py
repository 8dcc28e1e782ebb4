"""``python -m training export``: checkpoint -> ONNX (opset 17) with the model card, then a parity check
(onnxruntime vs torch, see :func:`parity_problems`: if the exported graph does not compute the model the
export fails and writes nothing).

Graph: input ``image`` (N, C, H, W) float32 = standardised reflectance ((DN * input_scale - mean) / std,
which the classify tool computes from the card); one output ``probs_<head>`` (N, K, H, W) per head
(softmax in the graph). N is dynamic; H and W too for the fully convolutional U-Net and CNN-dual. What
depends on the architecture comes from its spec (``models.specs``: ``export_outputs``, ``dummy_input``,
``dynamic_axes``, ``parity_inputs``, ``check_tile``):
* U-Net: H and W must be multiples of 32 (tile_size 256, halo 32; the tool pads edge tiles).
* CNN-dual: the graph reflect-pads the input by 2 and runs its valid 5x5 convolutions, so outputs keep
  H and W; halo 2 (inside a tile the tool feeds real neighbouring pixels).
* CNN-class: fixed patch size (tile_size = patch size, halo 0); each tile gets its patch's class
  probabilities broadcast over all its pixels.

The ONNX file is written under a temporary name in the output folder and moved onto ``--out`` only once
checked; ``--out`` may not be the checkpoint (``files.refuse_inputs``).
"""

import io
import math
import os
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt_io
from .card import add_card, card_from_checkpoint
from .checkpoint import load_model
from .errors import TrainingError
from .files import atomic_open, make_dir, refuse_inputs
from .models import get_spec

OPSET = 17

# Parity rule, per head and per test input (onnxruntime vs torch on the same random input).
# float32 rounding differs between the two runtimes (other kernels, other summation orders) and the error
# grows with the size of the activations: a U-Net trained one epoch on real Sentinel-2 reflectance can have
# logits of 1e3..1e4, and then the softmax of a correct graph differs by 5e-4..5e-3 at its worst pixel. A
# fixed absolute bound on the worst pixel (the old rule, 1e-4) refused such correct exports. What the classify
# tool uses is each pixel's class (argmax) and its probability, so the rule checks exactly that:
# * AGREEMENT: at least 99.9 % of the pixels get the same class. A pixel where torch's probabilities of the
#   two classes differ by at most TIE is a tie (rounding may pick either) and counts as agreeing.
# * NRMS_TOL: the normalised RMS difference ||onnx - torch|| / ||torch|| (over the head's whole output) is
#   at most 1e-3. Rounding gives 1e-7..1e-4 whatever the activations' scale (it is relative), a wrong graph
#   (a wrong weight, operator, padding or band order) gives 1e-2..1 and changes classes on many pixels.
# The max abs difference is still measured and reported, no longer a pass/fail bound.
AGREEMENT = 0.999
TIE = 1e-3
NRMS_TOL = 1e-3


class ExportWrapper(nn.Module):
    """The exported graph: ``spec.export_outputs`` of the model (a tuple of probabilities, one per head;
    ``activation="sigmoid"``: a multi-label patch classifier's independent class probabilities)."""

    def __init__(self, model: nn.Module, spec: Any, activation: str = "softmax") -> None:
        super().__init__()
        self.model, self.spec = model, spec
        self.kw = {"activation": activation} if activation != "softmax" else {}

    def forward(self, image: torch.Tensor, *extra: torch.Tensor) -> tuple:
        return self.spec.export_outputs(self.model, image, *extra, **self.kw)


def export(
    checkpoint: str,
    out: str,
    check: bool = True,
    tile_size: Optional[int] = None,
    metrics: Optional[Dict[str, Any]] = None,
    log: Optional[Callable[[str], None]] = print,
) -> Dict[str, Any]:
    """Export ``checkpoint`` to ``out``; returns {"path": out, "card": ModelCard, "max_abs_diff": {input: worst
    head's max abs diff}, "parity": {input: {head: compare(...)}}} (both empty with ``check=False``)."""
    import onnx

    refuse_inputs("--out", out, {"--checkpoint": checkpoint})
    if os.path.isdir(out):
        raise TrainingError(
            f"--out '{out}' is a folder: give the ONNX file's name (e.g. {os.path.join(out, 'model.onnx')})"
        )
    ck = ckpt_io.load(checkpoint)
    if tile_size:
        ck["card"]["tile_size"] = int(tile_size)
    spec = get_spec(ck["config"]["model"])
    tile = int(ck["card"]["tile_size"])
    spec.check_tile(tile, train=False)
    card = card_from_checkpoint(ck, metrics)  # validated with parse_card
    model = load_model(ck, "cpu").float()
    wrapper = ExportWrapper(model, spec, card.heads[0].activation).eval()
    nb = card.input_channels  # T * (bands + 1) for a multi-date model
    out_names = [h.output for h in card.heads]
    dummy = spec.dummy_input(nb, tile)
    dyn = spec.dynamic_axes(out_names)
    out = os.path.abspath(out)
    make_dir(os.path.dirname(out), out)
    # built and checked in memory: nothing reaches the disk before the parity check passed
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dummies = spec.export_inputs(dummy, card)  # (image,) or (image, doy) for U-TAE
        torch.onnx.export(
            wrapper,
            dummies,
            buf,
            opset_version=OPSET,
            input_names=list(spec.input_names),
            output_names=out_names,
            dynamic_axes=dyn,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    add_card(proto, card)
    data = proto.SerializeToString()
    stats = parity(wrapper, data, spec.parity_inputs(nb, tile), lambda x: spec.export_inputs(x, card)) if check else {}
    problems = parity_problems(stats)
    if problems:
        raise TrainingError(
            "ONNX parity check failed (onnxruntime vs torch): "
            + "; ".join(problems)
            + f". The exported graph does not compute the model, so '{out}' was not written: "
            "export again with another torch/onnx version or report it with the checkpoint"
        )
    with atomic_open(out, "wb") as f:
        f.write(data)
    diffs = {name: max(h["max_abs_diff"] for h in heads.values()) for name, heads in stats.items()}
    if log:
        worst = [h for heads in stats.values() for h in heads.values()]
        log(
            f"exported {out}: outputs {out_names}, parity (onnxruntime vs torch, worst head and input): "
            + (
                f"classes agree {min(h['agreement'] for h in worst):.3%}, nRMS {max(h['nrms'] for h in worst):.1e}, "
                f"max abs diff {max(h['max_abs_diff'] for h in worst):.1e}"
                if worst
                else "not checked"
            )
        )
    return {"path": out, "card": card, "max_abs_diff": diffs, "parity": stats}


def compare(ref: np.ndarray, got: np.ndarray) -> Dict[str, float]:
    """Parity statistics of one head: ``ref`` (torch) and ``got`` (onnxruntime) probabilities (N, K, H, W)."""
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    diff = got - ref
    a = ref.argmax(1)
    b = got.argmax(1)
    pa = np.take_along_axis(ref, a[:, None], 1)[:, 0]
    pb = np.take_along_axis(ref, b[:, None], 1)[:, 0]
    agree = (a == b) | (pa - pb <= TIE)
    norm = float(np.sqrt((ref * ref).sum()))
    err = float(np.sqrt((diff * diff).sum()))
    return {
        "agreement": float(agree.mean()) if agree.size else 1.0,
        "nrms": err / norm if norm > 0 else (0.0 if err == 0 else math.inf),
        "max_abs_diff": float(np.abs(diff).max()) if diff.size else 0.0,
    }


def parity_problems(stats: Dict[str, Dict[str, Dict[str, float]]]) -> List[str]:
    """What breaks the parity rule (see AGREEMENT, NRMS_TOL) in ``parity``'s result; empty when it holds."""
    out = []
    for name, heads in stats.items():
        for head, h in heads.items():
            bad = []
            if not h["agreement"] >= AGREEMENT:  # "not >=": NaN fails too
                bad.append(f"the classes agree on {h['agreement']:.2%} of the pixels (at least {AGREEMENT:.1%} needed)")
            if not h["nrms"] <= NRMS_TOL:
                bad.append(f"normalised RMS difference {h['nrms']:.3g} > {NRMS_TOL}")
            if bad:
                out.append(
                    f"head '{head}' on the {name} input: {', '.join(bad)} (max abs diff {h['max_abs_diff']:.3g})"
                )
    return out


def parity(
    wrapper: nn.Module,
    model: Union[str, bytes],
    shapes: Mapping[str, Tuple[int, ...]],
    make: Optional[Callable[[torch.Tensor], tuple]] = None,
) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{input: {head: compare(...)}} of torch vs onnxruntime on random inputs of ``shapes`` ({input name:
    (N, C, H, W)}, the spec's ``parity_inputs``: an odd-sized and a tile-sized one). ``model``: the ONNX
    file's path or its bytes. ``make``: random image -> the graph's inputs (the spec's ``export_inputs``: a
    multi-date model's 0/1 validity channels and its ``doy``)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    heads = [o.name[len("probs_") :] if o.name.startswith("probs_") else o.name for o in sess.get_outputs()]
    stats: Dict[str, Dict[str, dict]] = {}
    for name, shape in shapes.items():
        x = torch.randn(*shape, generator=g)
        feeds = make(x) if make else (x,)
        with torch.no_grad():
            ref = wrapper(*feeds)
        got = sess.run(None, {i.name: f.numpy() for i, f in zip(sess.get_inputs(), feeds)})
        if len(got) != len(ref):
            raise TrainingError(f"ONNX model gives {len(got)} outputs, torch {len(ref)}")
        stats[name] = {}
        for head, r, o in zip(heads, ref, got):
            if tuple(o.shape) != tuple(r.shape):
                raise TrainingError(f"ONNX output shape {o.shape} differs from torch {tuple(r.shape)}")
            stats[name][head] = compare(r.numpy(), o)
    return stats
