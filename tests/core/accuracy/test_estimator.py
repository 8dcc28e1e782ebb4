"""Stratified estimator, sample size and allocation (core/accuracy/estimator.py), pure numpy.

Checked three ways: against the worked example published in Olofsson et al. (2014), "Good practices for
estimating area and assessing accuracy of land change", Remote Sensing of Environment 148, 42-57, section 5
(Table 8 error matrix; estimates on p. 54); against the formulas written out again here with plain loops; and by
simulation (the estimator is unbiased and its standard errors match the spread over repeated samples).
"""

import math

import numpy as np
import pytest

from satclassify_plugin.core.accuracy import estimator as est
from satclassify_plugin.core.contract.errors import SatClassifyError

# Olofsson et al. (2014), section 5, Table 8: rows = map, columns = reference; classes deforestation, forest gain,
# stable forest, stable non-forest; mapped areas in 30 m Landsat pixels (0.09 ha).
PAPER_COUNTS = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]
PAPER_PIXELS = [200000, 150000, 3200000, 6450000]


def test_olofsson_2014_worked_example():
    r = est.stratified_estimates(PAPER_COUNTS, PAPER_PIXELS, [1, 2, 3, 4], pixel_area_ha=0.09)
    c = {x["value"]: x for x in r["classes"]}
    # the paper's rounded results (p. 54): areas in ha with 95 % CI
    for v, area, ci in ((1, 21158, 6158), (2, 11686, 3756), (3, 285770, 15510), (4, 581386, 16282)):
        assert round(c[v]["estimated_area_ha"]) == area and round(c[v]["ci95_ha"]) == ci
    # user's and producer's accuracies with their 95 % CI, overall accuracy 0.95 +- 0.02
    for v, ua, ua_ci, pa, pa_ci in (
        (1, 0.88, 0.07, 0.75, 0.21),
        (2, 0.73, 0.10, 0.85, 0.25),
        (3, 0.93, 0.04, 0.93, 0.03),
        (4, 0.96, 0.02, 0.96, 0.02),
    ):
        assert (round(c[v]["users_accuracy"], 2), round(c[v]["users_accuracy_ci95"], 2)) == (ua, ua_ci)
        assert (round(c[v]["producers_accuracy"], 2), round(c[v]["producers_accuracy_ci95"], 2)) == (pa, pa_ci)
    assert round(r["overall_accuracy"], 2) == 0.95 and round(r["overall_accuracy_ci95"], 2) == 0.02
    # the same example to more digits (the paper's own intermediate values: p_.1 = 0.0235, S(A_1) = 3,142 ha)
    assert c[1]["area_proportion"] == pytest.approx(0.0235086, abs=1e-7)
    assert c[1]["estimated_area_se_ha"] == pytest.approx(3141.65, abs=0.01)
    assert r["total_area_ha"] == pytest.approx(900000.0)
    assert c[1]["mapped_area_ha"] == pytest.approx(18000.0) and c[1]["weight"] == pytest.approx(0.02)


def test_olofsson_2013_example_1():
    """Olofsson, Foody, Stehman, Woodcock (2013), Making better use of accuracy data in land change studies,
    Remote Sensing of Environment 129, 122-131, Example 1: strata of 22,353 / 1,122,543 / 610,228 pixels
    (deforestation, forest, non-forest), 100 / 300 / 100 points; areas in pixels."""
    r = est.stratified_estimates([[97, 0, 3], [3, 279, 18], [2, 1, 97]], [22353, 1122543, 610228], [1, 2, 3])
    c = r["classes"]
    assert round(c[0]["area_proportion"], 4) == 0.0257  # eq. 9 of that paper
    assert c[0]["estimated_area_ha"] == pytest.approx(45112.4, abs=0.05)  # 45,112 pixels
    assert c[0]["estimated_area_se_ha"] == pytest.approx(10751, abs=1)  # S(A_1) in pixels
    assert c[0]["ci95_ha"] == pytest.approx(21072, abs=2)  # +- 21,072 pixels
    assert [round(x["users_accuracy"], 2) for x in c] == [0.97, 0.93, 0.97]
    assert [round(x["producers_accuracy"], 2) for x in c] == [0.48, 0.99, 0.90]
    assert round(r["overall_accuracy"], 3) == 0.944


def test_olofsson_2014_sample_size():
    # section 5.1: expected user's accuracies 0.7, 0.6, 0.9, 0.95 and a target S(O) of 0.01 give n = 641 (eq. 13)
    w = np.array(PAPER_PIXELS) / sum(PAPER_PIXELS)
    assert est.sample_size_for_se(w, [0.7, 0.6, 0.9, 0.95], 0.01) == 641
    by_hand = (sum(wi * math.sqrt(u * (1 - u)) for wi, u in zip(w, [0.7, 0.6, 0.9, 0.95])) / 0.01) ** 2
    assert math.ceil(by_hand) == 641
    assert est.sample_size_for_se([1.0], [0.8], 0.02) == 400  # (0.4 / 0.02)^2, exact: no extra point
    for bad in (0, 0.6):
        with pytest.raises(SatClassifyError, match="target standard error of overall accuracy must be between 0"):
            est.sample_size_for_se(w, [0.8] * 4, bad)
    with pytest.raises(SatClassifyError, match="expected user's accuracies must be between 0 and 1"):
        est.sample_size_for_se(w, [0.8, 1.0, 0.8, 0.8], 0.01)


def _by_hand(n, big_n):
    """The paper's equations 1-11 written out with plain Python loops (independent of the implementation)."""
    k = len(n)
    ni = [sum(row) for row in n]
    total = sum(big_n)
    w = [x / total for x in big_n]
    p = [[w[i] * n[i][j] / ni[i] if ni[i] else 0.0 for j in range(k)] for i in range(k)]
    oa = sum(p[j][j] for j in range(k))
    v_oa = sum(w[i] ** 2 * (n[i][i] / ni[i]) * (1 - n[i][i] / ni[i]) / (ni[i] - 1) for i in range(k) if ni[i] > 1)
    out = []
    for j in range(k):
        pj_ref = sum(p[i][j] for i in range(k))
        pj_map = sum(p[j])
        ua = p[j][j] / pj_map if pj_map else None
        pa = p[j][j] / pj_ref if pj_ref else None
        v_ua = ua * (1 - ua) / (ni[j] - 1) if ua is not None and ni[j] > 1 else None
        n_ref = sum(big_n[i] * n[i][j] / ni[i] for i in range(k) if ni[i])
        v_pa = None
        if pa is not None:
            a = big_n[j] ** 2 * (1 - pa) ** 2 * ua * (1 - ua) / (ni[j] - 1) if ni[j] > 1 else 0.0
            b = sum(
                big_n[i] ** 2 * (n[i][j] / ni[i]) * (1 - n[i][j] / ni[i]) / (ni[i] - 1)
                for i in range(k)
                if i != j and ni[i] > 1
            )
            v_pa = (a + pa**2 * b) / n_ref**2
        s_p = math.sqrt(
            sum(w[i] ** 2 * (n[i][j] / ni[i]) * (1 - n[i][j] / ni[i]) / (ni[i] - 1) for i in range(k) if ni[i] > 1)
        )
        out.append((pj_ref, s_p, ua, v_ua, pa, v_pa))
    return oa, v_oa, out, p


def test_estimator_matches_the_formulas_written_out():
    # class 3 occurs only in the reference (no mapped pixel, no stratum): its area is still estimated
    n = [[40, 5, 3], [6, 50, 2], [0, 0, 0]]
    big_n = [30000, 90000, 0]
    r = est.stratified_estimates(n, big_n, [1, 2, 3], pixel_area_ha=0.01)
    oa, v_oa, per, p = _by_hand(n, big_n)
    assert r["overall_accuracy"] == pytest.approx(oa) and r["overall_accuracy_se"] == pytest.approx(math.sqrt(v_oa))
    assert np.ravel(r["area_proportion_matrix"]) == pytest.approx(np.ravel(p))
    for c, (pj, s_p, ua, v_ua, pa, v_pa) in zip(r["classes"], per):
        assert c["area_proportion"] == pytest.approx(pj)
        assert c["estimated_area_ha"] == pytest.approx(pj * 120000 * 0.01)
        assert c["ci95_ha"] == pytest.approx(1.96 * s_p * 1200.0)
        if ua is None:
            assert c["users_accuracy"] is None and c["users_accuracy_ci95"] is None
        else:
            assert c["users_accuracy"] == pytest.approx(ua)
            assert c["users_accuracy_ci95"] == pytest.approx(1.96 * math.sqrt(v_ua))
        assert c["producers_accuracy"] == pytest.approx(pa)
        assert c["producers_accuracy_ci95"] == pytest.approx(1.96 * math.sqrt(v_pa))
    assert r["classes"][2]["producers_accuracy"] == 0.0 and r["classes"][2]["mapped_area_ha"] == 0.0
    assert sum(c["area_proportion"] for c in r["classes"]) == pytest.approx(1.0)


def test_estimator_is_unbiased_and_its_standard_errors_match_repeated_samples():
    """A known population (map x reference per pixel), many stratified samples: the mean of the estimates is
    the true area / accuracy and their spread is the estimated standard error."""
    rng = np.random.default_rng(7)
    big_n = np.array([2000, 8000, 30000])
    # true reference composition of each map stratum
    comp = np.array([[0.7, 0.2, 0.1], [0.05, 0.85, 0.1], [0.01, 0.04, 0.95]])
    pop = [rng.choice(3, size=nn, p=c) for nn, c in zip(big_n, comp)]
    true_area = sum(np.bincount(pp, minlength=3) for pp in pop) / big_n.sum()
    true_oa = sum(int((pp == i).sum()) for i, pp in enumerate(pop)) / big_n.sum()
    n_i = [60, 80, 100]
    areas, oas, ses, oa_ses = [], [], [], []
    for _ in range(1500):
        m = np.zeros((3, 3), int)
        for i, (pp, k) in enumerate(zip(pop, n_i)):
            m[i] = np.bincount(rng.choice(pp, size=k, replace=False), minlength=3)
        r = est.stratified_estimates(m, big_n, [1, 2, 3])
        areas.append([c["area_proportion"] for c in r["classes"]])
        ses.append([c["area_proportion_se"] for c in r["classes"]])
        oas.append(r["overall_accuracy"])
        oa_ses.append(r["overall_accuracy_se"])
    areas, ses = np.array(areas), np.array(ses)
    assert areas.mean(axis=0) == pytest.approx(true_area, abs=0.003)
    assert np.mean(oas) == pytest.approx(true_oa, abs=0.003)
    # sampling without replacement from finite strata: the variance formula ignores the (small) finite population
    # correction, so it is slightly conservative
    assert areas.std(axis=0) == pytest.approx(ses.mean(axis=0), rel=0.12)
    assert np.std(oas) == pytest.approx(np.mean(oa_ses), rel=0.12)


def test_stratum_without_a_point_is_refused_and_single_point_strata_are_listed():
    with pytest.raises(SatClassifyError, match=r"map class\(es\) 2 cover part of the map but hold no usable sample"):
        est.stratified_estimates([[5, 1], [0, 0]], [100, 50], [1, 2])
    r = est.stratified_estimates([[5, 1], [0, 1]], [100, 50], [1, 2])
    assert r["single_point_strata"] == [2]
    assert r["classes"][1]["users_accuracy"] == 1.0 and r["classes"][1]["users_accuracy_se"] == 0.0


def test_allocation_proportional_with_a_minimum():
    w = np.array(PAPER_PIXELS) / sum(PAPER_PIXELS)
    big = [10**9] * 4
    # Olofsson et al. (2014) section 5.1: 75 points in each change class, the rest proportional to the area
    n = est.allocate(641, w, big, minimum=75)
    assert n[:2] == [75, 75] and sum(n) == 641
    rest = 641 - 150
    assert n[2:] == [round(rest * w[2] / (w[2] + w[3])), round(rest * w[3] / (w[2] + w[3]))]
    assert est.allocate(1000, w, big) == [20, 15, 320, 645]  # no minimum: plain proportional
    assert est.allocate(100, w, big, rule="equal") == [25, 25, 25, 25]
    # the minimums need more than the total: every class gets the minimum
    assert est.allocate(100, w, big, minimum=40) == [40, 40, 40, 40]
    # never more points than pixels in a stratum; the others share the rest
    n = est.allocate(300, [0.1, 0.2, 0.7], [12, 10**6, 10**6], minimum=50)
    assert n == [12, 64, 224]  # 288 left, shared 2 : 7
    with pytest.raises(SatClassifyError, match="at least 1"):
        est.allocate(0, w, big)
    with pytest.raises(SatClassifyError, match="proportional or equal"):
        est.allocate(10, w, big, rule="neyman")


def test_strata_table():
    t = est.strata_table([1, 4], [300, 100], 0.01, {1: "Water"})
    assert t == [
        {"value": 1, "name": "Water", "pixels": 300, "area_ha": 3.0, "weight": 0.75},
        {"value": 4, "name": "class 4", "pixels": 100, "area_ha": 1.0, "weight": 0.25},
    ]
