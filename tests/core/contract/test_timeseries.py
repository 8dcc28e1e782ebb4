"""The multi-date stack convention (core.contract.timeseries): names, parser, errors, date choice."""

import pytest

from satclassify_plugin.core.contract.timeseries import (
    StackLayoutError,
    choose_dates,
    day_of_year,
    descriptions,
    parse_stack,
)

DATES = ["2023-04-14", "2023-05-19", "2023-07-02"]


def test_descriptions_are_date_major_with_valid_last():
    names = descriptions(["B04", "B08"], DATES[:2])
    assert names == [
        "B04@2023-04-14",
        "B08@2023-04-14",
        "VALID@2023-04-14",
        "B04@2023-05-19",
        "B08@2023-05-19",
        "VALID@2023-05-19",
    ]


def test_parse_round_trip_indices_and_doy():
    lay = parse_stack(descriptions(["B02", "B03", "B04", "B08"], DATES))
    assert lay.dates == DATES and lay.bands == ["B02", "B03", "B04", "B08"] and lay.num_dates == 3
    assert lay.band_index("B02", "2023-05-19") == 5 and lay.valid_index("2023-07-02") == 14
    assert lay.date_indices("2023-05-19", ["B08", "B04"]) == [8, 7, 9]
    assert lay.doy == [104, 139, 183] and day_of_year("2024-12-31") == 366


def test_single_date_stack_is_none():
    assert parse_stack(["B02", "B03", "B04", "B08"]) is None
    assert parse_stack(["", ""]) is None


@pytest.mark.parametrize(
    "names, words",
    [
        (["B02@2023-04-14", "VALID@2023-04-14", "B02"], "band 3 is named 'B02' among dated bands"),
        (["B02@2023-4-14", "VALID@2023-4-14"], "'2023-4-14' is not a YYYY-MM-DD date"),
        (["B02@2023-02-30", "VALID@2023-02-30"], "not a valid calendar date"),
        (["B02@2023-05-01", "VALID@2023-05-01", "B02@2023-04-01", "VALID@2023-04-01"], "dates must increase"),
        (["B02@2023-04-01", "B02@2023-05-01", "VALID@2023-05-01", "VALID@2023-04-01"], "not date-major"),
        (["B02@2023-04-01", "B02@2023-04-01", "VALID@2023-04-01"], "appears twice at 2023-04-01"),
        (["B02@2023-04-01", "B03@2023-04-01"], "date 2023-04-01 has no validity band VALID@2023-04-01"),
        (
            [
                "B02@2023-04-01",
                "B03@2023-04-01",
                "VALID@2023-04-01",
                "B03@2023-05-01",
                "B02@2023-05-01",
                "VALID@2023-05-01",
            ],
            "date 2023-05-01 has bands B03, B02 but 2023-04-01 has B02, B03",
        ),
        (["VALID@2023-04-01"], "only validity bands"),
        (["@2023-04-01", "VALID@2023-04-01"], "no band name before '@'"),
    ],
)
def test_malformed_stacks_are_refused_with_the_band(names, words):
    with pytest.raises(StackLayoutError) as e:
        parse_stack(names)
    assert words in str(e.value) and "<band>@<YYYY-MM-DD>" in str(e.value)


def test_missing_band_at_date():
    lay = parse_stack(descriptions(["B04"], DATES[:1]))
    with pytest.raises(StackLayoutError, match="no band B08 at 2023-04-14"):
        lay.date_indices("2023-04-14", ["B04", "B08"])


def test_choose_dates_keeps_order_and_matches_doy():
    assert choose_dates([10, 40, 70, 100, 130], [40, 100]) == [1, 3]
    assert choose_dates([10, 40, 70], [10, 40, 70]) == [0, 1, 2]
    assert choose_dates([5, 200, 360], [1, 359]) == [0, 2]  # circular: 359 is closest to 360
