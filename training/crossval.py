"""``python -m training crossval``: train on each fold in turn (``train --fold K``), then the mean and the spread
over the folds of each fold's validation figures.

Each fold runs in its own run folder ``<out>/fold-<K>`` (a complete ``train`` run: best.pt, last.pt, log.csv, ...).
A fold's figures are those of its best checkpoint (the epoch the run keeps as ``best.pt``: its validation on the
held-out fold K). ``<out>/crossval.json`` (written after every fold, so an interrupted run keeps the folds done)
holds them per fold and their mean and standard deviation (sample standard deviation, n - 1; null for one fold).
"""

import json
import math
import os
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from satclassify_plugin.core.contract.paths import same_file

from . import checkpoint as ckpt_io
from .config import TrainConfig
from .data import open_dataset
from .errors import TrainingError
from .files import atomic_open, make_dir
from .folds import fold_ids
from .progress import Cancel, Progress

#: figures summarised over the folds (the checkpoint's ``val_<name>``; those a task has no value for are left out)
METRICS = ("oa", "macro_f1", "kappa", "miou", "micro_f1", "map")
SUMMARY = "crossval.json"


def parse_folds(text: Optional[str], k: int) -> List[int]:
    """``all``, a count N (folds 0..N-1) or a comma-separated list of fold ids -> the fold ids to run."""
    t = str(text if text is not None else "all").strip().lower()
    if t == "all":
        return list(range(k))
    try:
        if "," in t:
            ids = [int(v) for v in t.split(",") if v.strip()]
        else:
            n = int(t)
            if not 1 <= n <= k:
                raise TrainingError(f"--folds {n}: the dataset has {k} folds; run 1 to {k} of them (or 'all')")
            ids = list(range(n))
    except ValueError:
        raise TrainingError(f"--folds '{text}' is not 'all', a number of folds or a list of fold ids (e.g. 0,2)")
    bad = [i for i in ids if not 0 <= i < k]
    if bad or not ids or len(set(ids)) != len(ids):
        raise TrainingError(f"--folds '{text}': fold ids must be distinct, in 0..{k - 1} (the dataset has {k} folds)")
    return ids


def mean_std(values: Iterable[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
    """(mean, sample standard deviation) of the non-None values; (None, None) without any, std None for one."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return None, None
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
    return m, s


def crossval(
    cfg: TrainConfig,
    folds: Optional[str] = "all",
    explicit: Optional[Dict[str, Any]] = None,
    inputs: Optional[Dict[str, str]] = None,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    progress: Optional[Progress] = None,
    cancel: Optional[Cancel] = None,
) -> Dict[str, Any]:
    """Train ``cfg`` once per fold of ``folds`` (see :func:`parse_folds`); returns the summary dict. ``overwrite``:
    fold run folders that already hold a run are replaced (``train --overwrite``). ``progress``, ``cancel``: given
    to each fold's ``train``."""
    from .train import train

    explicit = dict(explicit or {})
    _refuse_fold_options(cfg)
    ds = open_dataset(cfg.data)
    data = str(cfg.data)  # given (open_dataset refuses None)
    k, ids = fold_ids(ds)
    run = parse_folds(folds, k)
    out = cfg.out or os.path.join("runs", f"crossval-{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}")
    if same_file(out, data):
        raise TrainingError(f"--out '{out}' is the dataset folder --data: give --out another folder")
    make_dir(out)
    summary: Dict[str, Any] = {
        "dataset": os.path.abspath(data),
        "k_folds": k,
        "folds": run,
        "patches_per_fold": [int((ids == i).sum()) for i in range(k)],
        "model": cfg.model,
        "config": None,
        "per_fold": [],
        "mean": {},
        "std": {},
        "std_kind": "sample standard deviation (n - 1) over the folds",
        "figures": "each fold's best checkpoint (best.pt): its validation on the held-out fold",
    }
    path = os.path.join(out, SUMMARY)
    for n, fold in enumerate(run):
        fold_cfg = type(cfg)(**{**cfg.to_dict(), "fold": fold, "out": os.path.join(out, f"fold-{fold}")})
        log(f"crossval: fold {fold} ({n + 1} of {len(run)}), run folder {fold_cfg.out}")
        t0 = time.time()
        res = train(
            fold_cfg,
            explicit={**explicit, "fold": fold, "out": fold_cfg.out},
            inputs=inputs,
            overwrite=bool(overwrite),
            progress=progress,
            cancel=cancel,
        )
        if not res.get("is_main", True):
            continue
        if not (res.get("best") or res.get("last")):
            raise TrainingError(f"fold {fold}: the run wrote no checkpoint (no epoch ran): raise --epochs")
        best = ckpt_io.load(res.get("best") or res["last"], "fold checkpoint")
        entry = _fold_entry(fold, res, best, ids, time.time() - t0)
        summary["config"] = summary["config"] or {
            k2: v for k2, v in best["config"].items() if k2 not in ("fold", "out")
        }
        summary["per_fold"].append(entry)
        _summarise(summary)
        with atomic_open(path, "w") as f:
            json.dump(summary, f, indent=1)
    summary["output"] = path
    log(_summary_line(summary))
    return summary


def _refuse_fold_options(cfg):
    """Refuse the ``train`` options crossval sets itself: --resume (every fold starts from scratch), --fold."""
    if cfg.resume:
        raise TrainingError(
            "crossval starts every fold from scratch: --resume is not used here (resume one fold "
            "with 'train --resume <out>/fold-K/last.pt')"
        )
    if cfg.fold is not None:
        raise TrainingError("crossval chooses the folds itself: give --folds, not --fold")


def _fold_entry(fold, res, best, ids, seconds):
    """The summary's row of one fold: its run, the patch counts of its split and its best checkpoint's validation
    figures (those the task has)."""
    row = best.get("metrics") or {}
    entry = {
        "fold": fold,
        "run_dir": res["run_dir"],
        "best_epoch": int(best.get("epoch", -1)) + 1,
        "epochs_run": res["epochs_run"],
        "train_patches": int((ids != fold).sum()),
        "val_patches": int((ids == fold).sum()),
        "seconds": round(seconds, 1),
    }
    entry.update({m: row.get(f"val_{m}") for m in METRICS if row.get(f"val_{m}") is not None})
    return entry


def _summary_line(summary):
    """The closing log line: the mean (± the standard deviation where there is one) of each figure."""
    return (
        "crossval over "
        + f"{len(summary['per_fold'])} fold(s): "
        + ", ".join(
            f"{m} {summary['mean'][m]:.4f} ± {summary['std'][m]:.4f}"
            if summary["std"].get(m) is not None
            else f"{m} {summary['mean'][m]:.4f}"
            for m in METRICS
            if summary["mean"].get(m) is not None
        )
    )


def _summarise(summary):
    for m in METRICS:
        mean, std = mean_std(e.get(m) for e in summary["per_fold"])
        if mean is not None:
            summary["mean"][m], summary["std"][m] = mean, std
