"""Planning steps of the accuracy and change tools (core/accuracy/plan.py), without rasters: the options checked
when made, the class table, the point tally, the estimator glue and the from-to categories."""

import numpy as np
import pytest

from satclassify_plugin.core.accuracy import estimator, plan
from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.errors import SatClassifyError


def test_map_options_read_and_check(tmp_path):
    o = plan.MapOptions.read()
    assert (o.ignore_list, o.level, o.level_maps, o.names_table) == ([0], None, "both", None)
    assert not o.recl.classified and not o.recl.reference
    assert o.inputs() == {"reclassify": None, "names": None, "level": None, "level_maps": None}
    with pytest.raises(SatClassifyError, match=r"^LEVEL maps must be both, classified or reference, not 'x'$"):
        plan.MapOptions.read(level_maps="x")
    with pytest.raises(SatClassifyError, match=r"^CLC LEVEL must be 1 or 2 \(or none\), got 4$"):
        plan.MapOptions.read(level=4, level_maps="x")  # LEVEL is checked first, as before the split
    (tmp_path / "r.csv").write_text("map,from,to\nclassified,4,3\n")
    (tmp_path / "n.csv").write_text("value,name,color\n3,Three,#010203\n")
    o = plan.MapOptions.read(
        ignore="0, 255",
        reclassify=str(tmp_path / "r.csv"),
        names=str(tmp_path / "n.csv"),
        level="2",
        level_maps="reference",
    )
    assert o.ignore_list == [0, 255] and o.level == 2 and o.recl.classified == {4: 3}
    assert o.names_table == {3: ("Three", "#010203")}
    assert o.level_for("classified") is None and o.level_for("reference") == 2
    assert o.transformed("classified") and o.transformed("reference")  # reclassified / aggregated
    assert o.inputs() == {
        "reclassify": str(tmp_path / "r.csv"),
        "names": str(tmp_path / "n.csv"),
        "level": 2,
        "level_maps": "reference",
    }


def test_map_options_transform_detects_clc_codes_and_ignores_nodata():
    o = plan.MapOptions.read(ignore="0", level=1)
    t = o.transform("classified", 255, [0, 111, 211, 255])  # codes 111..523 once 0 and nodata are left out
    assert (t.level, t.level_source, t.ignore) == (1, "code", [0, 255])
    assert t.map_values([111, 211]) == [1, 2]
    g = o.transform("reference", None, [1, 12, 23])
    assert (g.level_source, g.map_values([1, 12, 23])) == ("grid", [1, 2, 3])
    plain = plan.MapOptions.read(ignore="").transform("classified", None, [1, 2])
    assert (plain.level, plain.ignore, plain.map_values([1, 2])) == (None, [], [1, 2])


def test_class_table_precedence():
    names = {1: ("From names", None)}
    cats = {1: ("cat one", "#111111"), 2: ("cat two", None), 7: ("seven", "#777777")}
    other = {2: ("other two", "#222222")}
    t = plan.class_table([1, 2, 7, 9], names, None, [cats, other])
    assert t == [
        {"value": 1, "name": "From names", "color": "#111111"},  # colour from the next source
        {"value": 2, "name": "cat two", "color": "#222222"},
        {"value": 7, "name": "seven", "color": "#777777"},
        {"value": 9, "name": "class 9", "color": clc.default_palette(9)},
    ]
    lv1 = {c.value: c for c in clc.classes(1)}
    t = plan.class_table([1, 0], None, 1, [cats])
    assert t[0] == {"value": 1, "name": lv1[1].name, "color": lv1[1].color}  # the CLC table before categories
    assert t[1] == {"value": 0, "name": "class 0", "color": clc.default_palette(1)}


def test_compared_values_and_known_reference_classes():
    o = plan.MapOptions.read(ignore="0")
    present = {"classified": np.array([0, 1, 2]), "reference": np.array([2, 5])}
    tr = {w: o.transform(w, None, present[w].tolist()) for w in present}
    assert plan.compared_values(present, tr) == [1, 2, 5]
    cats = {8: ("eight", None)}
    assert plan.known_reference_classes([1, 2], o, cats) == {1, 2, 8}
    lv = plan.MapOptions.read(level=1)  # the map is aggregated: its categories say nothing about the values
    assert plan.known_reference_classes([1], lv, cats) == {c.value for c in clc.classes(1)}


def test_reference_class_reasons():
    o = plan.MapOptions.read(ignore="0, 9")
    tr = o.transform("reference", None, [1, 2, 3])
    known = {1, 2}
    assert plan.reference_class(None, "", tr, o.ignore_list, known) == ("empty_reference", "", -1)
    assert plan.reference_class("unknown", "abc", tr, o.ignore_list, known) == ("unknown_reference", " ('abc')", -1)
    assert plan.reference_class(-3, -3, tr, o.ignore_list, known) == ("unknown_reference", " (-3)", -1)
    assert plan.reference_class(9, 9, tr, o.ignore_list, known) == ("ignored_reference", " (9)", -1)
    assert plan.reference_class(3, 3, tr, o.ignore_list, known) == ("unknown_reference", " (3)", -1)
    assert plan.reference_class(2, "2", tr, o.ignore_list, known) == (None, "", 2)
    lv = plan.MapOptions.read(level=1)
    t1 = lv.transform("reference", None, [1, 23])
    assert plan.reference_class(23, 23, t1, lv.ignore_list, {1, 2, 3}) == (None, "", 3)  # grid 23 -> level 1: 3


def test_sample_tally_examples_and_warnings():
    t = plan.SampleTally()
    for i in range(12):
        t.skip("outside_map", {"id": i})
    t.skip("unknown_reference", {}, " ('x')")
    t.stratum_mismatch({"id": 5}, 2, 3)
    assert t.skipped["outside_map"] == 12 and len(t.examples["outside_map"]) == 10
    assert t.warnings() == [
        "WARNING: 12 point(s) left out, outside map: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ...",
        "WARNING: 1 point(s) left out, unknown reference: ? ('x')",
        "WARNING: 1 point(s) have a 'stratum' attribute that disagrees with the map under them (the map decides the "
        "stratum; was the sample drawn from another map?): 5 (stratum 2, map 3)",
    ]
    assert plan.SampleTally().warnings() == []


def test_error_matrix_and_sample_metrics():
    pairs = [(1, 1), (1, 1), (1, 2), (2, 2), (2, 2), (2, 1), (2, 2)]
    values, index, n_ij = plan.error_matrix(pairs, [1, 2, 4])  # stratum 4 has no point
    assert values == [1, 2, 4] and index == {1: 0, 2: 1, 4: 2}
    assert n_ij.tolist() == [[2, 1, 0], [1, 3, 0], [0, 0, 0]]  # rows = map, columns = reference
    est = estimator.stratified_estimates(n_ij[:2, :2], [600, 400], [1, 2], 0.01)
    table = [{"value": 1, "name": "a", "color": "#000001"}, {"value": 2, "name": "b", "color": "#000002"}]
    m = plan.sample_metrics(n_ij[:2, :2], [1, 2], {1: 0, 2: 1}, est, table)
    assert m["confusion_matrix"] == [[2, 1], [1, 3]]  # rows = reference
    assert m["pixels"] == 7
    assert [(c["value"], c["color"], c["support"], c["predicted"]) for c in m["classes"]] == [
        (1, "#000001", 3, 3),
        (2, "#000002", 4, 4),
    ]
    # OA = sum_i W_i n_ii / n_i. = 0.6 * 2/3 + 0.4 * 3/4 (Olofsson et al. 2014, eq. 1 with W = mapped shares)
    assert m["overall_accuracy"] == pytest.approx(0.6 * 2 / 3 + 0.4 * 3 / 4)
    assert m["overall_accuracy_ci95"] == est["overall_accuracy_ci95"] > 0
    assert m["area_proportion_matrix_orientation"] == "rows = map (classified), columns = reference"
    a = {e["value"]: e for e in m["area_estimates"]}
    assert (a[1]["mapped_pixels"], a[1]["sample_points"], a[1]["reference_points"], a[1]["name"]) == (600, 3, 3, "a")
    assert a[1]["estimated_area_ha"] == pytest.approx((0.6 * 2 / 3 + 0.4 * 1 / 4) * 1000 * 0.01)


def test_change_options_checked_in_order():
    o = plan.ChangeOptions.read()
    assert (o.mmu_ha, o.threshold, o.ignore_list, o.names_table) == (5.0, 80.0, [0], None)
    for kw, msg in (
        ({"mmu_ha": -1, "threshold": 200}, "the minimum mapping unit must be >= 0 ha (0 = every pixel), got -1"),
        ({"mmu_ha": float("nan")}, "the minimum mapping unit must be >= 0 ha (0 = every pixel), got nan"),
        ({"threshold": 101, "candidates": True}, "the confidence threshold is in percent (0-100), got 101"),
        (
            {"candidates": True, "ignore": "x"},
            "map update candidates need a CONFIDENCE raster (e.g. the "
            "CONFIDENCE output of satclassify:classify for the second "
            "map)",
        ),
    ):
        with pytest.raises(SatClassifyError) as e:
            plan.ChangeOptions.read(**kw)
        assert str(e.value) == msg
    assert plan.ChangeOptions.read(candidates=True, confidence=True, ignore="").ignore_list == []
    # 5 ha of 0.01 ha pixels = 500 pixels; 0 = no sieve; a part pixel rounds up
    assert plan.ChangeOptions.read(mmu_ha=5).mmu_pixels(0.01) == 500
    assert plan.ChangeOptions.read(mmu_ha=0).mmu_pixels(0.01) == 1
    assert plan.ChangeOptions.read(mmu_ha=0.025).mmu_pixels(0.01) == 3


def test_change_categories():
    first = [{"value": 1, "name": "Forest", "color": "#000000"}, {"value": 2, "name": "Crop", "color": "#ff0000"}]
    second = [{"value": 1, "name": "Forest", "color": "#000000"}, {"value": 3, "name": "Urban", "color": "#0000ff"}]
    pairs = np.array([5, 0, 2, 3])  # code = first index * 2 + second index: 1->1, 2->1, 2->3
    lut, cats = plan.change_categories(pairs, first, second, 0.5)
    assert lut.tolist() == [1, 0, 2, 3]
    assert [
        (c["from"], c["to"], c["name"], c["changed"], c["color"], c["pixels"], c["area_ha"]) for c in cats.values()
    ] == [
        (1, 1, "Forest -> Forest", False, "#8c8c8c", 5, 2.5),  # unchanged: a paler shade (x + (255 - x) * 0.55)
        (2, 1, "Crop -> Forest", True, "#000000", 2, 1.0),  # changed: the colour of the class it became
        (2, 3, "Crop -> Urban", True, "#0000ff", 3, 1.5),
    ]
    assert plan.lighter("#ff0000") == "#ff8c8c"
