"""Pure parts of the accuracy tool (core/accuracy/tables.py): block mode, transforms, tables, CSV/HTML builders."""

import csv
import io

import numpy as np
import pytest

from satclassify_plugin.core.accuracy import tables as acc
from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.errors import SatClassifyError


def rows(text):
    """CSV text -> the row dicts _read_csv_rows returns (header first)."""
    r = list(csv.reader(io.StringIO(text)))
    header = [h.strip().lower() for h in r[0]]
    return [{"__header__": header}] + [
        {"__line__": str(i), **{h: (row[j].strip() if j < len(row) else "") for j, h in enumerate(header)}}
        for i, row in enumerate(r[1:], start=2)
    ]


def test_block_mode_hand_computed():
    a = np.array([[1, 1, 2, 2, 3, 3], [1, 2, 2, 2, -1, -1], [-1, -1, 4, 5, 7, 7], [-1, -1, 5, 4, 6, 6]])
    # blocks: [1,1,1,2] -> 1; [2,2,2,2] -> 2; [3,3,-1,-1] -> 3; all -1 -> -1; [4,5,5,4] tie -> 4; [7,7,6,6] tie -> 6
    assert acc.block_mode(a, 2).tolist() == [[1, 2, 3], [-1, 4, 6]]


def test_block_mode_partial_edge_blocks_and_k1():
    a = np.array([[1, 1, 1, 2, 2], [1, 3, 3, 2, 2], [3, 3, 3, 2, 9], [5, 5, 6, 6, 6]])
    # 3x3 blocks: [1,1,1,1,3,3,3,3,3] -> 3; [2,2,2,2,2,9] -> 2; [5,5,6] -> 5; [6,6] -> 6
    assert acc.block_mode(a, 3).tolist() == [[3, 2], [5, 6]]
    assert acc.block_mode(a, 1).tolist() == a.tolist()
    with pytest.raises(SatClassifyError, match=r"SCALE must be an integer >= 1 \(1 = compare pixel by pixel\), got 0"):
        acc.block_mode(a, 0)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "x", None])
def test_check_scale_rejects(bad):
    with pytest.raises(SatClassifyError, match="SCALE must be an integer >= 1"):
        acc.check_scale(bad)


def test_check_scale_and_level_accept():
    assert acc.check_scale(3) == 3 and acc.check_scale(2.0) == 2
    assert acc.check_level(None) is None and acc.check_level(2) == 2 and acc.check_level(3) is None
    with pytest.raises(SatClassifyError, match="CLC LEVEL must be 1 or 2"):
        acc.check_level(5)


def test_parse_ignore():
    assert acc.parse_ignore("0") == [0]
    assert acc.parse_ignore(" 255, 0 ;7") == [0, 7, 255]
    assert acc.parse_ignore("") == [] and acc.parse_ignore(None) == []
    with pytest.raises(SatClassifyError, match="'abc' is not a number"):
        acc.parse_ignore("0, abc")
    with pytest.raises(SatClassifyError, match="IGNORE values must be integers, '1.5' is not"):
        acc.parse_ignore("1.5")


def test_reclassification_rows():
    r = acc.reclassification_from_rows(
        rows("map,from,to\nclassified,1,10\nclassified,2,10\nboth,3,30\nreference,7,10\n")
    )
    assert r.classified == {1: 10, 2: 10, 3: 30}
    assert r.reference == {3: 30, 7: 10}


@pytest.mark.parametrize(
    "text,msg",
    [
        ("from,to\n1,2\n", "missing column(s) map; the first line must be the header 'map,from,to'"),
        ("map,from,to\nlabels,1,2\n", "line 2: map 'labels' must be classified, reference or both"),
        ("map,from,to\nclassified,1,x\n", "line 2: to 'x' is not an integer class value"),
        ("map,from,to\nclassified,1.5,2\n", "line 2: from '1.5' is not an integer class value"),
        ("map,from,to\nclassified,-1,2\n", "line 2: from -1 is out of range 0..65535"),
        ("map,from,to\nclassified,1,2\nboth,1,3\n", "line 3: classified value 1 is mapped twice (2 and 3)"),
        ("map,from,to\n", "has no rows"),
    ],
)
def test_reclassification_errors(text, msg):
    with pytest.raises(SatClassifyError) as e:
        acc.reclassification_from_rows(rows(text))
    assert msg in str(e.value)


def test_read_tables_from_files(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("# EuroSAT -> common\nMap;From;To\nclassified;4;1\n\nreference;10;1\n", encoding="utf-8")
    r = acc.read_reclassification(str(p))
    assert r.classified == {4: 1} and r.reference == {10: 1}
    n = tmp_path / "n.csv"
    n.write_text("value,name,color\n1,Water,#0000FF\n2,Built-up,200-0-0\n3,Other,\n", encoding="utf-8")
    assert acc.read_names(str(n)) == {1: ("Water", "#0000ff"), 2: ("Built-up", "#c80000"), 3: ("Other", None)}
    with pytest.raises(SatClassifyError, match="reclassify table '.*missing.csv' does not exist"):
        acc.read_reclassification(str(tmp_path / "missing.csv"))
    e = tmp_path / "empty.csv"
    e.write_text("\n", encoding="utf-8")
    with pytest.raises(SatClassifyError, match="is empty"):
        acc.read_names(str(e))
    b = tmp_path / "badcol.csv"
    b.write_text("value,name,color\n1,Water,blue\n", encoding="utf-8")
    with pytest.raises(SatClassifyError, match="line 2: 'blue' is not a colour"):
        acc.read_names(str(b))


def test_map_transform_ignore_reclass_and_counts():
    t = acc.MapTransform("classified", ignore=[0, 255], reclass={1: 1, 2: 1, 3: 2, 4: 0}, ignore_after=[0])
    raw = np.array([[0, 1, 2, 3], [4, 5, 255, 3]], dtype=np.uint8)
    out = t.apply(raw)
    assert out.tolist() == [[-1, 1, 1, 2], [-1, -1, -1, 2]]
    assert t.ignored == 2 and t.unmapped == 1 and t.unmapped_values == {5}
    # pixels outside `valid` are dropped without being counted
    t2 = acc.MapTransform("reference", ignore=[0])
    out2 = t2.apply(raw, valid=np.array([[False, True, True, True], [True, True, True, False]]))
    assert out2.tolist() == [[-1, 1, 2, 3], [4, 5, 255, -1]]
    assert t2.ignored == 0 and t2.unmapped == 0
    assert t.map_values([1, 2, 3, 4, 5]) == [1, 2]


def test_map_transform_rejects_bad_values():
    t = acc.MapTransform("classified", ignore=[0])
    with pytest.raises(
        SatClassifyError,
        match="the classified raster holds the value -5: class values must be in 0..65535; add it to IGNORE",
    ):
        t.apply(np.array([[1, -5]], dtype=np.int16))
    with pytest.raises(SatClassifyError, match="non-integer values"):
        t.apply(np.array([[1.0, 2.5]], dtype=np.float32))


def test_clc_level_transform_grid_codes_and_codes():
    # grid codes: 1 = 111 urban, 12 = 211 arable, 23 = 311 broad-leaved forest, 41 = 511 water courses
    g = acc.MapTransform("reference", [0], level=1, level_source="grid")
    assert g.apply(np.array([1, 12, 23, 41, 0, 47])).tolist() == [1, 2, 3, 5, -1, -1]
    assert g.unmapped == 1 and g.unmapped_values == {47}
    c = acc.MapTransform("reference", [0], level=2, level_source="code")
    l2 = {int(x.code): x.value for x in clc.classes(2)}
    assert c.apply(np.array([111, 112, 211, 311, 523, 300])).tolist() == [l2[11], l2[11], l2[21], l2[31], l2[52], -1]
    assert acc.detect_clc_source([1, 44], "classified") == "grid"
    assert acc.detect_clc_source([111, 523], "classified") == "code"
    # CLC no-data codes (grid 48 .. 255, codes 990 .. 999) do not hide the kind of the map
    assert acc.detect_clc_source([1, 12, 48, 128, 255], "reference") == "grid"
    assert acc.detect_clc_source([111, 211, 990, 999], "reference") == "code"
    t = acc.MapTransform("reference", [0], level=1, level_source="grid")
    assert t.apply(np.array([12, 48, 255])).tolist() == [2, -1, -1] and t.unmapped == 2
    with pytest.raises(
        SatClassifyError,
        match="CLC LEVEL needs level-3 CLC values in the classified map: grid codes "
        r"1..44 or codes 111..523, but it holds values 3..200",
    ):
        acc.detect_clc_source([3, 200], "classified")


def test_reclass_then_level():
    # EuroSAT-like 1 -> CLC grid code 12 (arable), 2 -> 23 (forest), then level 1
    t = acc.MapTransform("classified", [0], reclass={1: 12, 2: 23}, level=1, level_source="grid")
    assert t.apply(np.array([1, 2, 0])).tolist() == [2, 3, -1]


def _metrics():
    from satclassify_plugin.core.contract.metrics import compute_metrics

    m = compute_metrics(np.array([[4, 1], [0, 5]]), [1, 7], {1: "Water <lake>", 7: "Forest"})
    for c, col in zip(m["classes"], ["#0000ff", "#00a000"]):
        c["color"] = col
    m["inputs"] = {"classified": "c.tif", "scale": 1}
    m["excluded"] = {"masked_out": 3}
    return m


def test_matrix_csv_has_headers_and_totals():
    text = acc.matrix_csv(_metrics())
    assert text.splitlines() == [
        "reference_value,reference_name,1 Water <lake>,7 Forest,total",
        "1,Water <lake>,4,1,5",
        "7,Forest,0,5,5",
        "total,,4,6,10",
    ]


def test_heatmap_rgb_shades_rows_and_colour_strips():
    img = acc.heatmap_rgb(np.array([[4, 0], [1, 3]]), ["#ff0000", "#00ff00"], cell=10)
    assert img.shape == (3, 4 + 20, 4 + 20)
    # cell (0,0) = 100 % of row 0 -> dark blue; cell (0,1) = 0 % -> white; cell (1,0) = 25 %
    assert img[:, 4 + 5, 4 + 5].tolist() == [8, 48, 107]
    assert img[:, 4 + 5, 14 + 5].tolist() == [255, 255, 255]
    assert img[:, 14 + 5, 4 + 5].tolist() == [round(255 - 247 * 0.25), round(255 - 207 * 0.25), round(255 - 148 * 0.25)]
    assert img[:, 0, 4 + 5].tolist() == [255, 0, 0] and img[:, 14 + 5, 0].tolist() == [0, 255, 0]


def test_report_html_contents():
    page = acc.report_html(_metrics(), b"\x89PNG fake", "r_matrix.png")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "Water &lt;lake&gt;" in page and "Water <lake>" not in page
    assert "90.0&nbsp;%" in page  # OA 9/10
    assert "data:image/png;base64,iVBORyBmYWtl" in page and "r_matrix.png" in page
    assert "class='sw' style='background:#0000ff'" in page and "masked out" in page
    assert "user's acc." in page and "producer's acc." in page
    assert page.count("<td class='d'") == 2  # diagonal cells framed
