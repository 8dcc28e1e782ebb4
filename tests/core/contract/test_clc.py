import pytest

from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.errors import SatClassifyError


def test_legend_has_44_level3_classes_with_grid_codes_1_to_44():
    entries = clc.legend()
    assert len(entries) == 44
    assert [e.grid_code for e in entries] == list(range(1, 45))
    assert entries[0].code == 111 and entries[-1].code == 523
    assert entries[0].color == "#e6004d"


def test_level_sizes_match_the_nomenclature():
    assert len(clc.classes(1)) == 5
    assert len(clc.classes(2)) == 15
    assert len(clc.classes(3)) == 44


def test_level_values_and_names():
    l2 = {c.code: c for c in clc.classes(2)}
    assert l2["21"].name == "Arable land" and l2["21"].value == 5
    assert l2["11"].value == 1 and l2["52"].value == 15
    l1 = {c.code: c for c in clc.classes(1)}
    assert l1["3"].name.startswith("Forest")
    assert l1["3"].value == 3
    c2v = clc.code_to_value(2)
    assert c2v[211] == c2v[213] == 5
    assert clc.code_to_value(3)[211] == 12
    assert clc.code_to_value(1)[523] == 5


def test_lookup_tables_from_codes_and_grid_codes():
    lut = clc.lookup_table(1, "code")
    assert lut[311] == 3 and lut[112] == 1 and lut[999] == 0 and lut[0] == 0
    grid = clc.lookup_table(3, "grid")
    assert grid[12] == 12 and grid[48] == 0 and grid[255] == 0
    assert clc.lookup_table(2, "grid")[23] == clc.code_to_value(2)[311]


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("211", 211),
        (211, 211),
        (211.0, 211),
        (" 312 ", 312),
        ("", None),
        (None, None),
        ("999", None),
        (990, None),
        (float("nan"), None),
    ],
)
def test_parse_code(raw, expected):
    assert clc.parse_code(raw) == expected


def test_parse_code_rejects_text():
    with pytest.raises(SatClassifyError, match="not a CLC code"):
        clc.parse_code("forest")


def test_mapping_table_most_specific_prefix_wins():
    rows = [
        ["code", "value", "name", "color"],
        ["5", "1", "Water", "#0000ff"],
        ["1", "2", "Built-up", "255-0-0"],
        ["2", "3", "Other"],
        ["3", "3", "Other"],
        ["4", "3", "Other"],
        ["411", "1", "Water"],
    ]
    mapping, table = clc.mapping_from_rows(rows)
    assert mapping[512] == 1 and mapping[111] == 2 and mapping[211] == 3 and mapping[411] == 1 and mapping[412] == 3
    assert [c.value for c in table] == [1, 2, 3]
    assert table[1].color == "#ff0000" and table[0].color == "#0000ff"
    assert table[2].color.startswith("#")


@pytest.mark.parametrize(
    "rows,msg",
    [
        ([["211", "x", "A"]], "not an integer"),
        ([["211", "0", "A"]], "out of range"),
        ([["21a", "1", "A"]], "not a CLC code"),
        ([["211", "1"]], "expected"),
        ([["211", "1", "A", "blue"]], "not a colour"),
        ([], "no rows"),
    ],
)
def test_mapping_table_errors(rows, msg):
    with pytest.raises(SatClassifyError, match=msg):
        clc.mapping_from_rows(rows)
