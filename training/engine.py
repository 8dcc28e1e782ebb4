"""Forward passes, losses and metrics shared by train, evaluate and export."""
import numpy as np
import torch
import torch.nn.functional as F

from satclassify_plugin.core.contract.metrics import ConfusionMatrix

from .data import IGNORE


def resolve_device(name):
    from .errors import TrainingError
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name}: no CUDA device is available here "
                                "(use --device cpu or auto)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TrainingError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return dev
    raise TrainingError(f"--device '{name}' is not one of auto, cpu, cuda, cuda:N")


def amp_dtype(cfg, device):
    if cfg.amp_dtype == "bf16":
        return torch.bfloat16
    if cfg.amp_dtype == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def standardise(x, mean, std):
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def augment(x, y, gen):
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

    def __init__(self, values):
        self.values = list(values)
        self.to_value = np.asarray(self.values, dtype=np.int64)
        self.cm = ConfusionMatrix(self.values, ignore=(0,))
        self.loss_sum = 0.0
        self.n = 0

    def update(self, logits, target, loss_sum, n):
        pred = logits.argmax(1).cpu().numpy()
        t = target.cpu().numpy()
        valid = t >= 0
        ref = np.where(valid, self.to_value[np.clip(t, 0, None)], 0)
        self.cm.update(ref, self.to_value[pred], valid)
        self.loss_sum += float(loss_sum)
        self.n += int(n)

    def result(self, names=None):
        m = self.cm.metrics(names)
        m["loss"] = self.loss_sum / max(self.n, 1)
        return m


def summary(m, prefix):
    return {f"{prefix}loss": m["loss"], f"{prefix}oa": m["overall_accuracy"], f"{prefix}miou": m["miou"],
            f"{prefix}kappa": m["kappa"], f"{prefix}macro_f1": m["macro_f1"]}


@torch.no_grad()
def evaluate_split(model, spec, info, split, mean, std, device, f2c=None, coarse_values=None,
                   batch_size=16, amp=None, weight=None):
    """Metrics dicts per head ({'fine': ..., 'coarse': ...} for a spec with a coarse head, {'fine': ...} else),
    running ``spec.full_forward`` over whole patches."""
    from .data import PatchDataset
    model.eval()
    ds = PatchDataset(info, split, patch_labels=spec.patch_labels)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    heads = {"fine": HeadMetrics(info.values)}
    if spec.coarse_head:
        heads["coarse"] = HeadMetrics(coarse_values)
        f2c_dev = f2c.to(device)
    w = weight.to(device) if weight is not None else None
    for x, y in loader:
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
