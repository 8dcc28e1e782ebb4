"""The pure planning of buildpatches (core/labels/plan.py): settings checks, positions, spatial split, folds,
sampling. No rasters: candidates are made here."""

import numpy as np
import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.labels.plan import SPLITS, Candidate, PatchSettings, plan_splits, sample_patches


def grid_candidates(n_rows, n_cols, p=16, hist=None):
    return [
        Candidate(r * p, c * p, np.array(hist or [0, p * p]), 1.0, 0.0) for r in range(n_rows) for c in range(n_cols)
    ]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"patch_size": 4}, "patch size must be at least 8"),
        ({"min_labelled": 1.5}, "fractions between 0 and 1"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "must be below 1"),
        ({"block_size": 0}, "block size must be at least 1"),
        ({"k_folds": 1}, "K_FOLDS must be 0"),
    ],
)
def test_settings_refuse_bad_values_with_the_parameter_named(kw, message):
    with pytest.raises(SatClassifyError, match=message):
        PatchSettings(**kw)


def test_positions_never_cross_the_edge_and_stride_defaults_to_the_patch():
    s = PatchSettings(patch_size=16)
    assert s.stride == 16
    rows, cols = s.positions(width=50, height=33)
    assert rows == [0, 16] and cols == [0, 16, 32]
    s8 = PatchSettings(patch_size=16, stride=8, block_size=2)
    # blocks of 32 px: a patch at col 24 covers 24..39 and straddles the boundary at 32
    assert s8.straddles(0, 24) and not s8.straddles(0, 16) and not s8.straddles(32, 32)


def test_split_goes_by_whole_blocks_and_reaches_the_fractions():
    s = PatchSettings(patch_size=16, block_size=2, val_fraction=0.25, test_fraction=0.25, seed=3)
    cands = grid_candidates(8, 8)  # 64 patches in 16 blocks of 2 x 2 patches
    plan = plan_splits(cands, s)
    split_of_block = {}
    for c, si in zip(cands, plan.split_of):
        b = (c.row // 32, c.col // 32)
        assert split_of_block.setdefault(b, si) == si  # one split per block
    counts = np.bincount(plan.split_of, minlength=3)
    assert counts.tolist() == [32, 16, 16]
    assert sum(plan.blocks.values()) == 16 and plan.keep.all()
    again = plan_splits(cands, s)
    assert (again.split_of == plan.split_of).all()  # the seed makes it reproducible
    other = plan_splits(
        cands, PatchSettings(patch_size=16, block_size=2, val_fraction=0.25, test_fraction=0.25, seed=4)
    )
    assert (other.split_of != plan.split_of).any()


def test_folds_cycle_over_train_blocks_and_too_few_blocks_are_named():
    s = PatchSettings(patch_size=16, block_size=1, val_fraction=0, test_fraction=0, k_folds=3)
    plan = plan_splits(grid_candidates(3, 3), s)
    assert sorted(plan.fold_of) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(SatClassifyError, match="3 folds need at least 3 train blocks, there are 2"):
        plan_splits(grid_candidates(1, 2), s)
    with pytest.raises(SatClassifyError, match="none is left for training"):
        plan_splits(grid_candidates(1, 1), PatchSettings(patch_size=16, block_size=4, val_fraction=0.5))


def test_sampling_keeps_quota_per_split_and_class_aware_prefers_rare_classes():
    rng = np.random.default_rng(0)
    n = 200
    hists = np.zeros((n, 3), np.int64)
    hists[:, 1] = 256  # common class everywhere
    rare = np.arange(n) % 20 == 0  # 10 patches also hold the rare class
    hists[rare, 1], hists[rare, 2] = 128, 128
    split_of = np.zeros(n, int)
    split_of[150:] = 1
    keep = sample_patches(hists, split_of, 20, class_aware=True, rng=rng)
    assert keep[:150].sum() == 15 and keep[150:].sum() == 5
    assert keep[rare].sum() >= 6  # rare-class patches mostly kept (weight 20x; uniform would keep ~1)
    uniform = sample_patches(hists, split_of, 20, class_aware=False, rng=np.random.default_rng(0))
    assert uniform.sum() == 20 and uniform[rare].sum() < keep[rare].sum()
    assert SPLITS == ("train", "val", "test")


def test_point_patches_overlapping_a_train_patch_leave_val_and_test():
    """Point labels put patches anywhere: a val/test patch sharing a pixel with a kept train patch is dropped (the
    train patch stays); touching edges (16 px apart) share no pixel and stay."""
    from satclassify_plugin.core.labels.plan import SplitPlan, drop_overlapping

    h = np.array([0, 1])
    cands = [
        Candidate(0, 0, h, 1.0, 0.0),
        Candidate(10, 5, h, 1.0, 0.0),
        Candidate(0, 16, h, 1.0, 0.0),
        Candidate(40, 40, h, 1.0, 0.0),
        Candidate(50, 50, h, 1.0, 0.0),
        Candidate(80, 80, h, 1.0, 0.0),
    ]
    split = np.array([SPLITS.index(s) for s in ("train", "val", "test", "train", "test", "val")])
    plan = SplitPlan(split_of=split, fold_of=[-1] * 6, keep=np.ones(6, bool))
    assert drop_overlapping(cands, plan, 16) == 2
    assert plan.keep.tolist() == [True, False, True, True, False, True]
    plan.keep[3] = False  # a train patch left out by sampling protects nothing
    plan.keep[4] = True
    assert drop_overlapping(cands, plan, 16) == 0 and plan.keep[4]


def test_layout_is_checked():
    with pytest.raises(SatClassifyError, match="patch layout must be one of auto, grid, points"):
        PatchSettings(layout="centred")
