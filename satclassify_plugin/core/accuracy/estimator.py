"""Good-practice accuracy and area estimation from a stratified random sample (pure numpy, no osgeo).

Olofsson, P., Foody, G.M., Herold, M., Stehman, S.V., Woodcock, C.E., Wulder, M.A. (2014). Good practices for
estimating area and assessing accuracy of land change. Remote Sensing of Environment 148, 42-57.

The strata are the map classes; ``counts[i][j]`` = n_ij is the number of sample points in map stratum i whose
reference class is j (rows = map, columns = reference, as in the paper), and ``strata_pixels[i]`` the mapped
number of pixels of stratum i. Equation numbers below are the paper's:

* (4)  p_ij = W_i n_ij / n_i.                  estimated area proportion of cell (i, j), W_i = mapped share
* (1)  O = sum_j p_jj                          overall accuracy
* (2)  U_i = p_ii / p_i.  (= n_ii / n_i.)      user's accuracy of map class i
* (3)  P_j = p_jj / p_.j                       producer's accuracy of reference class j
* (5)  V(O) = sum_i W_i^2 U_i (1 - U_i) / (n_i. - 1)
* (6)  V(U_i) = U_i (1 - U_i) / (n_i. - 1)
* (7)  V(P_j) = 1 / N_.j^2 [ N_j.^2 (1 - P_j)^2 U_j (1 - U_j) / (n_j. - 1)
                             + P_j^2 sum_{i != j} N_i.^2 n_ij / n_i. (1 - n_ij / n_i.) / (n_i. - 1) ]
        with N_.j = sum_i N_i. n_ij / n_i. (estimated reference total of class j, in pixels)
* (8)  p_.k = sum_i W_i n_ik / n_i.            estimated area proportion of class k
* (9)  A_k = A_tot p_.k                        error-adjusted (estimated) area
* (10) S(p_.k) = sqrt( sum_i W_i^2 (n_ik / n_i.) (1 - n_ik / n_i.) / (n_i. - 1) )
* (11) S(A_k) = A_tot S(p_.k); 95 % confidence interval A_k +- 1.96 S(A_k) (same for O, U, P with their S)
* (13) n = ( sum_i W_i S_i / S(O) )^2 with S_i = sqrt(U_i (1 - U_i)): sample size for a target standard error
       S(O) of the overall accuracy, from the expected user's accuracies U_i (Cochran 1977, eq. 5.25).

A stratum with a single point has no variance estimate (n_i. - 1 = 0): its variance terms count as 0 and
:func:`stratified_estimates` lists it in ``single_point_strata``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # annotations only: numpy.typing is not in every numpy a QGIS install ships
    import numpy.typing as npt

from ..contract.errors import SatClassifyError

#: two-sided 95 % normal quantile, as in Olofsson et al. (2014)
Z95 = 1.96


def _clean(x) -> Optional[float]:
    return None if x is None or not np.isfinite(x) else float(x)


def stratified_estimates(
    counts, strata_pixels: Sequence[float], values: Sequence[int], pixel_area_ha: float = 1.0, z: float = Z95
) -> dict:
    """The stratified estimator of Olofsson et al. (2014) for a square error matrix of sample counts.

    ``counts``: K x K (rows = map stratum, columns = reference class, both in ``values`` order);
    ``strata_pixels``: mapped pixels N_i. of each stratum (0 for a class that occurs only in the reference);
    ``pixel_area_ha``: area of one pixel in hectares. Returns proportions, accuracies, areas with standard
    errors and ``z``-based confidence half-widths (``ci95``)."""
    n = np.asarray(counts, dtype=np.float64)
    n_map = np.asarray(strata_pixels, dtype=np.float64)
    k = len(values)
    if n.shape != (k, k) or n_map.shape != (k,):
        raise SatClassifyError(f"error matrix must be {k} x {k} with {k} stratum sizes, got {n.shape}, {n_map.shape}")
    if (n < 0).any() or (n_map < 0).any():
        raise SatClassifyError("sample counts and stratum sizes must not be negative")
    ni = n.sum(axis=1)
    unsampled = [int(values[i]) for i in range(k) if n_map[i] > 0 and ni[i] == 0]
    if unsampled:
        raise SatClassifyError(
            f"map class(es) {', '.join(map(str, unsampled))} cover part of the map but hold no usable sample point, "
            "so their area and accuracy cannot be estimated: add reference points in these strata "
            "(satclassify:samplingdesign gives every class a minimum), or leave the classes out with IGNORE"
        )
    if n_map.sum() <= 0:
        raise SatClassifyError("the map strata have no area")
    w = n_map / n_map.sum()
    sampled = ni > 0
    share = np.divide(n, ni[:, None], out=np.zeros_like(n), where=sampled[:, None])  # n_ij / n_i.
    p = w[:, None] * share  # eq. 4
    denom = np.where(ni > 1, ni - 1, np.inf)  # n_i. - 1; a single point gives no variance term
    single = [int(values[i]) for i in range(k) if ni[i] == 1]

    diag = np.diag(p)
    p_map = p.sum(axis=1)  # p_i.
    p_ref = p.sum(axis=0)  # p_.j  (eq. 8)
    oa = float(diag.sum())  # eq. 1
    ua = np.divide(diag, p_map, out=np.full(k, np.nan), where=p_map > 0)  # eq. 2
    pa = np.divide(diag, p_ref, out=np.full(k, np.nan), where=p_ref > 0)  # eq. 3
    u0 = np.nan_to_num(ua)
    v_oa = float(np.sum(np.where(sampled, w**2 * u0 * (1 - u0) / denom, 0.0)))  # eq. 5
    v_u = np.where(sampled, u0 * (1 - u0) / denom, np.nan)  # eq. 6
    # eq. 7
    n_ref = (n_map[:, None] * share).sum(axis=0)  # N_.j
    v_p = np.full(k, np.nan)
    for j in range(k):
        if n_ref[j] <= 0:
            continue
        pj = pa[j]
        first = n_map[j] ** 2 * (1 - pj) ** 2 * u0[j] * (1 - u0[j]) / denom[j] if sampled[j] else 0.0
        others = sum(
            n_map[i] ** 2 * share[i, j] * (1 - share[i, j]) / denom[i] for i in range(k) if i != j and sampled[i]
        )
        v_p[j] = (first + pj**2 * others) / n_ref[j] ** 2
    s_area = np.sqrt(
        np.sum(np.where(sampled[:, None], w[:, None] ** 2 * share * (1 - share) / denom[:, None], 0.0), axis=0)
    )  # eq. 10
    total_ha = float(n_map.sum() * pixel_area_ha)
    se_oa = math.sqrt(v_oa)
    classes = []
    for j, v in enumerate(values):
        se_u = math.sqrt(v_u[j]) if np.isfinite(v_u[j]) else None
        se_p = math.sqrt(v_p[j]) if np.isfinite(v_p[j]) else None
        classes.append(
            {
                "value": int(v),
                "mapped_pixels": float(n_map[j]),
                "mapped_area_ha": float(n_map[j] * pixel_area_ha),
                "weight": float(w[j]),
                "sample_points": int(ni[j]),
                "area_proportion": float(p_ref[j]),
                "area_proportion_se": float(s_area[j]),
                "estimated_area_ha": float(p_ref[j] * total_ha),  # eq. 9
                "estimated_area_se_ha": float(s_area[j] * total_ha),  # eq. 11
                "ci95_ha": float(z * s_area[j] * total_ha),
                "users_accuracy": _clean(ua[j]),
                "users_accuracy_se": _clean(se_u),
                "users_accuracy_ci95": _clean(z * se_u) if se_u is not None and np.isfinite(ua[j]) else None,
                "producers_accuracy": _clean(pa[j]),
                "producers_accuracy_se": _clean(se_p),
                "producers_accuracy_ci95": _clean(z * se_p) if se_p is not None else None,
            }
        )
    return {
        "overall_accuracy": oa,
        "overall_accuracy_se": se_oa,
        "overall_accuracy_ci95": z * se_oa,
        "area_proportion_matrix": p.tolist(),
        "total_area_ha": total_ha,
        "pixel_area_ha": float(pixel_area_ha),
        "z": z,
        "classes": classes,
        "single_point_strata": single,
        "values": [int(v) for v in values],
    }


# ----------------------------------------------------------------------------------------- sample design
def sample_size_for_se(weights: npt.ArrayLike, expected_ua: npt.ArrayLike, target_se: float) -> int:
    """Eq. 13: total sample size n = (sum_i W_i S_i / S(O))^2, S_i = sqrt(U_i (1 - U_i)), rounded up."""
    if not 0 < float(target_se) < 0.5:
        raise SatClassifyError(
            f"the target standard error of overall accuracy must be between 0 and 0.5 (e.g. 0.01), got {target_se}"
        )
    w = np.asarray(weights, dtype=np.float64)
    ua = np.asarray(expected_ua, dtype=np.float64)
    bad = [float(u) for u in ua if not 0 < u < 1]
    if bad:
        raise SatClassifyError(f"expected user's accuracies must be between 0 and 1 (exclusive), got {bad[0]}")
    s_i = np.sqrt(ua * (1 - ua))
    # round first so that the float noise of an exact result (640.0000000001) does not add a point
    return max(1, int(math.ceil(round(float((np.sum(w / w.sum() * s_i) / float(target_se)) ** 2), 6))))


def _largest_remainder(quotas: np.ndarray, total: int) -> np.ndarray:
    base = np.floor(quotas).astype(np.int64)
    rest = total - int(base.sum())
    if rest > 0:
        order = np.argsort(-(quotas - base), kind="stable")
        base[order[:rest]] += 1
    return base


def allocate(
    total: int, weights: npt.ArrayLike, available: Sequence[int], minimum: int = 0, rule: str = "proportional"
) -> List[int]:
    """Points per stratum: ``rule`` "proportional" (to the mapped share W_i) or "equal", every stratum at least
    ``minimum`` (Olofsson et al. 2014 recommend 50-100 for rare classes, the rest proportional), never more
    than the pixels it has (``available``). The total stays ``total`` unless the minimums need more, or the
    strata have fewer pixels."""
    w = np.asarray(weights, dtype=np.float64)
    cap = np.asarray(available, dtype=np.int64)
    k = len(w)
    if total < 1:
        raise SatClassifyError(f"the number of sample points must be at least 1, got {total}")
    if minimum < 0:
        raise SatClassifyError(f"the minimum number of points per class must be >= 0, got {minimum}")
    if rule not in ("proportional", "equal"):
        raise SatClassifyError(f"allocation must be proportional or equal, not {rule!r}")
    share = w / w.sum() if rule == "proportional" else np.full(k, 1.0 / k)
    floor = np.minimum(cap, minimum)
    out = floor.copy()
    free = np.ones(k, bool)
    # strata whose share is below the minimum (or above their pixels) are fixed; the rest shares what is left
    for _ in range(k + 1):
        fixed_total = int(out[~free].sum())
        remaining = max(0, total - fixed_total)
        if not free.any():
            break
        q = share[free] / share[free].sum() * remaining
        idx = np.flatnonzero(free)
        changed = False
        for t, i in enumerate(idx):
            if q[t] < floor[i] or q[t] > cap[i]:
                out[i] = floor[i] if q[t] < floor[i] else cap[i]
                free[i] = False
                changed = True
        if not changed:
            out[idx] = _largest_remainder(q, remaining)
            break
    return [int(x) for x in np.minimum(np.maximum(out, floor), cap)]


def strata_table(
    values: Sequence[int], pixels: Sequence[int], pixel_area_ha: float, names: Optional[Dict[int, str]] = None
) -> List[dict]:
    """value, name, pixels, area_ha, weight of each stratum."""
    total = float(sum(pixels))
    return [
        {
            "value": int(v),
            "name": (names or {}).get(int(v), f"class {v}"),
            "pixels": int(c),
            "area_ha": float(c * pixel_area_ha),
            "weight": (float(c) / total) if total else 0.0,
        }
        for v, c in zip(values, pixels)
    ]
