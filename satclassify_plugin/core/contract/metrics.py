"""Classification metrics shared by the accuracy tool and the training package (one implementation).

Pure numpy. The confusion matrix is indexed [reference, predicted] (rows = truth).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from .errors import SatClassifyError


class ConfusionMatrix:
    """A streaming confusion matrix over a fixed list of class values.

    ``update`` can be called block by block; pixels whose reference or prediction is in
    ``ignore`` (or not in ``values``) are skipped and counted in ``ignored``.
    """

    def __init__(self, values: Sequence[int], ignore: Iterable[int] = (0,)):
        values = [int(v) for v in values]
        if not values:
            raise SatClassifyError("confusion matrix needs at least one class value")
        if len(set(values)) != len(values):
            raise SatClassifyError(f"duplicate class values: {values}")
        if min(values) < 0 or max(values) > 65535:
            raise SatClassifyError("class values must be in 0..65535")
        self.values = values
        self.ignore = set(int(v) for v in ignore)
        self.matrix = np.zeros((len(values), len(values)), dtype=np.int64)
        self.ignored = 0
        self._lut = np.full(max(max(values), max(self.ignore, default=0)) + 1, -1, dtype=np.int64)
        for i, v in enumerate(values):
            if v not in self.ignore:
                self._lut[v] = i

    def _index(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a).ravel()
        if a.size and (a.min() < 0):
            raise SatClassifyError("class rasters must hold non-negative integers")
        a = a.astype(np.int64, copy=False)
        idx = np.full(a.shape, -1, dtype=np.int64)
        inside = a < len(self._lut)
        idx[inside] = self._lut[a[inside]]
        return idx

    def update(self, reference, predicted, valid: Optional[np.ndarray] = None) -> None:
        ref = self._index(reference)
        pred = self._index(predicted)
        if ref.shape != pred.shape:
            raise SatClassifyError(f"reference and prediction differ in size: {ref.shape} vs {pred.shape}")
        ok = (ref >= 0) & (pred >= 0)
        if valid is not None:
            ok &= np.asarray(valid).ravel().astype(bool)
        self.ignored += int(ok.size - ok.sum())
        k = len(self.values)
        self.matrix += np.bincount(ref[ok] * k + pred[ok], minlength=k * k).reshape(k, k)

    def metrics(self, names: Optional[Dict[int, str]] = None) -> dict:
        return compute_metrics(self.matrix, self.values, names)


def confusion_matrix(reference, predicted, values: Sequence[int], ignore: Iterable[int] = (0,)) -> np.ndarray:
    cm = ConfusionMatrix(values, ignore)
    cm.update(reference, predicted)
    return cm.matrix


def _div(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out


def compute_metrics(matrix, values: Sequence[int], names: Optional[Dict[int, str]] = None) -> dict:
    """OA, Cohen's kappa, per-class precision/recall/F1/IoU/support, macro F1 and mIoU.

    Per-class scores with an empty denominator are ``None`` (undefined); macro averages take the
    classes present in the reference or the prediction. Everything is JSON-serialisable.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(values):
        raise SatClassifyError(f"confusion matrix must be {len(values)}x{len(values)}, got {m.shape}")
    total = m.sum()
    tp = np.diag(m)
    ref_tot = m.sum(axis=1)
    pred_tot = m.sum(axis=0)
    precision = _div(tp, pred_tot)
    recall = _div(tp, ref_tot)
    f1 = _div(2 * tp, ref_tot + pred_tot)
    iou = _div(tp, ref_tot + pred_tot - tp)
    oa = float(tp.sum() / total) if total else None
    if total:
        pe = float((ref_tot * pred_tot).sum() / (total * total))
        kappa = float((oa - pe) / (1 - pe)) if pe < 1 else (1.0 if oa == 1.0 else 0.0)
    else:
        kappa = None
    present = (ref_tot + pred_tot) > 0

    def clean(x):
        return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)

    per_class: List[dict] = []
    for i, v in enumerate(values):
        per_class.append({
            "value": int(v),
            "name": (names or {}).get(int(v), str(v)),
            "precision": clean(float(precision[i])),
            "recall": clean(float(recall[i])),
            "f1": clean(float(f1[i])),
            "iou": clean(float(iou[i])),
            "support": int(ref_tot[i]),
            "predicted": int(pred_tot[i]),
        })
    macro_f1 = clean(float(np.nanmean(np.where(present, np.nan_to_num(f1), np.nan)))) if present.any() else None
    miou = clean(float(np.nanmean(np.where(present, np.nan_to_num(iou), np.nan)))) if present.any() else None
    return {
        "overall_accuracy": oa,
        "kappa": kappa,
        "macro_f1": macro_f1,
        "miou": miou,
        "pixels": int(total),
        "classes": per_class,
        "confusion_matrix": m.astype(np.int64).tolist(),
        "values": [int(v) for v in values],
    }
