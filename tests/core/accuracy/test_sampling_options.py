"""SamplingOptions: the user's choices of a sampling design, checked when made (before any raster is read)."""

import dataclasses

import pytest

from satclassify_plugin.core.accuracy.sampling import METHODS, RULES, SamplingOptions
from satclassify_plugin.core.contract.errors import SatClassifyError


def test_defaults():
    o = SamplingOptions()
    assert (o.ignore, o.method, o.target_se, o.expected_ua, o.total, o.rule, o.minimum, o.seed) == (
        "0",
        "target_se",
        0.01,
        0.8,
        500,
        "proportional",
        50,
        1,
    )
    assert o.method in METHODS and o.rule in RULES
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.seed = 2


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"method": "random"}, "METHOD must be one of target_se, total, counts, not 'random'"),
        ({"rule": "neyman"}, "allocation must be proportional or equal, not 'neyman'"),
        ({"target_se": 0.0}, "the target standard error of overall accuracy must be between 0 and 0.5"),
        ({"expected_ua": 1.0}, "expected user's accuracies must be between 0 and 1 (exclusive), got 1.0"),
        ({"method": "total", "total": 0}, "TOTAL must be at least 1 point, got 0"),
        ({"method": "counts"}, "METHOD 'counts per class' needs the COUNTS table (CSV value,count)"),
        ({"minimum": -1}, "the minimum number of points per class must be >= 0, got -1"),
        ({"seed": -3}, "SEED must be an integer >= 0, got -3"),
        ({"block": 0}, "block must be a positive number of pixels, got 0"),
        ({"ignore": "0, x"}, "IGNORE must be a comma-separated list of integer class values"),
    ],
)
def test_bad_choices_name_the_problem(kwargs, words):
    with pytest.raises(SatClassifyError) as e:
        SamplingOptions(**kwargs)
    assert words in str(e.value)


def test_values_a_method_does_not_use_are_not_checked():
    """The target SE and expected accuracy only matter for METHOD target_se, TOTAL only for total."""
    SamplingOptions(method="total", total=10, target_se=0.0, expected_ua=1.0)
    SamplingOptions(method="counts", counts_table="c.csv", total=0)
