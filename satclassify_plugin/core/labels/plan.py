"""Planning of a training dataset (pure Python + numpy, no GDAL): the user's settings, the candidate patches of
pass 1, their spatial split into train/val/test blocks (and folds), and the optional sampling.

:func:`~.patches.build_patches` reads the rasters; everything it decides between reading the labels and
writing the image patches is here, so it is tested in tests/core without rasters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..contract.errors import SatClassifyError

SPLITS = ("train", "val", "test")
LAYOUTS = ("auto", "grid", "points")


@dataclass(frozen=True)
class PatchSettings:
    """What the user chose (BUILDPATCHES' parameters), checked when made."""

    patch_size: int = 256
    stride: int = 0  # 0 = patch_size (no overlap)
    min_labelled: float = 0.5
    max_masked: float = 0.0
    block_size: int = 4  # split blocks, in patches
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    k_folds: int = 0
    clc_level: int = 0
    max_patches: int = 0
    class_aware: bool = False
    shard_size: int = 256
    target_fraction: float = 0.0  # > 0: also patch-level multi-label targets (see patch_targets)
    mask_is_noise: bool = False  # the mask marks pixels to drop (nonzero = noisy, rasterizeclc's MIXED), not valid ones
    #: "grid": patches on a grid over the raster; "points": one patch centred on each labelled pixel (point labels,
    #: a patch-label dataset); "auto": "points" when the label raster says it holds point labels (rasterizelabels)
    layout: str = "auto"

    def __post_init__(self):
        p = int(self.patch_size)
        if p < 8:
            raise SatClassifyError(f"patch size must be at least 8 pixels, not {self.patch_size}")
        object.__setattr__(self, "patch_size", p)
        object.__setattr__(self, "stride", int(self.stride) or p)
        if self.stride < 1:
            raise SatClassifyError(f"stride must be positive, not {self.stride}")
        if not 0.0 <= self.min_labelled <= 1.0 or not 0.0 <= self.max_masked <= 1.0:
            raise SatClassifyError("MIN_LABELLED and MAX_MASKED are fractions between 0 and 1")
        v, t = self.val_fraction, self.test_fraction
        if v < 0 or t < 0 or v + t >= 1.0:
            raise SatClassifyError(f"val fraction {v} + test fraction {t} must be below 1 (the rest is train)")
        if int(self.block_size) < 1:
            raise SatClassifyError(f"block size must be at least 1 patch, not {self.block_size}")
        if int(self.k_folds) == 1 or int(self.k_folds) < 0:
            raise SatClassifyError(f"K_FOLDS must be 0 (no folds) or at least 2, not {self.k_folds}")
        if not 0.0 <= float(self.target_fraction) <= 1.0:
            raise SatClassifyError(
                f"TARGET_FRACTION {self.target_fraction} must be a fraction between 0 and 1 "
                "(0 = no patch-level targets)"
            )
        if self.layout not in LAYOUTS:
            raise SatClassifyError(f"patch layout must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")
        for name in ("block_size", "k_folds", "seed", "max_patches", "shard_size", "clc_level"):
            object.__setattr__(self, name, int(getattr(self, name)))

    @property
    def block_px(self) -> int:
        return self.block_size * self.patch_size

    def positions(self, width: int, height: int) -> Tuple[List[int], List[int]]:
        """Top rows and left columns of every patch position (a patch never crosses the raster edge)."""
        p, s = self.patch_size, self.stride
        return list(range(0, height - p + 1, s)), list(range(0, width - p + 1, s))

    def straddles(self, r0: int, c0: int) -> bool:
        """Whether a patch at (r0, c0) crosses a split-block boundary (possible when stride < patch size)."""
        b, p = self.block_px, self.patch_size
        return r0 // b != (r0 + p - 1) // b or c0 // b != (c0 + p - 1) // b


def patch_targets(hist: np.ndarray, fraction: float) -> np.ndarray:
    """Multi-hot (K,) uint8 target of a patch from its class histogram (column 0 = no label): the classes covering
    at least ``fraction`` of the patch's labelled pixels (all-zero for a patch without labels)."""
    counts = np.asarray(hist[1:], np.float64)
    total = counts.sum()
    if total <= 0:
        return np.zeros(len(counts), np.uint8)
    return ((counts > 0) & (counts / total >= fraction)).astype(np.uint8)


@dataclass(frozen=True)
class Candidate:
    """A patch position kept by pass 1 (labels + mask): its class histogram (column 0 = no label)."""

    row: int
    col: int
    hist: np.ndarray
    labelled: float
    masked: float


@dataclass(frozen=True)
class PatchRecord:
    """A patch written to the dataset: where it is stored and where it lies (one row of patches.gpkg)."""

    split: str
    fold: int
    shard: int
    index: int
    row: int
    col: int
    labelled: float
    masked: float
    fractions: Union[Sequence[float], np.ndarray]  # per class of the table, the fraction of the patch's pixels


@dataclass
class SplitPlan:
    """Which split (index into SPLITS) and fold each candidate gets, and which candidates are kept."""

    split_of: np.ndarray  # (n,) int
    fold_of: List[int]  # (n,) fold id of train candidates, -1 elsewhere
    keep: np.ndarray  # (n,) bool
    blocks: Dict[str, int] = field(default_factory=dict)  # split -> number of blocks
    notes: List[str] = field(default_factory=list)

    def selected(self) -> List[int]:
        return [int(i) for i in np.nonzero(self.keep)[0]]


def plan_splits(
    candidates: Sequence[Candidate], settings: PatchSettings, rng: Optional[np.random.Generator] = None
) -> SplitPlan:
    """Spatial split: square blocks of ``block_size`` x ``block_size`` patches go whole to train, val or test
    (shuffled with the seed, filled until each split reaches its fraction); folds over the train blocks;
    then the optional MAX_PATCHES sampling (per split, in proportion; class-aware prefers rare classes)."""
    s = settings
    n = len(candidates)
    if n == 0:
        raise SatClassifyError("no candidate patch to split")
    rng = rng if rng is not None else np.random.default_rng(s.seed)
    bpx = s.block_px
    block_of = [(c.row // bpx, c.col // bpx) for c in candidates]
    blocks = sorted(set(block_of))
    order = [blocks[i] for i in rng.permutation(len(blocks))]
    per_block: Dict[tuple, int] = {}
    for b in block_of:
        per_block[b] = per_block.get(b, 0) + 1
    target = {"val": s.val_fraction * n, "test": s.test_fraction * n}
    got = {"train": 0, "val": 0, "test": 0}
    block_split: Dict[tuple, str] = {}
    for b in order:
        if got["val"] < target["val"] and target["val"] > 0:
            split = "val"
        elif got["test"] < target["test"] and target["test"] > 0:
            split = "test"
        else:
            split = "train"
        block_split[b] = split
        got[split] += per_block[b]
    if got["train"] == 0:
        raise SatClassifyError(
            f"only {len(blocks)} spatial block(s) of {s.block_size} x {s.block_size} patches "
            "hold patches, none is left for training: lower BLOCK_SIZE or PATCH_SIZE, or the "
            "val/test fractions"
        )
    train_blocks = [b for b in order if block_split[b] == "train"]
    k = s.k_folds
    if k >= 2 and len(train_blocks) < k:
        raise SatClassifyError(
            f"{k} folds need at least {k} train blocks, there are {len(train_blocks)}: lower K_FOLDS or BLOCK_SIZE"
        )
    block_fold = {b: (i % k if k >= 2 else -1) for i, b in enumerate(train_blocks)}
    plan = SplitPlan(
        split_of=np.array([SPLITS.index(block_split[b]) for b in block_of]),
        fold_of=[block_fold.get(b, -1) for b in block_of],
        keep=np.ones(n, bool),
        blocks={sp: sum(1 for b in blocks if block_split[b] == sp) for sp in SPLITS},
    )
    plan.notes.append(
        f"{len(blocks)} spatial blocks of {s.block_size} x {s.block_size} patches ({bpx} px): "
        + ", ".join(f"{sp} {plan.blocks[sp]}" for sp in SPLITS)
    )
    if s.max_patches and n > s.max_patches:
        plan.keep = sample_patches(
            np.array([c.hist for c in candidates], np.int64), plan.split_of, s.max_patches, s.class_aware, rng
        )
        plan.notes.append(
            f"sampling ({'class-aware' if s.class_aware else 'uniform'}): {int(plan.keep.sum())} of "
            f"{n} patches kept (MAX_PATCHES {s.max_patches})"
        )
    return plan


def drop_overlapping(candidates: Sequence[Candidate], plan: SplitPlan, patch_size: int) -> int:
    """Point patches lie anywhere, so a val/test patch may share pixels with a train patch: drop those val/test
    patches (kept train patches win). Returns how many were dropped. A grid hash of cells one patch wide: only
    the 3 x 3 neighbouring cells are compared."""
    p = int(patch_size)
    train = SPLITS.index("train")
    cells: Dict[Tuple[int, int], List[int]] = {}
    for i in np.nonzero(plan.keep & (plan.split_of == train))[0]:
        c = candidates[i]
        cells.setdefault((c.row // p, c.col // p), []).append(int(i))
    dropped = 0
    for i in np.nonzero(plan.keep & (plan.split_of != train))[0]:
        c = candidates[i]
        cr, cc = c.row // p, c.col // p
        hit = any(
            abs(candidates[j].row - c.row) < p and abs(candidates[j].col - c.col) < p
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
            for j in cells.get((cr + dr, cc + dc), ())
        )
        if hit:
            plan.keep[i] = False
            dropped += 1
    return dropped


def sample_patches(
    hists: np.ndarray, split_of: np.ndarray, max_patches: int, class_aware: bool, rng: np.random.Generator
) -> np.ndarray:
    """Keep about ``max_patches`` candidates, each split in proportion to its size (at least one per split).
    Weighted sampling without replacement (keys u^(1/w)); class-aware weights = sum over classes of the patch's
    pixels of that class / all candidates' pixels of that class, so patches of rare classes are preferred."""
    n = len(split_of)
    keep = np.zeros(n, bool)
    class_px = hists[:, 1:].sum(axis=0).astype(np.float64)
    for si in range(len(SPLITS)):
        idx = np.nonzero(split_of == si)[0]
        if idx.size == 0:
            continue
        quota = max(1, int(round(int(max_patches) * idx.size / n)))
        if quota >= idx.size:
            keep[idx] = True
            continue
        if class_aware:
            wts = (hists[idx, 1:] / np.maximum(class_px, 1.0)).sum(axis=1) + 1e-12
        else:
            wts = np.ones(idx.size)
        keys = rng.random(idx.size) ** (1.0 / wts)
        keep[idx[np.argsort(-keys)[:quota]]] = True
    return keep
