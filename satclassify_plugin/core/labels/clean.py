"""Exact majority for a clean coverage, computed only where it can differ from the centre rule.

A pixel that a single straight boundary piece crosses, from one side of the pixel to another, is cut into two
parts, and the part holding the pixel's centre is at least half of it (a square is centrally symmetric: a line
not through the centre leaves the centre on the larger side). Its majority class is therefore the centre rule's,
except when the line passes (within :data:`_TOL`) through the centre. Only the other boundary pixels - two or
more pieces (vertices, junctions, thin polygons) or a piece through the centre, the "complex" pixels - need
exact class areas (:func:`.coverage.pixel_fractions`). On a clean coverage they are a small part of the boundary
pixels, and :func:`.coverage.strip_fractions` (every boundary pixel exact, prefix sums along whole rows) does
several times the work.

One row strip at a time (:func:`strip_majority`):

1. every edge two polygons share (the same two points, run in opposite directions) is kept once, with the
   class of the polygon whose ring runs along it (``plus``) and of the other (``minus``; -1 for an edge of one
   polygon only, taken to have nothing on its other side); an edge between two polygons of the same class is
   dropped;
2. the edges are cut at the row lines;
3. where each row's centre line crosses them, sorted along the row: the class right of every crossing gives the
   centre rule for every pixel (a scanline fill). Along the way the crossings are checked: the number of
   polygons covering each stretch of the centre line must be 0 or 1, and each crossing must leave the class
   the next one enters from. Anything else (overlapping or invalid polygons, or crossings at one point that do
   not chain) returns None: the caller then takes the general method for the strip;
4. complex pixels: where two pieces' column ranges in a row overlap, or a piece's line passes through a pixel
   centre;
5. their exact areas, per run of consecutive complex pixels in a row, with the cover on the run's left side as
   the start of the prefix sums: one class when no boundary crosses the pixel before the run, else the two
   classes its single piece separates, split where it meets the run;
6. for the mixed mask, the dominant fraction of the single-piece pixels from their piece alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import coverage as cv

#: a line closer than this to a pixel centre (in pixels) leaves the two parts within EPS of a tie: computed exactly
_TOL = 2 * cv.EPS
_K = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5], np.uint64)


def shared_once(u0, v0, u1, v1, cls):
    """Edges with each shared edge once: (u0, v0, u1, v1, plus, minus), see the module docstring (step 1).
    Two copies run in the same direction, or three and more copies, are kept as they are (an overlap or an
    invalid ring: the checks of step 3 then refuse the strip)."""
    u0, v0, u1, v1 = u0 + 0.0, v0 + 0.0, u1 + 0.0, v1 + 0.0  # -0.0 -> 0.0: equal points, equal bits
    fwd = (u0 < u1) | ((u0 == u1) & (v0 < v1))
    keep = ~((u0 == u1) & (v0 == v1))
    pts = np.stack([u0, v0, u1, v1], 1)
    back = np.flatnonzero(~fwd)  # (selecting by index: numpy's where and masks are slow on random masks)
    pts[back] = pts[back][:, [2, 3, 0, 1]]
    bits = pts.view(np.uint64)
    h = (bits[:, 0] * _K[0]) ^ (bits[:, 1] * _K[1]) ^ (bits[:, 2] * _K[2]) ^ (bits[:, 3] * _K[3])
    o = np.argsort(h)
    same = (h[o[1:]] == h[o[:-1]]) & (pts[o[1:]] == pts[o[:-1]]).all(1)
    n = same.size
    # a pair: same[i] alone (not same[i - 1], not same[i + 1]), the two copies in opposite directions
    alone = same.copy()
    if n > 1:
        alone[1:] &= ~same[:-1]
        alone[:-1] &= ~same[1:]
    i = np.flatnonzero(alone)
    a, b = o[i], o[i + 1]
    ok = fwd[a] != fwd[b]
    a, b = a[ok], b[ok]
    fa = fwd[a]
    first = b + (a - b) * fa  # the copy running from the lower point to the higher keeps its direction
    other = a + b - first
    minus = np.full(u0.size, -1, np.int64)
    minus[first] = cls[other]
    keep[other] = False
    keep[first] &= cls[first] != cls[other]  # two polygons of one class: no boundary between classes
    k = np.flatnonzero(keep)
    return u0[k], v0[k], u1[k], v1[k], cls[k].astype(np.int64), minus[k]


def _sorted_crossings(row, u, slope, sign, width: int):
    """Order of the centre-line crossings by (row, u, slope du/dv, sign): two stable 16-bit sorts by row and
    column, then the crossings sharing a row and a column put in order by u; at one point by where they are just
    below the centre line (their slope); along one line (two polygons' edges overlapping, split at different
    vertices), leaving a polygon before entering the next."""
    if width + 3 > 65536:
        return np.lexsort((sign, slope, u, row))
    ck = np.clip(np.floor(u) + 2, 0, 65535).astype(np.uint16)
    o = np.argsort(ck, kind="stable")
    o = o[np.argsort(row[o].astype(np.uint16), kind="stable")]
    rk, kk = row[o], ck[o]
    tie = (rk[1:] == rk[:-1]) & (kk[1:] == kk[:-1])
    if tie.any():
        t = np.zeros(o.size, bool)
        t[:-1] |= tie
        t[1:] |= tie
        sub = np.flatnonzero(t)
        so = o[sub]
        o[sub] = so[np.lexsort((sign[so], slope[so], u[so], row[so]))]
    return o


def strip_majority(
    u0, v0, u1, v1, cls, y0: int, rows: int, width: int, mixed_threshold: Optional[float] = None
) -> Optional[cv.StripResult]:
    """Majority raster of rows [y0, y0 + rows), the exact values of its complex pixels (and their dominant
    fraction) and, with ``mixed_threshold``, the mixed mask; or None when the strip is not a clean coverage."""
    u0, v0, u1, v1, plus, minus = shared_once(u0, v0 - y0, u1, v1 - y0, cls)
    e, row, ua, va, ub, vb = cv._row_pieces(u0, v0, u1, v1, rows)
    # -- 3. centre-line crossings: the centre rule, and the checks ------------------------------------------
    ev0, ev1 = v0[e], v1[e]
    vc = row + 0.5
    crosses = (np.minimum(ev0, ev1) <= vc) & (vc < np.maximum(ev0, ev1))
    x = np.flatnonzero(crosses)
    xe = e[x]
    xr = row[x]
    xdv = v1[xe] - v0[xe]
    s = (u1[xe] - u0[xe]) / xdv
    xv = vc[x]
    xu = u0[xe] + (xv - v0[xe]) * s  # moved along the edge from its nearer end
    far = np.flatnonzero(np.abs(xv - v0[xe]) > np.abs(xv - v1[xe]))
    xu[far] = u1[xe[far]] + (xv[far] - v1[xe[far]]) * s[far]
    inside = xu < width
    xe, xr, xdv, s, xu = xe[inside], xr[inside], xdv[inside], s[inside], xu[inside]
    down = xdv > 0  # the plus polygon lies right of the crossing
    sign = (minus[xe] < 0) * (2 * down.astype(np.int64) - 1)  # polygons entered (+1) or left (-1)
    o = _sorted_crossings(xr, xu, s, sign, width)
    xe, xr, xu, down, sign = xe[o], xr[o], xu[o], down[o], sign[o]
    xp, xm = plus[xe], minus[xe]
    right = xm + (xp - xm) * down
    left = xp + xm - right
    first = np.concatenate(([True], xr[1:] != xr[:-1])) if xr.size else np.zeros(0, bool)
    cs = np.cumsum(sign)
    mult = cs - (cs - sign)[first][np.cumsum(first) - 1]
    prev_right = np.concatenate(([-1], right[:-1]))
    prev_right[first] = -1
    if xr.size and ((mult < 0).any() or (mult > 1).any() or (left != prev_right).any()):
        return None
    c_start = np.maximum(np.floor(xu - 0.5).astype(np.int64) + 1, 0)
    pos = xr * width + c_start  # non-decreasing: sorted by row, then u
    out = cv._fill_runs(xr, c_start - 1, np.maximum(right, 0).astype(np.uint8), rows, width)

    def centre_class(r, c):
        """The centre rule's class (-1: no polygon) of pixels (r, c) no boundary crosses."""
        if not xr.size:
            return np.full(r.size, -1, np.int64)
        i = np.maximum(np.searchsorted(pos, r * width + c, side="right") - 1, 0)
        return np.where((xr[i] == r) & (pos[i] <= r * width + c), right[i], -1)

    # -- 4. complex pixels ----------------------------------------------------------------------------------
    c_lo, c_hi, slope = cv.columns(ua, va, ub, vb, width)
    sp = np.flatnonzero(c_hi >= c_lo)  # row pieces with a column inside (or left of) the grid
    w2 = width + 2  # pixel id: row * w2 + col + 1 (col -1..width - 1; a gap between rows)
    so = cv._order(row[sp], c_lo[sp] + 1, rows, w2)
    sp = sp[so]
    sr, slo, shi = row[sp], c_lo[sp], c_hi[sp]
    khi = sr * w2 + shi + 1
    nsp = sp.size
    runmax = np.maximum.accumulate(khi * max(nsp, 1) + np.arange(nsp)) if nsp else np.zeros(0, np.int64)
    pc = _Pieces(e, row, ua, va, ub, vb, plus, minus)
    pdu, pdv = (ub - ua)[sp], (vb - va)[sp]
    spans = _Spans(sp, sr, slo, shi, runmax, slope[sp])
    prev = np.concatenate(([-1], runmax[:-1] // max(nsp, 1)))
    prev_col = prev - sr * w2 - 1  # the rightmost column the row's earlier pieces reach (< -1: none)
    ov_lo, ov_hi = np.maximum(slo, 0), np.minimum(shi, prev_col)
    # a piece's line through a pixel centre (distance < _TOL): the columns whose centre is that close. First
    # the pieces whose line passes that close to the nearest centre on the row's centre line (few), then the
    # columns of those
    pvc = sr + 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        mid = ua[sp] + pdu * (pvc - va[sp]) / pdv  # where the line meets the centre line
        off = np.abs(mid - 0.5 - np.round(mid - 0.5)) * np.abs(pdv)
        near = np.flatnonzero((off < _TOL * np.hypot(pdu, pdv)) | ((pdv == 0) & (np.abs(va[sp] - pvc) < _TOL)))
        nm, flat = mid[near], pdv[near] == 0
        half = _TOL * np.hypot(pdu[near], pdv[near]) / np.abs(pdv[near])
        n_lo = np.where(flat, slo[near], np.ceil(nm - half - 0.5))
        n_hi = np.where(flat, shi[near], np.floor(nm + half - 0.5))
    n_lo = np.maximum(np.nan_to_num(n_lo, nan=1.0, posinf=1e18, neginf=-1e18), np.maximum(slo[near], 0))
    n_hi = np.minimum(np.nan_to_num(n_hi, nan=0.0, posinf=1e18, neginf=-1e18), shi[near])
    iv_r = np.concatenate((sr, sr[near]))
    iv_lo = np.concatenate((ov_lo, n_lo.astype(np.int64)))
    iv_hi = np.concatenate((ov_hi, n_hi.astype(np.int64)))
    m = iv_hi >= iv_lo
    k, col = cv._repeat_ranges(iv_lo[m], iv_hi[m])
    ids = np.unique(iv_r[m][k] * w2 + col + 1)
    # a run starting in column 0 takes the pieces left of the grid (column -1) as its start
    at0 = ids[(ids % w2) == 1]
    ids = np.union1d(ids, at0 - 1) if at0.size else ids
    got = _complex(ids, rows, width, w2, pc, spans, centre_class) if ids.size else None
    if got is None:
        z = np.zeros(0, np.int64)
        got = z, z.astype(np.uint8), z.astype(np.float64), z.astype(bool)
    cells, value, dom, irr = got
    out[cells] = value
    mixed = None
    if mixed_threshold is not None:
        mixed = _single_piece_mixed(rows, width, pc, spans, mixed_threshold)
        mixed[cells] = dom < mixed_threshold - cv.EPS
        mixed = mixed.reshape(rows, width)
    return cv.StripResult(cells, value, dom, irr, False, out.reshape(rows, width), clean=True, mixed=mixed)


@dataclass
class _Pieces:
    """Row pieces of a strip's edges: edge index, row, ends; with the two classes of every edge."""

    e: np.ndarray
    row: np.ndarray
    ua: np.ndarray
    va: np.ndarray
    ub: np.ndarray
    vb: np.ndarray
    plus: np.ndarray
    minus: np.ndarray


@dataclass
class _Spans:
    """The row pieces with a column in or left of the grid, sorted by (row, first column): piece index, row,
    first and last column, and the running maximum of (row, last column) with the index that reaches it."""

    sp: np.ndarray
    sr: np.ndarray
    slo: np.ndarray
    shi: np.ndarray
    runmax: np.ndarray
    slope: np.ndarray  # dv/du of each span's piece (0 for a vertical one)

    def covering(self, r, c, w2):
        """(covered?, span index) of pixels (r, c): the span reaching furthest right among the row's spans
        starting at or before c, if it reaches c."""
        n = self.sp.size
        if not n:
            z = np.zeros(r.size, np.int64)
            return z.astype(bool), z
        i = np.searchsorted(self.sr * w2 + self.slo + 1, r * w2 + c + 1, side="right") - 1
        j = self.runmax[np.maximum(i, 0)] % n
        return (i >= 0) & (self.sr[j] == r) & (self.shi[j] >= c), j


def _complex(ids, rows, width, w2, pc: _Pieces, spans: _Spans, centre_class):
    """Exact (cells, value, dominant, irregular) of the complex pixels ``ids`` (sorted pixel ids, row * w2 +
    col + 1), one run of consecutive ids at a time (step 5 of the module docstring)."""
    brk = np.concatenate(([True], np.diff(ids) != 1))
    run_of = np.cumsum(brk) - 1
    run_first = ids[brk]
    run_row, run_c0 = run_first // w2, run_first % w2 - 1
    sr, slo, shi = spans.sr, spans.slo, spans.shi
    lo_pos = np.searchsorted(ids, sr * w2 + slo + 1)
    hi_pos = np.searchsorted(ids, sr * w2 + shi + 1, side="right")
    has = np.flatnonzero(hi_pos > lo_pos)
    # every (span, complex pixel in it): the span's piece in that pixel's column
    k, at = cv._repeat_ranges(lo_pos[has], hi_pos[has] - 1)
    q = spans.sp[has[k]]
    pcol = ids[at] % w2 - 1
    parea, pdv = cv.in_column(pc.ua[q], pc.va[q], pc.ub[q], pc.vb[q], spans.slope[has[k]], pcol)
    prun = run_of[at]
    pe = pc.e[q]
    pp, pm = pc.plus[pe], pc.minus[pe]
    two = pm >= 0
    # the cover on each run's left side (runs from column 0 start at column -1: nothing left of it)
    s_run, s_col, s_cls, s_dv = _seeds(run_row, run_c0, w2, pc, spans, centre_class)
    px = cv.pixel_fractions(
        np.concatenate((prun, prun[two], s_run)),
        np.concatenate((pcol, pcol[two], s_col)),
        np.concatenate((pp, pm[two], s_cls)),
        np.concatenate((parea, -parea[two], np.zeros(s_dv.size))),
        np.concatenate((pdv, -pdv[two], s_dv)),
        run_first.size,
        width,
    )
    if px is None:
        return None
    real = (px.ccol >= 0) & (px.ccol >= run_c0[px.crow])
    cells = run_row[px.crow[real]] * width + px.ccol[real]
    return cells, px.value[real], px.dominant[real], px.irregular[real]


def _single_piece_mixed(rows, width, pc: _Pieces, spans: _Spans, threshold: float):
    """Mixed mask (rows * width uint8) of the boundary pixels from each one's piece alone (step 6); right for
    the pixels that are not complex (the caller sets those). The part of the pixel right of its piece is the
    area between the piece and the pixel's right side over the rows it spans, plus the bands above and below it
    on that side (those where the piece ends on the pixel's left side); the dominant fraction is the larger
    part, or 1 where no class is on either side."""
    inside = np.flatnonzero(spans.shi >= 0)
    k, pcol = cv._repeat_ranges(np.maximum(spans.slo[inside], 0), spans.shi[inside])
    p = inside[k]
    pr = spans.sr[p]
    q = spans.sp[p]
    parea, _, (pu_a, qa, pu_b, qb) = cv.in_column(
        pc.ua[q], pc.va[q], pc.ub[q], pc.vb[q], spans.slope[p], pcol, ends=True
    )
    cf, rf = pcol.astype(np.float64), pr.astype(np.float64)
    top_u, bot_u = pu_a.copy(), pu_b.copy()
    down = np.flatnonzero(qa > qb)
    top_u[down], bot_u[down] = pu_b[down], pu_a[down]
    part = np.abs(parea) + (top_u == cf) * (np.minimum(qa, qb) - rf) + (bot_u == cf) * (rf + 1 - np.maximum(qa, qb))
    part = np.minimum(np.maximum(part, 0.0), 1.0)
    e = pc.e[spans.sp]
    labelled = ((pc.plus[e] > 0) | (pc.minus[e] > 0))[p]
    mixed = np.zeros(rows * width, np.uint8)
    mixed[pr * width + pcol] = labelled & (np.maximum(part, 1.0 - part) < threshold - cv.EPS)
    return mixed


def _seeds(run_row, run_c0, w2, pc: _Pieces, spans: _Spans, centre_class):
    """Pieces in the column before each run that carry the cover of its left side: (run, column, class, cover)."""
    runs = np.flatnonzero(run_c0 >= 1)
    r, c = run_row[runs], run_c0[runs] - 1  # the pixel before the run (not complex)
    crossed, j = spans.covering(r, c, w2)
    out_run, out_col, out_cls, out_dv = [], [], [], []
    # no boundary in it: one class covers its right side
    g = np.flatnonzero(~crossed)
    gc = centre_class(r[g], c[g])
    ok = gc >= 0
    out_run.append(runs[g][ok])
    out_col.append(c[g][ok])
    out_cls.append(gc[ok])
    out_dv.append(np.ones(int(ok.sum())))
    # one piece: split where it meets the right side, else the class on the right side's side of it
    b = np.flatnonzero(crossed)
    q = spans.sp[j[b]]
    rb, cb = r[b].astype(np.float64), c[b].astype(np.float64)
    qa_u, qa_v = pc.ua[q], pc.va[q]
    du, dv = pc.ub[q] - qa_u, pc.vb[q] - qa_v
    _, _, (pa, ya, pb, yb) = cv.in_column(qa_u, qa_v, pc.ub[q], pc.vb[q], spans.slope[j[b]], c[b], ends=True)
    touch_a, touch_b = pa == cb + 1, pb == cb + 1
    touch = (touch_a | touch_b) & (du != 0)
    vstar = np.where(touch_a, ya, yb)
    pl, mi = pc.plus[pc.e[q]], pc.minus[pc.e[q]]
    above = mi + (pl - mi) * (du > 0)
    below = pl + mi - above
    # not touching: the side of the piece holding the right side's middle (plus where the cross product < 0)
    cross = du * (rb + 0.5 - qa_v) - dv * (cb + 1 - qa_u)
    side = mi + (pl - mi) * (cross < 0)
    for cls_, cover, use in ((above, vstar - rb, touch), (below, rb + 1 - vstar, touch), (side, 1.0, ~touch)):
        sel = use & (cls_ >= 0)
        out_run.append(runs[b][sel])
        out_col.append(c[b][sel])
        out_cls.append(cls_[sel])
        out_dv.append(np.broadcast_to(cover, sel.shape)[sel].astype(np.float64))
    return (
        np.concatenate(out_run),
        np.concatenate(out_col),
        np.concatenate(out_cls).astype(np.int64),
        np.concatenate(out_dv),
    )
