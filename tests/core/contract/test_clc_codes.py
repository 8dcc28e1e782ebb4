"""Issue 25 item 10: a fractional code is no code (211.7 was truncated to 211); a mapping table giving one code
twice is refused naming both lines (the later line silently won)."""

import pytest

from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.errors import SatClassifyError


@pytest.mark.parametrize("raw", [211.7, "211.7", " 312.5 ", 211.000001, float("inf"), "-inf", "1e400"])
def test_fractional_and_infinite_codes_are_not_codes(raw):
    with pytest.raises(SatClassifyError, match="is not a CLC code"):
        clc.parse_code(raw)


@pytest.mark.parametrize(
    "raw,expected", [(211.0, 211), ("211.0", 211), ("2.11e2", 211), ("0311", 311), ("nan", None), (999.0, None)]
)
def test_whole_numbers_in_any_spelling_are_codes(raw, expected):
    assert clc.parse_code(raw) == expected


def test_a_code_twice_in_a_mapping_table_is_refused_naming_both_lines():
    rows = [
        ["code", "value", "name"],
        ["2", "1", "Farmland"],
        ["211", "2", "Arable"],
        ["3", "3", "Forest"],
        ["211", "4", "Rice"],
    ]
    with pytest.raises(SatClassifyError) as e:
        clc.mapping_from_rows(rows)
    assert str(e.value).startswith(
        "mapping table lines 3 and 5 both map code 211 (to value 2 and 4): each code may appear once"
    )
    # the same prefix at another level is no duplicate: the most specific code wins
    mapping, _ = clc.mapping_from_rows(rows[:4])
    assert mapping[211] == 2 and mapping[212] == 1
