"""Forward passes, losses and metrics shared by train, evaluate and export."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from satclassify_plugin.core.contract.metrics import (
    ConfusionMatrix,
    best_thresholds,
    mean_average_precision,
    multilabel_scores,
)

from .data import IGNORE


def resolve_device(name: Optional[str]) -> torch.device:
    from .errors import TrainingError

    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name}: no CUDA device is available here (use --device cpu or auto)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TrainingError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return dev
    raise TrainingError(f"--device '{name}' is not one of auto, cpu, cuda, cuda:N")


def amp_dtype(cfg: Any, device: torch.device) -> torch.dtype:
    if cfg.amp_dtype == "bf16":
        return torch.bfloat16
    if cfg.amp_dtype == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def cpu_bf16_native() -> bool:
    """Whether this CPU runs bfloat16 natively in oneDNN (AVX512-BF16 or AMX); without it bf16 autocast is emulated
    and about 20x slower than float32 (benchmarks/train.py on an AVX2 machine)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def standardise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random dihedral transform (flips and 90-degree rotations) per sample; y is transformed too
    when it is a (B, H, W) label image."""
    k = torch.randint(0, 8, (x.shape[0],), generator=gen)
    x = x.clone()
    spatial_y = y.dim() == 3
    if spatial_y:
        y = y.clone()
    for t in range(1, 8):
        sel = (k == t).nonzero().flatten()
        if sel.numel() == 0:
            continue
        xs = torch.rot90(x[sel], t % 4, dims=(-2, -1))
        if t >= 4:
            xs = torch.flip(xs, dims=(-1,))
        x[sel] = xs
        if spatial_y:
            ys = torch.rot90(y[sel], t % 4, dims=(-2, -1))
            if t >= 4:
                ys = torch.flip(ys, dims=(-1,))
            y[sel] = ys
    return x, y


class HeadMetrics:
    """Loss sum and confusion matrix of one head over index predictions (values for the matrix)."""

    def __init__(self, values: Sequence[int]) -> None:
        self.values = list(values)
        self.to_value = np.asarray(self.values, dtype=np.int64)
        self.cm = ConfusionMatrix(self.values, ignore=(0,))
        self.loss_sum = 0.0
        self.n = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss_sum: Any, n: int) -> None:
        pred = logits.argmax(1).cpu().numpy()
        t = target.cpu().numpy()
        valid = t >= 0
        ref = np.where(valid, self.to_value[np.clip(t, 0, None)], 0)
        self.cm.update(ref, self.to_value[pred], valid)
        self.loss_sum += float(loss_sum)
        self.n += int(n)

    def result(self, names: Optional[Dict[int, str]] = None) -> Dict[str, Any]:
        m = self.cm.metrics(names)
        m["loss"] = self.loss_sum / max(self.n, 1)
        return m


class MultiLabelMetrics:
    """Sigmoid probabilities and targets of a multi-label head over a split: loss, per-class thresholds (chosen
    on these data to maximise each class's F1, unless given), micro/macro F1 at those thresholds and at 0.5,
    per-class F1, mAP."""

    task = "multilabel"

    def __init__(self, values: Sequence[int]) -> None:
        self.values = list(values)
        self.probs: List[np.ndarray] = []
        self.truth: List[np.ndarray] = []
        self.loss_sum, self.n = 0.0, 0

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss_sum: Any, n: int) -> None:
        self.probs.append(torch.sigmoid(logits.float()).cpu().numpy())
        self.truth.append(target.cpu().numpy() > 0.5)
        self.loss_sum += float(loss_sum)
        self.n += int(n)

    def result(
        self, names: Optional[Dict[int, str]] = None, thresholds: Optional[Sequence[float]] = None
    ) -> Dict[str, Any]:
        k = len(self.values)
        p = np.concatenate(self.probs) if self.probs else np.zeros((0, k))
        t = np.concatenate(self.truth) if self.truth else np.zeros((0, k), bool)
        tuned = thresholds is None
        th = best_thresholds(t, p) if thresholds is None else [float(v) for v in thresholds]
        names_list = [(names or {}).get(int(v), str(v)) for v in self.values]
        m = multilabel_scores(t, p >= np.asarray(th), names_list)
        for c, v, thr in zip(m["classes"], self.values, th):
            c["value"], c["threshold"] = int(v), float(thr)
        at_half = multilabel_scores(t, p >= 0.5)
        m.update(
            {
                "task": "multilabel",
                "loss": self.loss_sum / max(self.n, 1),
                "map": mean_average_precision(t, p),
                "thresholds": th,
                "thresholds_from": "tuned on this split (max F1 per class)"
                if tuned
                else "given (the checkpoint's, tuned on validation)",
                "micro_f1_at_0.5": at_half["micro_f1"],
                "macro_f1_at_0.5": at_half["macro_f1"],
                "values": [int(v) for v in self.values],
            }
        )
        return m


def summary(m: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    if m.get("task") == "multilabel":
        return {
            f"{prefix}loss": m["loss"],
            f"{prefix}micro_f1": m["micro_f1"],
            f"{prefix}macro_f1": m["macro_f1"],
            f"{prefix}map": m["map"],
            f"{prefix}oa": None,
            f"{prefix}miou": None,
        }
    return {
        f"{prefix}loss": m["loss"],
        f"{prefix}oa": m["overall_accuracy"],
        f"{prefix}miou": m["miou"],
        f"{prefix}kappa": m["kappa"],
        f"{prefix}macro_f1": m["macro_f1"],
    }


@torch.no_grad()
def evaluate_split(
    model: torch.nn.Module,
    spec: Any,
    info: Any,
    split: str,
    mean: torch.Tensor,
    std: torch.Tensor,
    device: torch.device,
    f2c: Optional[torch.Tensor] = None,
    coarse_values: Optional[Sequence[int]] = None,
    batch_size: int = 16,
    amp: Optional[torch.dtype] = None,
    weight: Optional[torch.Tensor] = None,
    check: Optional[Callable[[], None]] = None,
) -> Dict[str, Any]:
    """Metrics dicts per head ({'fine': ..., 'coarse': ...} for a spec with a coarse head, {'fine': ...} else),
    running ``spec.full_forward`` over whole patches. ``check``: called before each batch (it raises to stop,
    e.g. ``progress.Cancel.check``)."""
    from .data import PatchDataset

    model.eval()
    ds = PatchDataset(info, split, patch_labels=spec.patch_labels)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    if spec.patch_labels and info.multilabel:
        return _evaluate_multilabel(model, spec, info, loader, mean, std, device, amp, weight, check)
    heads = {"fine": HeadMetrics(info.values)}
    if spec.coarse_head:
        heads["coarse"] = HeadMetrics(coarse_values or [])
        f2c_dev: Any = f2c.to(device) if f2c is not None else None
    w = weight.to(device) if weight is not None else None
    for x, y in loader:
        if check is not None:
            check()
        x = standardise(x.to(device), mean, std)
        y = y.to(device)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            out = spec.full_forward(model, x)
        out = [o.float() for o in out]
        n = int((y >= 0).sum())
        if n == 0:
            loss = 0.0
        elif w is None:
            loss = F.cross_entropy(out[0], y, ignore_index=IGNORE, reduction="sum")
        else:
            loss = F.cross_entropy(out[0], y, weight=w, ignore_index=IGNORE) * n
        heads["fine"].update(out[0], y, loss, n)
        if spec.coarse_head:
            yc = torch.where(y >= 0, f2c_dev[y.clamp(min=0)], torch.full_like(y, IGNORE))
            lc = F.cross_entropy(out[1], yc, ignore_index=IGNORE, reduction="sum") if n else 0.0
            heads["coarse"].update(out[1], yc, lc, n)
    return heads


def _evaluate_multilabel(model, spec, info, loader, mean, std, device, amp, weight, check=None):
    head = MultiLabelMetrics(info.values)
    w = weight.to(device) if weight is not None else None
    for x, y in loader:
        if check is not None:
            check()
        x = standardise(x.to(device), mean, std)
        y = y.to(device)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            out = spec.full_forward(model, x)[0].float()
        loss = F.binary_cross_entropy_with_logits(out, y, pos_weight=w, reduction="mean") * len(y)
        head.update(out, y, loss, len(y))
    return {"fine": head}
