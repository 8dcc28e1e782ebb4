"""Multi-date Sentinel-2 stacks (QGIS env, GDAL): one date per interval of a period, all on one grid, one GeoTIFF.

The layout follows :mod:`satclassify_plugin.core.contract.timeseries` (``<band>@<YYYY-MM-DD>`` date-major, then
``VALID@<date>`` per date). Per interval (:func:`intervals`: calendar months or N-day windows from START):

* ``best`` (default): the overpass (the tiles of one day and platform, mosaicked as in a single-date fetch)
  with the most valid pixels in the AOI among the interval's ``candidates`` best-ranked overpasses; without a
  validity source (L1C with no cloud detector) the best-ranked one. The date is the acquisition day.
* ``median``: the per-pixel median of the valid observations of the interval's ``candidates`` best-ranked
  overpasses (DN rounded to integers); the date is the interval's middle day (inside START..END).

Validity follows the stack tools' CLOUD_MASK (``clouds``, :data:`.clouds.MODES`), per observation exactly as a
single-date stack's MASK (:class:`.clouds.StackClouds`): SCL (cloud, shadow, cirrus, snow and nodata are
invalid) where the product has it, the cloud detector where it has none (L1C) or where asked (L2A: instead of
SCL or beside it), and nodata in any band. The detector reads B02 B03 B04 B08 of each observation for itself
when BANDS lacks them (they are not written).

Invalid pixels get DN 0 in every band of their date and VALID 0. Intervals without a product are left out
(logged); a period with no product at all stops with the search's message.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as _dt
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from ..contract.timeseries import VALID, descriptions
from . import style
from .clouds import REQUIRED, StackClouds
from .products import BAND_RESOLUTION, QUANTIFICATION, Scene, format_baseline, group_by_date, parse_datetime, scl_mask
from .stack import Grid, gdal_remote_config, mosaic_band, stack_outputs, target_grid

INTERVALS = ("none", "monthly", "days")
COMPOSITES = ("best", "median")
DEFAULT_CANDIDATES = 4


def intervals(start: str, end: str, kind: str, days: int = 30) -> List[Tuple[_dt.date, _dt.date]]:
    """Inclusive (first day, last day) windows covering START..END: calendar months (clipped to the period) or
    consecutive ``days``-day windows from START (the last one clipped)."""
    start_dt, end_dt = parse_datetime(start), parse_datetime(end)
    if start_dt is None or end_dt is None:
        raise SatClassifyError("a multi-date stack needs START and END dates (YYYY-MM-DD)")
    s, e = start_dt.date(), end_dt.date()
    if e < s:
        raise SatClassifyError(f"END ({end}) is before START ({start})")
    out = []
    if kind == "monthly":
        y, m = s.year, s.month
        while _dt.date(y, m, 1) <= e:
            first = max(_dt.date(y, m, 1), s)
            last = min(_dt.date(y, m, calendar.monthrange(y, m)[1]), e)
            out.append((first, last))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    elif kind == "days":
        if int(days) < 1:
            raise SatClassifyError(f"INTERVAL_DAYS must be at least 1, not {days}")
        d = s
        while d <= e:
            out.append((d, min(d + _dt.timedelta(days=int(days) - 1), e)))
            d += _dt.timedelta(days=int(days))
    else:
        raise SatClassifyError(f"unknown interval '{kind}': use one of {', '.join(INTERVALS)}")
    if len(out) > 366:
        raise SatClassifyError(
            f"{len(out)} intervals between {start} and {end}: choose a longer INTERVAL or a shorter period"
        )
    return out


def overpasses(scenes: Sequence[Scene], mosaic: bool = True) -> List[List[Scene]]:
    """The scenes (ranked best first) as overpasses (same day and platform), best-ranked overpass first; each
    one's tiles with the best-ranked tile first, then the others by AOI overlap (one scene per tile)."""
    groups = group_by_date(scenes)
    order = sorted(groups, key=lambda k: min(s.rank for s in groups[k]))
    out = []
    for k in order:
        ranked = sorted(groups[k], key=lambda s: s.rank)
        best = ranked[0]
        if not mosaic:
            out.append([best])
            continue
        tiles: Dict[str, Scene] = {}
        for s in ranked:
            tiles.setdefault(s.tile_id or s.id, s)
        others = sorted((s for s in tiles.values() if s is not best), key=lambda s: -(s.aoi_cover or 0))
        out.append([best] + others)
    return out


def _in(s: Scene, window: Tuple[_dt.date, _dt.date]) -> bool:
    t = parse_datetime(s.datetime)
    return t is not None and window[0] <= t.date() <= window[1]


def fetch_timeseries(
    source,
    query,
    bands: Sequence[str],
    output: str,
    mask_output: Optional[str] = None,
    interval: str = "monthly",
    days: int = 30,
    composite: str = "best",
    target_epsg: Optional[int] = None,
    mosaic: bool = True,
    workdir: str = "",
    candidates: int = DEFAULT_CANDIDATES,
    clouds: str = "auto",
) -> Dict[str, object]:
    """Search the period, pick (or composite) one date per interval and write the multi-date stack (+ MASK:
    1 where at least one date is valid). ``clouds``: what makes each date's VALID band (:data:`.clouds.MODES`).
    Returns a summary with the dates and the scenes read."""
    import os

    from .sources import search

    if composite not in COMPOSITES:
        raise SatClassifyError(f"unknown COMPOSITE '{composite}': use one of {', '.join(COMPOSITES)}")
    if query.ids:
        raise SatClassifyError(
            "a multi-date stack (INTERVAL) is built from a search over START..END: leave ITEM "
            "empty, or set INTERVAL to none to read the given products"
        )
    mon: Monitor = source.monitor
    windows = intervals(query.start, query.end, interval, days)
    bands = list(bands)
    if "SCL" in bands:
        raise SatClassifyError(
            "SCL cannot be a band of a multi-date stack (it is not a reflectance; each date "
            "has its VALID band instead): remove SCL from BANDS"
        )
    has_scl = query.product == "L2A"
    cm = StackClouds(clouds, has_scl, query.product, bands, REQUIRED, log=mon.info)  # before the search: fails fast
    source.check_fetch()
    ranked = search(source, query)
    read_bands = bands + (["SCL"] if cm.use_scl else []) + _detector_extra(cm, bands)
    workdir = workdir or os.path.join(os.path.expanduser("~"), ".satclassify", "downloads")
    per_window = []
    for win in windows:
        ops = overpasses([s for s in ranked if _in(s, win)], mosaic)[: max(1, int(candidates))]
        if not ops:
            mon.info(
                f"no product between {win[0]} and {win[1]} (cloud cover <= {query.max_cloud:g} %): that "
                "interval is left out"
            )
            continue
        per_window.append((win, ops))
    if not per_window:
        raise SatClassifyError("no interval has a product: widen the dates or raise MAX_CLOUD")
    prepared: Dict[str, Scene] = {}

    def ready(op: List[Scene]) -> List[Scene]:
        todo = [s for s in op if s.id not in prepared]
        if todo:
            for s in source.prepare(todo, read_bands, workdir):
                if not cm.use_scl:
                    s.assets.pop("SCL", None)
                prepared[s.id] = s
        return [prepared[s.id] for s in op]

    with gdal_remote_config(**source.http.gdal_options()):
        first = ready(per_window[0][1][0])
        grid = target_grid(first, bands, query.aoi_wkt, target_epsg, 10.0)
        series = _Series(bands, grid, ready, has_scl, source.monitor, 1, cm, level=query.product)
        e = 1 if series.masks_clouds else 0
        series.steps = max(
            1,
            sum(
                len(ops) * (len(bands) + e) if composite == "median" else len(ops) * e + len(bands)
                for _, ops in per_window
            ),
        )
        # choose the overpass of each interval (best) before writing, so the file's dates are known
        plan = []
        for win, ops in per_window:
            span = [win[0].isoformat(), win[1].isoformat()]
            if composite == "median":
                mid = win[0] + (win[1] - win[0]) // 2
                plan.append({"date": mid.isoformat(), "interval": span, "overpasses": ops, "valid": None})
                continue
            best, best_valid, best_n = ops[0], None, -1
            for op in ops if series.masks_clouds else []:  # nothing to rank by (L1C, no detector): the first
                v = series.valid_of(op)
                n = int(v.sum())
                mon.info(
                    f"{op[0].date} ({', '.join(s.id for s in op)}): {100.0 * n / v.size:.1f} % of the AOI "
                    f"valid by {series.by}"
                )
                if n > best_n:
                    best, best_valid, best_n = op, v, n
            plan.append({"date": best[0].date, "interval": span, "overpasses": [best], "valid": best_valid})
        return series.write(plan, composite, output, mask_output, {"SATCLASSIFY_SOURCE": f"{source.name} {source.url}"})


def import_series(
    scenes: Sequence[Scene],
    bands: Sequence[str],
    output: str,
    mask_output: Optional[str] = None,
    aoi_wkt: Optional[str] = None,
    target_epsg: Optional[int] = None,
    monitor: Optional[Monitor] = None,
    clouds: str = "auto",
) -> Dict[str, object]:
    """Local products (SAFE, :func:`..stack.open_safe`) of several days -> one multi-date stack: one date per
    acquisition day and platform (the tiles of a day mosaicked, best AOI overlap first), every product used.
    ``clouds``: what makes each date's VALID band (:data:`.clouds.MODES`)."""
    mon = monitor or Monitor()
    bands = list(bands)
    if "SCL" in bands:
        raise SatClassifyError(
            "SCL cannot be a band of a multi-date stack (each date has its VALID band instead): remove SCL from BANDS"
        )
    for s in scenes:
        missing = [b for b in bands if b not in s.assets]
        if missing:
            raise SatClassifyError(f"product {s.id} has no band {', '.join(missing)}")
    has_scl = all("SCL" in s.assets for s in scenes)
    levels = sorted({s.product_type or "L1C" for s in scenes})
    cm = StackClouds(
        clouds,
        has_scl,
        levels[0],
        bands,
        [b for b in BAND_RESOLUTION if all(b in s.assets for s in scenes)],
        log=mon.info,
    )
    for i, s in enumerate(scenes):
        s.rank = i + 1  # the order given: within a day, the first product's pixels win
    ops = sorted(overpasses(scenes, mosaic=True), key=lambda op: op[0].datetime)
    days = [op[0].date for op in ops]
    dup = sorted({d for d in days if days.count(d) > 1})
    if dup:
        raise SatClassifyError(
            f"products of two platforms on {', '.join(dup)}: a multi-date stack has one date "
            "per day; import one of them"
        )
    grid = target_grid(ops[0], bands, aoi_wkt, target_epsg, 10.0)
    series = _Series(bands, grid, lambda op: op, has_scl, mon, len(ops) * (len(bands) + 1), cm)
    plan = [{"date": op[0].date, "interval": [op[0].date, op[0].date], "overpasses": [op], "valid": None} for op in ops]
    return series.write(plan, "best", output, mask_output, {"SATCLASSIFY_SOURCE": "SAFE"})


class _Series:
    """Reading dates onto one grid and writing the multi-date stack (shared by fetch and import)."""

    def __init__(self, bands, grid: Grid, ready, has_scl, mon, steps, cm: StackClouds, level: Optional[str] = None):
        self.bands, self.grid, self.ready, self.has_scl, self.mon = list(bands), grid, ready, has_scl, mon
        self.steps, self.done = max(int(steps), 1), 0
        self.cm, self.level = cm, level  # level: the search's product level (fetch); None: each product's own
        self.use_scl = has_scl and cm.use_scl
        #: whether an observation's validity comes from more than its nodata (SCL and/or the detector)
        self.masks_clouds = self.use_scl or cm.active
        self.by = " and ".join(["SCL"] * self.use_scl + ["the cloud detector"] * cm.active) or "nodata"

    def tick(self):
        self.done += 1
        self.mon.progress(min(self.done / self.steps, 1.0))

    def valid_of(self, op, have: Optional[Dict[str, np.ndarray]] = None):
        """Validity of one observation (overpass) by SCL and/or the cloud detector (not yet its nodata).
        ``have``: band arrays of ``op`` already read (the detector reuses them)."""
        dst, bounds, w, h = self.grid
        v = np.ones((h, w), bool)
        if not self.masks_clouds:
            return v
        scenes = self.ready(op)
        if self.use_scl:
            scl = mosaic_band(scenes, "SCL", *self.grid, self.mon)
            v &= scl_mask(scl).astype(bool) & (scl != 0)
        if self.cm.active:
            for b, a in (have or {}).items():
                self.cm.keep(b, a)
            v &= self.cm.run(
                lambda b: mosaic_band(scenes, b, *self.grid, self.mon),
                10.0,
                monitor=self.mon,
                level=self.level or scenes[0].product_type or self.cm.level,
                label=op[0].date,
            )
        self.tick()
        return v

    def write(self, plan, composite, output, mask_output, extra_md):
        bands, mon = self.bands, self.mon
        dst, bounds, w, h = self.grid
        dates = [p["date"] for p in plan]
        if len(set(dates)) != len(dates):
            raise SatClassifyError(f"two dates of the stack are the same day ({', '.join(dates)})")
        names = descriptions(bands, dates)
        scenes_used = [s for p in plan for op in p["overpasses"] for s in op]
        rule = self.cm.rule()  # what VALID@<date> is, in the words of a single-date MASK
        md = {
            "SATCLASSIFY_SCALE": str(1.0 / QUANTIFICATION),
            "SATCLASSIFY_BANDS": ",".join(bands),
            "SATCLASSIFY_DATES": ",".join(dates),
            **extra_md,
            "SATCLASSIFY_PRODUCTS": ",".join(s.id for s in scenes_used),
            "SATCLASSIFY_BASELINES": ",".join(format_baseline(s.baseline) or "unknown" for s in scenes_used),
            "SATCLASSIFY_HARMONISATION": "DN = max(DN_product + BOA_ADD_OFFSET, 1) for baseline >= 04.00; "
            "reflectance = DN / 10000; 0 = nodata or an invalid observation",
            "SATCLASSIFY_TIMESERIES": json.dumps(
                [
                    {
                        "date": p["date"],
                        "interval": p["interval"],
                        "composite": composite,
                        "products": [[s.id for s in op] for op in p["overpasses"]],
                    }
                    for p in plan
                ]
            ),
            "SATCLASSIFY_VALID": f"{VALID}@<date>: {rule}",
        }
        if self.cm.active:
            md["SATCLASSIFY_CLOUD_DETECTOR"] = self.cm.detector
        info = []
        gt = (bounds[0], 10.0, 0.0, bounds[3], 0.0, -10.0)
        any_valid = np.zeros((h, w), bool)
        # the natural-colour style (.qml) shows the first date: its bands named without the date for the style
        first = [n.split("@")[0] if n.endswith("@" + dates[0]) and not n.startswith(VALID) else n for n in names]
        cuts = {}
        with stack_outputs(output, mask_output, names, first, w, h, gt, dst.ExportToWkt(), md) as out:
            ds = out.ds
            for t, p in enumerate(plan):
                arrays, valid = _read_date(p, composite, bands, self.grid, self.ready, self.valid_of, mon, self.tick)
                base = t * (len(bands) + 1)
                for i, a in enumerate(arrays):
                    a = np.where(valid, a, 0).astype(np.uint16)
                    ds.GetRasterBand(base + i + 1).WriteArray(a)
                    if t == 0:
                        cuts[i + 1] = style.array_cut(a)
                ds.GetRasterBand(base + len(bands) + 1).WriteArray(valid.astype(np.uint16))
                any_valid |= valid
                frac = float(valid.mean()) if valid.size else 0.0
                info.append({"date": p["date"], "valid_fraction": frac})
                mon.info(
                    f"date {t + 1}/{len(plan)} {p['date']} ({composite}, interval {p['interval'][0]}.."
                    f"{p['interval'][1]}): {100.0 * frac:.1f} % valid"
                )
            ds = None
            styles = out.finish(cuts)
            out.write_mask(
                any_valid,
                [{"value": 1, "name": "valid on at least one date", "color": "#2ca02c"}],
                "invalid on every date",
                f"1 = valid on at least one date ({VALID}@<date> bands of the stack: {rule}), 0 = "
                "invalid on every date",
            )
            mon.check()
        epsg = dst.GetAuthorityCode(None)
        return {
            "width": w,
            "height": h,
            "bounds": bounds,
            "epsg": int(epsg) if epsg else None,
            "dates": dates,
            "bands": bands,
            "descriptions": names,
            "per_date": info,
            "scenes": scenes_used,
            "offsets": {s.id: s.offset_for(bands[0]) for s in scenes_used},
            "has_scl": self.has_scl,
            "cloud_detector": self.cm.detector,
            "valid_fraction": float(any_valid.mean()) if any_valid.size else 0.0,
            "styles": styles,
        }


def _read_date(p, composite, bands, grid, ready, valid_of, mon, tick):
    """(band arrays, validity) of one planned date: the chosen overpass, or the median of the candidates."""
    if composite == "best":
        op = ready(p["overpasses"][0])
        arrays = []
        for b in bands:
            arrays.append(mosaic_band(op, b, *grid, mon))
            tick()
        valid = p["valid"] if p["valid"] is not None else valid_of(p["overpasses"][0], dict(zip(bands, arrays)))
        for a in arrays:
            valid &= a != 0
        return arrays, valid
    h, w = grid[3], grid[2]
    n = len(p["overpasses"])
    arrays = [np.full((n, h, w), np.nan, np.float32) for _ in bands]
    ok = np.zeros((n, h, w), bool)
    for k, op in enumerate(p["overpasses"]):  # one observation at a time: the detector reuses its bands
        have = {}
        for i, b in enumerate(bands):
            have[b] = mosaic_band(ready(op), b, *grid, mon)
            arrays[i][k] = have[b]
            tick()
        v = valid_of(op, have)
        for a in have.values():
            v &= a != 0
        ok[k] = v
        del have
    valid = ok.any(axis=0)
    out = []
    for cube in arrays:
        cube[~ok] = np.nan
        with np.errstate(all="ignore"), _quiet():
            med = np.nanmedian(cube, axis=0)
        out.append(np.where(valid, np.rint(np.nan_to_num(med)), 0).astype(np.uint16))
    return out, valid


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels (no valid observation)
        yield


def _detector_extra(cm: StackClouds, bands: Sequence[str]) -> List[str]:
    """The bands the cloud detector reads that BANDS lacks (read for it, not written)."""
    return [b for b in cm.bands if b not in bands] if cm.active else []


__all__ = ["COMPOSITES", "INTERVALS", "fetch_timeseries", "import_series", "intervals", "overpasses"]
