"""core.labels.classtable: own labels' class tables, given (CSV / table rows) or derived from the field's codes."""

import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.labels.classtable import (
    class_color,
    code_key,
    read_table_csv,
    table_from_codes,
    table_from_rows,
)


def test_code_keys_of_text_and_number_fields():
    assert code_key(" BTH ") == "BTH" and code_key("0101") == "0101"  # text: stripped, leading zeros kept
    assert code_key(211) == code_key(211.0) == "211" and code_key(1.5) == "1.5"
    assert code_key("0211", numeric=True) == code_key("211.0", numeric=True) == "211"  # a table's text, number field
    assert code_key(None) is None and code_key("  ") is None and code_key(float("nan")) is None


def test_derived_table_is_sorted_numbered_and_stable():
    t = table_from_codes(["WWH", "MAI", None, "GRA", "MAI", ""])
    assert [(c.value, c.code, c.name) for c in t.classes] == [(1, "GRA", "GRA"), (2, "MAI", "MAI"), (3, "WWH", "WWH")]
    assert t.derived and [c.color for c in t.classes] == [class_color(v) for v in (1, 2, 3)]
    assert table_from_codes(["MAI", "WWH", "GRA"]).classes == t.classes  # the same codes, the same table
    n = table_from_codes([1100, 300, 41, 300.0], numeric=True)  # numbers sort as numbers, not as text
    assert [c.code for c in n.classes] == ["41", "300", "1100"]
    assert n.value_of(300) == 2 and n.value_of(None) == 0 and n.value_of(7) == -1
    assert len({class_color(v) for v in range(1, 41)}) == 40


def test_derived_table_limits():
    with pytest.raises(SatClassifyError, match="holds no code"):
        table_from_codes([None, " "])
    with pytest.raises(SatClassifyError, match="256 distinct codes, more than the 255"):
        table_from_codes([str(i) for i in range(256)])


def test_given_rows_with_values_names_colours_and_a_mapping():
    rows = [
        {"Code": "WWH", "Value": "3", "Name": "Winter wheat", "Colour": "#F5DEB3"},
        {"Code": "SWH", "Value": "3", "Name": "Spring wheat"},  # same class: a mapping, the first row names it
        {"Code": "MAI", "Value": 7, "Name": "Maize", "color": "255-200-0"},
        {"Code": "GRA", "Value": 9},
    ]
    t = table_from_rows(rows)
    assert [(c.value, c.code, c.name, c.color) for c in t.classes] == [
        (3, "WWH;SWH", "Winter wheat", "#f5deb3"),
        (7, "MAI", "Maize", "#ffc800"),
        (9, "GRA", "GRA", class_color(9)),
    ]
    assert t.value_of("SWH") == 3 and t.value_of(" MAI") == 7 and t.value_of("OAT") == -1
    assert t.manifest_entry()["codes"] == {"3": ["WWH", "SWH"], "7": ["MAI"], "9": ["GRA"]}
    # without values: 1, 2, ... in row order
    t = table_from_rows([{"code": "b"}, {"code": "a"}])
    assert [(c.value, c.code) for c in t.classes] == [(1, "b"), (2, "a")]


@pytest.mark.parametrize(
    "rows,msg",
    [
        ([{"code": "A", "value": 1}, {"code": "A", "value": 2}], "rows 1 and 2 both hold code A"),
        ([{"code": "A", "value": 1}, {"code": "B", "value": ""}], "give a value in every row or in none"),
        ([{"code": "A", "value": 0}], "value '0' is not a whole number 1..255"),
        ([{"code": "A", "value": "2.5"}], "value '2.5' is not a whole number"),
        ([{"code": "A", "colour": "green"}], "'green' is not a colour"),
        ([{"class_code": "A"}], "has no 'code' column"),
        ([], "has no rows"),
    ],
)
def test_bad_given_tables_name_the_problem(rows, msg):
    with pytest.raises(SatClassifyError, match=msg):
        table_from_rows(rows)


def test_csv_tables(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("code;value;name;colour\n0211;1;Wheat;#ff0000\n311;2;Forest;\n", encoding="utf-8")
    t = read_table_csv(str(p), numeric=True)  # an integer field: "0211" is 211
    assert t.value_of(211) == 1 and t.value_of(311.0) == 2 and t.classes[0].name == "Wheat"
    t = read_table_csv(str(p), numeric=False)  # a text field: "0211" is not "211"
    assert t.value_of("211") == -1 and t.value_of("0211") == 1
    bad = tmp_path / "b.csv"
    bad.write_text("211,1,Wheat\n", encoding="utf-8")
    with pytest.raises(SatClassifyError, match="no header row with a 'code' column"):
        read_table_csv(str(bad))
    with pytest.raises(SatClassifyError, match="does not exist"):
        read_table_csv(str(tmp_path / "nope.csv"))
