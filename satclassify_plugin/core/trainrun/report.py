"""The training report: one self-contained HTML file (the loss / metric curves picture embedded), with the run's
recipe, the device used, the epochs and the validation figures of the best checkpoint (per class, per head)."""

from __future__ import annotations

import base64
import html
import os
from typing import Iterable, List, Mapping, Optional

from ..contract.paths import temp_tag

_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.2em}"
    "td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}th{background:#eee}"
    "td.l,th.l{text-align:left}tr.best{background:#e8f4e8}img{max-width:100%}"
)


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def _table(
    header: Optional[List[str]], rows: Iterable[Iterable], left: int = 1, classes: Optional[List[str]] = None
) -> str:
    out = [
        "<table>"
        + (
            "<tr>"
            + "".join(
                f"<th class='l'>{html.escape(h)}</th>" if i < left else f"<th>{html.escape(h)}</th>"
                for i, h in enumerate(header)
            )
            + "</tr>"
            if header
            else ""
        )
    ]
    for j, r in enumerate(rows):
        cls = f" class='{classes[j]}'" if classes and classes[j] else ""
        out.append(
            f"<tr{cls}>"
            + "".join(f"<td class='l'>{_fmt(v)}</td>" if i < left else f"<td>{_fmt(v)}</td>" for i, v in enumerate(r))
            + "</tr>"
        )
    return "".join(out) + "</table>"


def render(
    recipe: Mapping,
    history: List[Mapping],
    evaluation: Optional[Mapping],
    curves_png: Optional[str],
    outputs: Mapping[str, str],
    device: Optional[str],
    warnings: Iterable[str] = (),
) -> str:
    """The report's HTML. ``recipe``: label -> value; ``history``: one row per epoch (the training log);
    ``evaluation``: ``python -m training evaluate`` of the best checkpoint (heads with per-class figures)."""
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>SatClassify training report</title>"
        f"<style>{_STYLE}</style></head><body><h1>SatClassify training report</h1>"
    ]
    parts.append(
        "<h2>Run</h2>"
        + _table(
            None,
            [(k, v) for k, v in recipe.items()]
            + [("device used", device or "unknown")]
            + [(k, v) for k, v in outputs.items()],
            left=2,
        )
    )
    for w in warnings:
        parts.append(f"<p><b>Warning:</b> {html.escape(w)}</p>")
    if curves_png and os.path.isfile(curves_png):
        with open(curves_png, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        parts.append(
            f"<h2>Curves</h2><img alt='loss and validation metrics per epoch' src='data:image/png;base64,{data}'>"
        )
    if evaluation:
        split = html.escape(str(evaluation.get("split")))
        parts.append(f"<h2>Validation figures of the best checkpoint (split {split})</h2>")
        for name, h in (evaluation.get("heads") or {}).items():
            parts.append(f"<h3>Head {html.escape(str(name))}</h3>")
            parts.append(
                _table(
                    ["overall accuracy", "kappa", "mean IoU", "macro F1", "pixels / patches"],
                    [
                        (
                            h.get("overall_accuracy"),
                            h.get("kappa"),
                            h.get("miou"),
                            h.get("macro_f1"),
                            h.get("pixels", h.get("patches")),
                        )
                    ],
                    left=0,
                )
            )
            # classes absent from the split and never predicted there have no figures: left out
            cls = [c for c in h.get("classes") or [] if c.get("support") or c.get("predicted")]
            if cls:
                parts.append(
                    _table(
                        ["class", "precision", "recall", "F1", "IoU", "support"],
                        [
                            (
                                f"{c.get('value')} {c.get('name', '')}",
                                c.get("precision"),
                                c.get("recall"),
                                c.get("f1"),
                                c.get("iou"),
                                c.get("support"),
                            )
                            for c in cls
                        ],
                    )
                )
    if history:
        keys = [
            k
            for k in (
                "train_loss",
                "val_loss",
                "val_oa",
                "val_miou",
                "val_kappa",
                "val_macro_f1",
                "val_map",
                "val_coarse_oa",
                "lr",
                "seconds",
            )
            if any(k in r for r in history)
        ]
        best = [i for i, r in enumerate(history) if r.get("improved")]
        marks = ["best" if best and i == best[-1] else "" for i in range(len(history))]
        parts.append(
            "<h2>Epochs</h2>"
            + _table(["epoch"] + keys, [[r.get("epoch")] + [r.get(k) for k in keys] for r in history], classes=marks)
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: str, text: str) -> str:
    """Write ``text`` to ``path`` under a temporary name, then rename (never half a report under the name)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{temp_tag()}.part")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_log(csv_path: str) -> List[dict]:
    """The training's log.csv as rows of numbers (the history when no progress event carried it)."""
    import csv

    rows = []
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                row: dict = {}
                for k, v in r.items():
                    try:
                        row[k] = int(v) if k == "epoch" else (float(v) if v not in ("", None) else None)
                    except ValueError:
                        row[k] = v
                rows.append(row)
    except OSError:
        return []
    return rows
