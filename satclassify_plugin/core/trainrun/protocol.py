"""What the plugin knows of the training CLI: architectures, command lines, progress lines.

The training package prints, with ``--progress jsonl``, one line per event on stdout::

    SATCLASSIFY_PROGRESS {"event": "start", "epochs": 20, "steps_per_epoch": 12, "device": "cuda:0", ...}
    SATCLASSIFY_PROGRESS {"event": "step", "epoch": 1, "step": 3, "steps": 12}
    SATCLASSIFY_PROGRESS {"event": "epoch", "epoch": 1, "epochs": 20, "metrics": {...}, "improved": true, ...}
    SATCLASSIFY_PROGRESS {"event": "warning", "message": "..."}
    SATCLASSIFY_PROGRESS {"event": "done", "best": ".../best.pt", "last": ".../last.pt", ...}

A training package without that protocol still prints ``model <arch>: N parameters; device cpu; ...`` and one
``epoch N/M: train_loss ... val_miou ... (1.5s) *`` line per epoch: :func:`parse_line` reads those too, so the
progress bar moves per epoch with either. Every other line is plain log text.
"""

from __future__ import annotations

import json
import re
from typing import List, Optional

#: the training package's architectures (training/models/specs.py ARCHITECTURES, same order; a test compares)
ARCHITECTURES = ("unet", "cnn_dual", "cnn_class", "utae")
ARCHITECTURE_LABELS = (
    "U-Net (segmentation)",
    "CNN-dual (pixel classifier, two heads)",
    "CNN-class (patch classifier)",
    "U-TAE (multi-date segmentation)",
)
DEVICES = ("auto", "cpu", "cuda")
PREFIX = "SATCLASSIFY_PROGRESS "

_MODEL_LINE = re.compile(r"^model (?P<model>\S+): (?P<n>[\d,]+) parameters; device (?P<device>[^;\s]+)")
_EPOCH_LINE = re.compile(r"^epoch (?P<epoch>\d+)/(?P<epochs>\d+): (?P<rest>.*)$")
_SECONDS = re.compile(r"\((?P<s>[\d.]+)s\)")


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def parse_line(line: str) -> Optional[dict]:
    """The event a stdout line of the training CLI carries (a dict with ``event``), or None for plain text."""
    line = line.rstrip("\r\n")
    if line.startswith(PREFIX):
        try:
            ev = json.loads(line[len(PREFIX) :])
        except ValueError:
            return None
        if isinstance(ev, dict) and isinstance(ev.get("event", ev.get("type")), str):
            ev.setdefault("event", ev.get("type"))
            return ev
        return None
    m = _MODEL_LINE.match(line)
    if m:
        return {
            "event": "start",
            "model": m["model"],
            "num_parameters": int(m["n"].replace(",", "")),
            "device": m["device"],
            "legacy": True,
        }
    m = _EPOCH_LINE.match(line)
    if m:
        rest = m["rest"]
        words = _SECONDS.sub("", rest).replace("*", " ").split()
        metrics = {}
        for key, value in zip(words[::2], words[1::2]):
            v = _number(value)
            if value == "n/a" or v is not None:
                metrics[key if key.startswith(("train_", "val_", "lr")) else "val_" + key] = v
        s = _SECONDS.search(rest)
        return {
            "event": "epoch",
            "epoch": int(m["epoch"]),
            "epochs": int(m["epochs"]),
            "metrics": metrics,
            "improved": rest.rstrip().endswith("*"),
            "seconds": float(s["s"]) if s else None,
            "legacy": True,
        }
    if line.startswith("{") and '"run_dir"' in line:  # the train command's closing JSON summary
        try:
            res = json.loads(line)
        except ValueError:
            return None
        if isinstance(res, dict) and "run_dir" in res:
            return {"event": "done", **res, "legacy": True}
    return None


class ProgressTracker:
    """Turns events into a fraction 0-1 of the training (epochs and steps), keeping what the report needs."""

    def __init__(self, epochs: int):
        self.epochs = max(1, int(epochs))
        self.steps = None
        self.start: dict = {}
        self.history: List[dict] = []
        self.done: dict = {}
        self.warnings: List[str] = []
        self.fraction = 0.0

    def update(self, ev: dict) -> Optional[float]:
        """Record ``ev``; the new fraction when it moved the training on, else None."""
        kind = ev.get("event")
        if kind == "start":
            self.start.update({k: v for k, v in ev.items() if v is not None})
            self.epochs = int(ev.get("epochs") or self.epochs)
            self.steps = ev.get("steps_per_epoch") or self.steps
            return None
        if kind == "step":
            steps = ev.get("steps") or self.steps
            if not steps or not ev.get("epoch"):
                return None
            self.fraction = max(
                self.fraction, (int(ev["epoch"]) - 1 + min(1.0, float(ev.get("step", 0)) / steps)) / self.epochs
            )
            return self.fraction
        if kind == "epoch":
            self.epochs = int(ev.get("epochs") or self.epochs)
            row = {"epoch": int(ev.get("epoch", len(self.history) + 1)), **(ev.get("metrics") or {})}
            if ev.get("seconds") is not None:
                row["seconds"] = ev["seconds"]
            row["improved"] = bool(ev.get("improved"))
            self.history.append(row)
            self.fraction = max(self.fraction, row["epoch"] / self.epochs)
            return self.fraction
        if kind == "warning" and ev.get("message"):
            self.warnings.append(str(ev["message"]))
        elif kind == "done":
            self.done.update(ev)
        return None

    @property
    def device(self) -> Optional[str]:
        d = self.start.get("device")
        name = self.start.get("device_name")
        if not (d and name) or name == d:
            return d
        return name if str(name).startswith(str(d)) else f"{d} ({name})"


def epoch_message(ev: dict) -> str:
    """One log line for an epoch event."""
    m = ev.get("metrics") or {}
    keys = [
        k
        for k in ("train_loss", "val_loss", "val_oa", "val_miou", "val_map", "val_macro_f1", "val_coarse_oa")
        if k in m
    ]
    parts = [f"{k} {m[k]:.4f}" if isinstance(m[k], (int, float)) else f"{k} n/a" for k in keys]
    secs = ev.get("seconds")
    return (
        f"epoch {ev.get('epoch')}/{ev.get('epochs')}: "
        + " ".join(parts)
        + (f" ({float(secs):.1f}s)" if secs is not None else "")
        + (" - best so far" if ev.get("improved") else "")
    )


def train_command(
    python: str,
    data: str,
    out: str,
    *,
    model: str,
    epochs: int,
    batch_size: int = 0,
    device: str = "auto",
    lr: float = 0.0,
    augment: bool = True,
    class_weights: bool = False,
    encoder: str = "",
    config: str = "",
    seed: Optional[int] = None,
    max_steps: int = 0,
    jsonl: bool = True,
) -> List[str]:
    """``python -m training train ...`` for a run in ``out`` (replaced: the tool owns its checkpoint folder).
    0 / empty means the training package's default (or the config file's value). ``jsonl``: the package speaks
    the progress protocol (``--progress jsonl``, :func:`speaks_jsonl`); else ``--no-progress`` (no tqdm bars) and
    the human epoch lines are read."""
    cmd = [
        python,
        "-u",
        "-m",
        "training",
        "train",
        "--data",
        data,
        "--out",
        out,
        "--overwrite",
        "--model",
        model,
        "--epochs",
        str(int(epochs)),
        "--device",
        device,
    ]
    cmd += ["--progress", "jsonl"] if jsonl else ["--no-progress"]
    if batch_size:
        cmd += ["--batch-size", str(int(batch_size))]
    if lr:
        cmd += ["--lr", repr(float(lr))]
    cmd += ["--augment" if augment else "--no-augment"]
    cmd += ["--class-weights" if class_weights else "--no-class-weights"]
    if encoder:
        cmd += ["--encoder", encoder]
    if config:
        cmd += ["--config", config]
    if seed is not None:
        cmd += ["--seed", str(int(seed))]
    if max_steps:
        cmd += ["--max-steps", str(int(max_steps))]
    return cmd


def speaks_jsonl(train_help: str) -> bool:
    """The output of ``python -m training train --help`` offers the progress protocol (``--progress jsonl``)."""
    return "jsonl" in train_help


def export_command(python: str, checkpoint: str, out: str, *, int8_calibration: str = "") -> List[str]:
    cmd = [python, "-u", "-m", "training", "export", "--checkpoint", checkpoint, "--out", out]
    if int8_calibration:
        cmd += ["--quantize", "int8", "--calibration-data", int8_calibration]
    return cmd


def evaluate_command(python: str, checkpoint: str, data: str, out: str, split: str = "val") -> List[str]:
    return [
        python,
        "-u",
        "-m",
        "training",
        "evaluate",
        "--checkpoint",
        checkpoint,
        "--data",
        data,
        "--split",
        split,
        "--device",
        "cpu",
        "--out",
        out,
    ]
