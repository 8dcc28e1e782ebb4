"""Re-cut splits of a dataset folder without copying it: cross-validation folds and ``--split all``.

* :class:`DatasetView` wraps a ``core.contract.dataset.Dataset``: each split of the view is a list of parts
  (a split of the dataset, with all its patches or some rows of it). The shards it serves are the dataset's
  memory-mapped arrays, or row selections of them (:class:`Rows`, read on indexing): memory stays flat.
* :func:`fold_view`: ``train --fold K`` trains on the train patches of the other folds (view split ``train``)
  and validates on those of fold K (view split ``val``); the dataset's own ``val`` split is not used, its
  ``test`` split stays as it is. Fold ids come from the manifest: ``k_folds`` and ``folds.train`` (one id per
  train patch, in shard order), written by buildpatches (``K_FOLDS``) and ``training import ... --k-folds``.
* :func:`all_view`: one split ``all`` holding every patch of every split.
* :func:`assign_folds`: fold ids over spatial blocks (round robin over the blocks shuffled with a seed), as
  buildpatches gives them (``core.labels.plan``).
"""

from typing import Any, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .errors import TrainingError

FOLD_FIX = (
    "rebuild it with satclassify:buildpatches K_FOLDS=5 (or import it with 'python -m training import ... --k-folds 5')"
)


class Rows:
    """Rows ``rows`` (sorted int indices) of an (N, ...) array, read from ``base`` only when indexed."""

    def __init__(self, base: Any, rows: Sequence[int]) -> None:
        self.base = base
        self.rows = np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> Tuple[int, ...]:
        return (len(self.rows),) + tuple(self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if first is Ellipsis:
            return np.asarray(self)[key]
        if isinstance(first, (int, np.integer)):
            return self.base[(int(self.rows[first]),) + rest]
        picked = np.asarray(self.base[self.rows[first]])
        return picked[(slice(None),) + rest] if rest else picked

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(self.base[self.rows])
        return a.astype(dtype) if dtype is not None else a


def _select(arr, rows):
    return None if arr is None else Rows(arr, rows)


class DatasetView:
    """A dataset whose splits are re-cut: ``parts`` = {view split: [(dataset split, rows or None), ...]} where
    rows index the dataset split's patches in shard order (None: all of them). Everything else (bands,
    classes, scale, task, ...) is the dataset's."""

    def __init__(self, ds: Any, parts: Dict[str, List[Tuple[str, Any]]], description: str = "") -> None:
        self._ds = ds
        self._parts = {s: list(p) for s, p in parts.items()}
        self.description = description
        self._manifest: Optional[Dict[str, Any]] = None
        self._counts: Dict[str, Any] = {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._ds, name)

    def __repr__(self):
        return f"DatasetView({self._ds!r}, {self.description or list(self._parts)})"

    # -- splits ------------------------------------------------------------------------------------
    def _check(self, split):
        if split not in self._parts:
            raise TrainingError(
                f"the dataset has no split '{split}' here ({self.description or 'view'}; "
                f"available: {', '.join(self._parts)})"
            )

    @property
    def splits(self) -> List[str]:
        return [s for s in self._parts if self.count(s) > 0]

    def count(self, split: str) -> int:
        self._check(split)
        return sum(
            self._ds.count(s) if rows is None else len(rows)
            for s, rows in self._parts[split]
            if rows is not None or s in self._ds.splits
        )

    def _pieces(self, split, arrays):
        """[(per-shard item, local rows or None)] of ``split``: ``arrays(dataset split)`` gives the shards."""
        out = []
        for s, rows in self._parts[split]:
            if s not in self._ds.splits:
                continue
            start = 0
            for sh in arrays(s):
                n = int((sh[0] if isinstance(sh, tuple) else sh).shape[0])
                if rows is None:
                    out.append((sh, None))
                else:
                    local = rows[(rows >= start) & (rows < start + n)] - start
                    if len(local):
                        out.append((sh, local))
                start += n
        return out

    def shards(self, split: str) -> list:
        self._check(split)
        if self.count(split) == 0:
            raise TrainingError(f"split '{split}' has no patches ({self.description})")
        return [
            sh if rows is None else tuple(_select(a, rows) for a in sh)
            for sh, rows in self._pieces(split, self._ds.shards)
        ]

    def targets(self, split: str) -> list:
        self._check(split)
        return [t if rows is None else Rows(t, rows) for t, rows in self._pieces(split, self._ds.targets)]

    def class_counts(self, split: str) -> Dict[Any, int]:
        """Labelled pixels per class value (a patch-level dataset without pixel labels: patches per class), the
        dataset's manifest counts for whole splits, counted from the shards for row selections."""
        self._check(split)
        if split not in self._counts:
            self._counts[split] = self._class_counts(split)
        return dict(self._counts[split])

    def _class_counts(self, split):
        values = self._ds.class_values
        out = {int(v): 0 for v in values}
        for s, rows in self._parts[split]:
            if s not in self._ds.splits:
                continue
            if rows is None:
                for v, n in (self._ds.class_counts(s) or {}).items():
                    out[int(v)] = out.get(int(v), 0) + int(n)
                continue
            pieces = self._pieces_of(s, rows)
            if self._ds.has_labels:
                for (_imgs, labels, masks), local in pieces:
                    lab = np.asarray(labels[local])
                    if masks is not None:
                        lab = np.where(np.asarray(masks[local]) > 0, lab, 0)
                    hist = np.bincount(lab.ravel(), minlength=256)
                    for v in values:
                        out[int(v)] += int(hist[int(v)])
            else:
                for v, n in self._target_counts(s, rows).items():
                    out[int(v)] += n
        return out

    def _pieces_of(self, s, rows):
        start, out = 0, []
        for sh in self._ds.shards(s):
            n = int(sh[0].shape[0])
            local = rows[(rows >= start) & (rows < start + n)] - start
            if len(local):
                out.append((sh, local))
            start += n
        return out

    def _target_counts(self, s, rows):
        values = self._ds.class_values
        tot = np.zeros(len(values), np.int64)
        start = 0
        for t in self._ds.targets(s):
            n = int(t.shape[0])
            local = rows[(rows >= start) & (rows < start + n)] - start
            if len(local):
                tot += (np.asarray(t[local]) > 0).sum(axis=0)
            start += n
        return {int(v): int(c) for v, c in zip(values, tot)}

    @property
    def manifest(self) -> Dict[str, Any]:
        """The dataset's manifest whose ``splits`` describe the view's splits (patches, class counts, target
        counts of a patch-level dataset), each computed when first looked up."""
        m = self._manifest
        if m is None:
            m = dict(self._ds.manifest)
            m["splits"] = _LazySplits(self)
            m["view"] = self.description
            self._manifest = m
        return m

    def _split_entry(self, split):
        entry = {"patches": self.count(split), "class_counts": {str(v): n for v, n in self.class_counts(split).items()}}
        if self._ds.task != "segmentation":
            tc = {int(v): 0 for v in self._ds.class_values}
            for s, rows in self._parts[split]:
                if s not in self._ds.splits:
                    continue
                r = np.arange(self._ds.count(s)) if rows is None else rows
                for v, n in self._target_counts(s, r).items():
                    tc[v] += n
            entry["target_counts"] = {str(v): n for v, n in tc.items()}
        return entry


class _LazySplits(dict):
    """manifest["splits"] of a view: an entry is counted when first looked up (labels are read only then)."""

    def __init__(self, view: "DatasetView") -> None:
        super().__init__()
        self._view = view

    def __missing__(self, split):
        self._view._check(split)
        self[split] = entry = self._view._split_entry(split)
        return entry


def fold_ids(ds: Any) -> Tuple[int, np.ndarray]:
    """(k, fold id per train patch as an int array) from the manifest; an error naming the fix when the
    dataset has no folds."""
    m = ds.manifest
    k = m.get("k_folds") or 0
    folds = (m.get("folds") or {}).get("train") if isinstance(m.get("folds"), dict) else None
    where = getattr(ds, "folder", "")
    if not isinstance(k, int) or isinstance(k, bool) or k < 2 or folds is None:
        raise TrainingError(
            f"the dataset '{where}' has no cross-validation folds (manifest k_folds {k if k else 0}): {FOLD_FIX}"
        )
    n = ds.count("train") if "train" in ds.splits else 0
    ids = np.asarray(folds, dtype=np.int64)
    if ids.ndim != 1 or len(ids) != n:
        raise TrainingError(
            f"the dataset '{where}' lists {len(folds)} fold ids for its {n} train patches: the "
            f"manifest is inconsistent, {FOLD_FIX}"
        )
    if n and (ids.min() < 0 or ids.max() >= k):
        raise TrainingError(f"the dataset '{where}' has fold ids outside 0..{k - 1}: {FOLD_FIX}")
    return k, ids


def fold_view(ds: Any, fold: Optional[int]) -> Any:
    """The dataset for ``train --fold K`` (``ds`` itself when ``fold`` is None)."""
    if fold is None:
        return ds
    k, ids = fold_ids(ds)
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= int(fold) < k:
        raise TrainingError(f"--fold {fold} is out of range: the dataset has {k} folds, numbered 0 to {k - 1}")
    fold = int(fold)
    val = np.nonzero(ids == fold)[0]
    train = np.nonzero(ids != fold)[0]
    if len(val) == 0:
        raise TrainingError(
            f"fold {fold} holds no train patch (the dataset's {k} folds have "
            f"{np.bincount(ids, minlength=k).tolist()} patches): choose another fold"
        )
    if len(train) == 0:
        raise TrainingError(f"every train patch is in fold {fold}: nothing is left to train on; {FOLD_FIX}")
    parts: Dict[str, List[Tuple[str, Any]]] = {
        "train": [("train", train)],
        "val": [("train", val)],
        "test": [("test", None)],
    }
    return DatasetView(
        ds,
        parts,
        f"fold {fold} of {k}: train = the train patches of the other folds "
        f"({len(train)}), val = fold {fold} ({len(val)})",
    )


def all_view(ds: Any) -> "DatasetView":
    """One split ``all`` with every patch of the dataset (all splits, in order)."""
    return DatasetView(ds, {"all": [(s, None) for s in ds.splits]}, "all splits: " + ", ".join(ds.splits))


def assign_folds(train_blocks: Iterable[Hashable], k: int, seed: int = 0) -> Dict[Hashable, int]:
    """{block: fold id 0..k-1} for the train split's blocks: shuffled with ``seed``, then round robin, so folds
    differ by at most one block. Fewer blocks than folds is an error."""
    blocks = sorted(set(train_blocks), key=repr)
    if len(blocks) < k:
        raise TrainingError(
            f"{k} folds need at least {k} spatial blocks in the train split, there are "
            f"{len(blocks)}: lower --k-folds or --block-size"
        )
    order = [blocks[i] for i in np.random.default_rng([int(seed), 1]).permutation(len(blocks))]
    return {b: i % k for i, b in enumerate(order)}
