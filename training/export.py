"""``python -m training export``: checkpoint -> ONNX (opset 17) with the model card, then a parity check
(onnxruntime vs torch, max abs diff must be <= 1e-4 or the export fails and writes nothing).

Graph: input ``image`` (N, C, H, W) float32 = standardised reflectance ((DN * input_scale - mean) / std,
which the classify tool computes from the card); one output ``probs_<head>`` (N, K, H, W) per head
(softmax in the graph). N is dynamic; H and W too for the fully convolutional U-Net and CNN-dual.
* U-Net: H and W must be multiples of 32 (tile_size 256, halo 32; the tool pads edge tiles).
* CNN-dual: the graph reflect-pads the input by 2 and runs its valid 5x5 convolutions, so outputs keep
  H and W; halo 2 (inside a tile the tool feeds real neighbouring pixels).
* CNN-class: fixed patch size (tile_size = patch size, halo 0); each tile gets its patch's class
  probabilities broadcast over all its pixels.
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint as ckpt_io
from .card import card_from_checkpoint, write_card
from .errors import TrainingError
from .evaluate import load_model

OPSET = 17
TOLERANCE = 1e-4


class ExportWrapper(nn.Module):
    def __init__(self, model, arch, halo=2):
        super().__init__()
        self.model, self.arch, self.halo = model, arch, halo

    def forward(self, image):
        if self.arch == "unet":
            return F.softmax(self.model(image), dim=1)
        if self.arch == "cnn_dual":
            h = self.halo
            fine, coarse = self.model(F.pad(image, (h, h, h, h), mode="reflect"))
            return F.softmax(fine, dim=1), F.softmax(coarse, dim=1)
        p = F.softmax(self.model(image), dim=1)[:, :, None, None]
        return p * torch.ones_like(image[:, :1])


def export(checkpoint, out, check=True, tile_size=None, metrics=None, log=print):
    """Export ``checkpoint`` to ``out``; returns {"card": ModelCard, "max_abs_diff": {...}, "path": out}."""
    import onnx
    ck = ckpt_io.load(checkpoint)
    if tile_size:
        ck["card"]["tile_size"] = int(tile_size)
    arch = ck["config"]["model"]
    if arch == "unet" and ck["card"]["tile_size"] % 32:
        raise TrainingError(f"tile_size {ck['card']['tile_size']} must be a multiple of 32 for the U-Net")
    card = card_from_checkpoint(ck, metrics)  # validated with parse_card
    model = load_model(ck, "cpu").float()
    wrapper = ExportWrapper(model, arch).eval()
    nb = card.num_bands
    out_names = [h.output for h in card.heads]
    if arch == "cnn_class":
        p = int(ck["card"]["tile_size"])
        dummy = torch.randn(1, nb, p, p)
        dyn = {"image": {0: "batch"}}
        dyn.update({o: {0: "batch"} for o in out_names})
    else:
        s = 64 if arch == "unet" else 16
        dummy = torch.randn(1, nb, s, s)
        dyn = {"image": {0: "batch", 2: "height", 3: "width"}}
        dyn.update({o: {0: "batch", 2: "height", 3: "width"} for o in out_names})
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".export.tmp"
    try:
        import warnings
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (dummy,), tmp, opset_version=OPSET, input_names=["image"],
                              output_names=out_names, dynamic_axes=dyn, do_constant_folding=True, dynamo=False)
        onnx.checker.check_model(tmp)
        write_card(tmp, card)
        diffs = parity(wrapper, tmp, arch, nb, int(ck["card"]["tile_size"])) if check else {}
        worst = max(diffs.values()) if diffs else 0.0
        if worst > TOLERANCE:
            raise TrainingError(f"ONNX parity check failed: max abs diff {worst:.3g} > {TOLERANCE} "
                                f"({diffs}); the model was not written")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if log:
        log(f"exported {out}: outputs {out_names}, parity max abs diff "
            + (", ".join(f"{k} {v:.2e}" for k, v in diffs.items()) or "not checked"))
    return {"path": out, "card": card, "max_abs_diff": diffs}


def parity(wrapper, path, arch, nb, tile):
    """Max abs difference between torch and onnxruntime on a random odd-sized and a tile-sized input."""
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    if arch == "unet":
        shapes = {"random": (2, nb, 64, 96), "tile": (1, nb, tile, tile)}
    elif arch == "cnn_dual":
        shapes = {"random": (2, nb, 37, 23), "tile": (1, nb, tile, tile)}
    else:
        shapes = {"random": (3, nb, tile, tile), "tile": (1, nb, tile, tile)}
    diffs = {}
    for name, shape in shapes.items():
        x = torch.randn(*shape, generator=g)
        with torch.no_grad():
            ref = wrapper(x)
        ref = ref if isinstance(ref, tuple) else (ref,)
        got = sess.run(None, {"image": x.numpy()})
        if len(got) != len(ref):
            raise TrainingError(f"ONNX model gives {len(got)} outputs, torch {len(ref)}")
        d = 0.0
        for r, o in zip(ref, got):
            if tuple(o.shape) != tuple(r.shape):
                raise TrainingError(f"ONNX output shape {o.shape} differs from torch {tuple(r.shape)}")
            d = max(d, float(np.abs(r.numpy() - o).max()))
        diffs[name] = d
    return diffs
