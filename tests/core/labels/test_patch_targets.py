"""buildpatches' patch-level targets (core.labels.plan): the class-fraction rule and TARGET_FRACTION's check."""

import numpy as np
import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.labels.plan import PatchSettings, patch_targets


def test_classes_above_the_fraction_of_labelled_pixels():
    hist = np.array([56, 100, 0, 30, 70])  # 56 unlabelled; 200 labelled: 50 %, 0 %, 15 %, 35 %
    assert patch_targets(hist, 0.2).tolist() == [1, 0, 0, 1]
    assert patch_targets(hist, 0.15).tolist() == [1, 0, 1, 1]  # exactly the fraction counts
    assert patch_targets(hist, 1e-9).tolist() == [1, 0, 1, 1]  # any pixel, never an absent class
    assert patch_targets(hist, 1.0).tolist() == [0, 0, 0, 0]
    assert patch_targets(np.array([10, 0, 0]), 0.1).tolist() == [0, 0]  # no labelled pixel


def test_target_fraction_setting():
    assert PatchSettings(patch_size=16).target_fraction == 0.0
    assert PatchSettings(patch_size=16, target_fraction=0.25).target_fraction == 0.25
    with pytest.raises(SatClassifyError, match="TARGET_FRACTION 1.5 must be a fraction between 0 and 1"):
        PatchSettings(patch_size=16, target_fraction=1.5)
