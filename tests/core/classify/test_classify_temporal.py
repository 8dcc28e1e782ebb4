"""core.classify.temporal: a multi-date model's inputs from a multi-date stack's band names."""

import numpy as np
import pytest

from satclassify_plugin.core.classify.temporal import temporal_inputs
from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.contract.modelcard import parse_card
from satclassify_plugin.core.contract.timeseries import card_entry, descriptions

TRAINED = ["2023-04-01", "2023-06-01", "2023-08-01"]


def card(doy_input=True, bands=("B04", "B08")):
    return parse_card(
        {
            "architecture": "utae",
            "bands": list(bands),
            "mean": [0.1, 0.3],
            "std": [0.05, 0.1],
            "tile_size": 64,
            "halo": 16,
            "heads": [
                {"name": "class", "output": "probs_class", "classes": [{"value": 1, "name": "a", "color": "#000000"}]}
            ],
            "timeseries": card_entry(list(bands), TRAINED, doy_input),
        }
    )


def test_exact_dates_map_by_name_and_order():
    names = descriptions(["B08", "B02", "B04"], ["2024-04-03", "2024-06-05", "2024-08-02"])
    t = temporal_inputs(card(), names)
    # per date: B04, B08 (the card's order, not the stack's) then VALID
    assert t.band_numbers == [3, 1, 4, 7, 5, 8, 11, 9, 12]
    assert t.dates == ["2024-04-03", "2024-06-05", "2024-08-02"]
    np.testing.assert_array_equal(t.feeds["doy"], [94, 157, 215])
    a, b = t.scale
    np.testing.assert_allclose(a[:3], [1e-4 / 0.05, 1e-4 / 0.1, 1.0])
    np.testing.assert_allclose(b[:3], [-0.1 / 0.05, -0.3 / 0.1, 0.0])
    assert t.nodata == [None] * 9
    assert t.valid_channels == [2, 5, 8]  # the VALID channel of each date in the model's input


def test_more_dates_pick_the_closest_days_of_year():
    dates = ["2024-03-01", "2024-04-02", "2024-05-01", "2024-06-03", "2024-07-01", "2024-08-05"]
    logs = []
    t = temporal_inputs(card(doy_input=False), descriptions(["B04", "B08"], dates), logs.append)
    assert t.dates == ["2024-04-02", "2024-06-03", "2024-08-05"] and t.feeds == {}
    assert "the stack has 6 dates, the model takes 3" in logs[0]


@pytest.mark.parametrize(
    "names, words",
    [
        (
            descriptions(["B04", "B08"], ["2024-04-01", "2024-06-01"]),
            "the stack has 2 date(s) (2024-04-01, 2024-06-01) but the model needs 3 "
            "(trained on 2023-04-01, 2023-06-01, 2023-08-01)",
        ),
        (["B04", "B08"], "the input raster is a single-date stack"),
        (descriptions(["B04"], TRAINED), "no B08"),
        (["B04@2024-01-01", "B08"], "not a usable multi-date stack"),
    ],
)
def test_faults_name_the_problem(names, words):
    with pytest.raises(SatClassifyError) as e:
        temporal_inputs(card(), names)
    assert words in str(e.value)


def test_single_date_card_is_refused_by_name():
    single = card()
    single.timeseries = None
    with pytest.raises(SatClassifyError, match=r"the model \(utae\) is a single-date model"):
        temporal_inputs(single, descriptions(["B04", "B08"], TRAINED))
