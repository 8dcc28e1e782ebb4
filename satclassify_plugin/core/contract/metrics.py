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
    kappa = None
    if oa is not None:
        pe = float((ref_tot * pred_tot).sum() / (total * total))
        kappa = float((oa - pe) / (1 - pe)) if pe < 1 else (1.0 if oa == 1.0 else 0.0)
    present = (ref_tot + pred_tot) > 0

    def clean(x):
        return None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)

    per_class: List[dict] = []
    for i, v in enumerate(values):
        per_class.append(
            {
                "value": int(v),
                "name": (names or {}).get(int(v), str(v)),
                "precision": clean(float(precision[i])),
                "recall": clean(float(recall[i])),
                "f1": clean(float(f1[i])),
                "iou": clean(float(iou[i])),
                "support": int(ref_tot[i]),
                "predicted": int(pred_tot[i]),
            }
        )
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


# -- multi-label (patch classification: any number of classes per sample) ----------------------------------


def _as_01(a, what) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise SatClassifyError(f"{what} must be (samples, classes), got shape {a.shape}")
    return a.astype(bool)


def multilabel_scores(truth, predicted, names: Optional[Sequence[str]] = None) -> dict:
    """Micro / macro precision, recall and F1 and per-class scores of multi-hot ``predicted`` vs ``truth``
    (both (N, K) 0/1).

    Micro: TP, FP, FN summed over all classes and samples. Macro: the mean of the per-class F1 over the classes
    present in the truth or the prediction (a class with neither is undefined: ``None``, left out). Also the
    sample-averaged F1 (per sample over its classes, 1 when a sample has no class and none predicted)."""
    t, p = _as_01(truth, "truth"), _as_01(predicted, "prediction")
    if t.shape != p.shape:
        raise SatClassifyError(f"truth and prediction differ in shape: {t.shape} vs {p.shape}")
    tp = (t & p).sum(0).astype(np.float64)
    fp = (~t & p).sum(0).astype(np.float64)
    fn = (t & ~p).sum(0).astype(np.float64)
    prec, rec, f1 = _div(tp, tp + fp), _div(tp, tp + fn), _div(2 * tp, 2 * tp + fp + fn)
    present = (tp + fp + fn) > 0

    def clean(x):
        return None if np.isnan(x) else float(x)

    stp, sfp, sfn = tp.sum(), fp.sum(), fn.sum()
    s_tp = (t & p).sum(1)
    s_den = t.sum(1) + p.sum(1)
    sample_f1 = np.where(s_den > 0, 2 * s_tp / np.maximum(s_den, 1), 1.0)
    return {
        "micro_precision": clean(_div(stp, stp + sfp)),
        "micro_recall": clean(_div(stp, stp + sfn)),
        "micro_f1": clean(_div(2 * stp, 2 * stp + sfp + sfn)),
        "macro_f1": float(np.mean(np.nan_to_num(f1[present]))) if present.any() else None,
        "sample_f1": float(sample_f1.mean()) if len(sample_f1) else None,
        "samples": int(t.shape[0]),
        "classes": [
            {
                "index": k,
                "name": (names[k] if names else str(k)),
                "precision": clean(prec[k]),
                "recall": clean(rec[k]),
                "f1": clean(f1[k]),
                "support": int(t[:, k].sum()),
                "predicted": int(p[:, k].sum()),
            }
            for k in range(t.shape[1])
        ],
    }


def average_precision(truth, scores) -> List[Optional[float]]:
    """Average precision per class: the mean, over the class's positive samples ranked by score (highest first),
    of the precision at each positive's rank; tied scores count as one step (all of them at once), as the
    area under the step-wise precision-recall curve. ``None`` for a class without positives."""
    t = _as_01(truth, "truth")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != t.shape:
        raise SatClassifyError(f"truth and scores differ in shape: {t.shape} vs {s.shape}")
    out: List[Optional[float]] = []
    for k in range(t.shape[1]):
        npos = int(t[:, k].sum())
        if npos == 0:
            out.append(None)
            continue
        order = np.argsort(-s[:, k], kind="stable")
        sk, tk = s[order, k], t[order, k]
        last = np.r_[np.nonzero(np.diff(sk))[0], len(sk) - 1]  # the last index of each run of equal scores
        tp = np.cumsum(tk)[last].astype(np.float64)
        prec = tp / (last + 1)
        d_recall = np.diff(np.r_[0.0, tp]) / npos
        out.append(float((prec * d_recall).sum()))
    return out


def mean_average_precision(truth, scores) -> Optional[float]:
    """Macro mAP: the mean of :func:`average_precision` over the classes with at least one positive."""
    ap = [a for a in average_precision(truth, scores) if a is not None]
    return float(np.mean(ap)) if ap else None


def best_thresholds(truth, scores, default: float = 0.5) -> List[float]:
    """Per class, the score threshold (predict the class when score >= threshold) that maximises the class's F1
    on (``truth``, ``scores``), usually the validation split. The threshold lies halfway between the lowest
    score kept and the next lower one (or 0 when every sample is kept); a class without positives (or whose best
    F1 is 0) gets ``default``. Scores are probabilities (0..1)."""
    t = _as_01(truth, "truth")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != t.shape:
        raise SatClassifyError(f"truth and scores differ in shape: {t.shape} vs {s.shape}")
    out = []
    for k in range(t.shape[1]):
        npos = int(t[:, k].sum())
        if npos == 0:
            out.append(float(default))
            continue
        order = np.argsort(-s[:, k], kind="stable")
        sk, tk = s[order, k], t[order, k]
        last = np.r_[np.nonzero(np.diff(sk))[0], len(sk) - 1]
        tp = np.cumsum(tk)[last]
        f1 = 2 * tp / (last + 1 + npos)
        j = int(np.argmax(f1))
        if f1[j] <= 0:
            out.append(float(default))
            continue
        lo = sk[last[j]]
        nxt = sk[last[j] + 1] if last[j] + 1 < len(sk) else 0.0  # all kept: halfway down to 0
        out.append(float(min(max((lo + nxt) / 2.0, 0.0), 1.0)))
    return out
