"""Multi-date (time series) stacks: the band-description convention, shared by the plugin and training.

Pure Python (no osgeo): see docs/DESIGN.md "Sentinel-2 conventions".

A multi-date stack is one GeoTIFF whose band descriptions are ``<band>@<YYYY-MM-DD>``, date-major: all
bands of the first date, then that date's validity band ``VALID@<date>``, then the next date, e.g.::

    B02@2023-04-14 B03@2023-04-14 B04@2023-04-14 B08@2023-04-14 VALID@2023-04-14
    B02@2023-05-19 B03@2023-05-19 B04@2023-05-19 B08@2023-05-19 VALID@2023-05-19 ...

Every date has the same bands in the same order; dates are strictly increasing; ``VALID@<date>`` is 1 where
the date's pixel is a valid observation (not cloud/shadow/snow/nodata by SCL, every band measured), 0 else.
A stack whose descriptions carry no ``@`` is a single-date stack (the tools read it as before).

:func:`parse_stack` reads the layout from the descriptions (``None`` for a single-date stack) and refuses a
malformed or inconsistent one with a message naming the band and the fix.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from .errors import SatClassifyError

VALID = "VALID"
SEPARATOR = "@"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class StackLayoutError(SatClassifyError):
    """Band descriptions that look like a multi-date stack but break the convention."""


def band_name(band: str, date: str) -> str:
    """``B04``, ``2023-05-12`` -> ``B04@2023-05-12``."""
    return f"{band}{SEPARATOR}{date}"


def descriptions(bands: Sequence[str], dates: Sequence[str]) -> List[str]:
    """The band descriptions of a multi-date stack of ``bands`` at ``dates`` (date-major, VALID last per date)."""
    out: List[str] = []
    for d in dates:
        out += [band_name(b, d) for b in bands] + [band_name(VALID, d)]
    return out


def day_of_year(date: str) -> int:
    """``2023-02-01`` -> 32."""
    return parse_date(date).timetuple().tm_yday


def parse_date(text: str, what: str = "date") -> _dt.date:
    if not isinstance(text, str) or not _DATE_RE.match(text):
        raise StackLayoutError(f"{what} '{text}' is not a YYYY-MM-DD date")
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise StackLayoutError(f"{what} '{text}' is not a valid calendar date")


@dataclass
class StackLayout:
    """Where each band of each date is in a multi-date stack (0-based band indices)."""

    dates: List[str]
    bands: List[str]  # the reflectance bands of every date, in stack order (without VALID)
    index: Dict[str, Dict[str, int]]  # date -> band -> 0-based index (VALID included)

    @property
    def num_dates(self) -> int:
        return len(self.dates)

    @property
    def doy(self) -> List[int]:
        return [day_of_year(d) for d in self.dates]

    def band_index(self, band: str, date: str) -> int:
        return self.index[date][band]

    def valid_index(self, date: str) -> int:
        return self.index[date][VALID]

    def date_indices(self, date: str, bands: Optional[Sequence[str]] = None) -> List[int]:
        """0-based indices of ``bands`` (default all) then VALID at ``date``."""
        bands = list(bands) if bands is not None else self.bands
        missing = [b for b in bands if b not in self.index[date]]
        if missing:
            raise StackLayoutError(
                f"the stack has no band {', '.join(missing)} at {date} (it has {', '.join(self.bands)})"
            )
        return [self.index[date][b] for b in bands] + [self.index[date][VALID]]


def is_multidate(names: Sequence[str]) -> bool:
    """Whether the band descriptions follow (or try to follow) the multi-date convention."""
    return any(SEPARATOR in (n or "") for n in names)


def parse_stack(names: Sequence[str]) -> Optional[StackLayout]:
    """The layout of a multi-date stack from its band descriptions; None for a single-date stack (no ``@``).

    Raises :class:`StackLayoutError` when some descriptions carry ``@`` and the stack breaks the convention
    (a band without a date among dated ones, a malformed date, dates out of order or not date-major, a date
    with other bands than the first, a duplicate, a missing ``VALID@<date>``)."""
    names = [str(n or "").strip() for n in names]
    if not is_multidate(names):
        return None
    fix = (
        "a multi-date stack names each band <band>@<YYYY-MM-DD>, all bands of a date together, then "
        "VALID@<date> (docs/DESIGN.md); write it with satclassify:fetchsentinel2 INTERVAL"
    )
    dates: List[str] = []
    index: Dict[str, Dict[str, int]] = {}
    for i, n in enumerate(names):
        if n.count(SEPARATOR) != 1:
            raise StackLayoutError(f"band {i + 1} is named '{n or '(no name)'}' among dated bands: {fix}")
        band, date = n.split(SEPARATOR)
        if not band:
            raise StackLayoutError(f"band {i + 1} '{n}' has no band name before '@': {fix}")
        try:
            parse_date(date, f"band {i + 1} '{n}': date")
        except StackLayoutError as e:
            raise StackLayoutError(f"{e}: {fix}")
        if not dates or dates[-1] != date:
            if date in index:
                raise StackLayoutError(
                    f"band {i + 1} '{n}': date {date} appears again after other dates (the "
                    f"stack is not date-major): {fix}"
                )
            if dates and date < dates[-1]:
                raise StackLayoutError(
                    f"band {i + 1} '{n}': date {date} comes after {dates[-1]}; dates must increase: {fix}"
                )
            dates.append(date)
            index[date] = {}
        if band in index[date]:
            raise StackLayoutError(f"band {i + 1} '{n}' appears twice at {date}: {fix}")
        index[date][band] = i
    first = [b for b in index[dates[0]] if b != VALID]
    for d in dates:
        if VALID not in index[d]:
            raise StackLayoutError(f"date {d} has no validity band {band_name(VALID, d)}: {fix}")
        got = [b for b in index[d] if b != VALID]
        if got != first:
            raise StackLayoutError(
                f"date {d} has bands {', '.join(got) or 'none'} but {dates[0]} has "
                f"{', '.join(first) or 'none'}: every date needs the same bands in the same "
                f"order ({fix})"
            )
    if not first:
        raise StackLayoutError(f"the stack has only validity bands, no reflectance band: {fix}")
    return StackLayout(dates, first, index)


def choose_dates(stack_doy: Sequence[int], want_doy: Sequence[int]) -> List[int]:
    """Indices of ``len(want_doy)`` stack dates (in order) whose days of year best match ``want_doy`` (a model's
    training dates): the ordered selection minimising the total circular day difference (dynamic programming).
    The caller checks that the stack has at least as many dates."""
    n, m = len(stack_doy), len(want_doy)

    def dist(a, b):
        d = abs(int(a) - int(b)) % 366
        return min(d, 366 - d)

    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(m + 1)]
    for j in range(n + 1):
        cost[0][j] = 0.0
    for i in range(1, m + 1):
        for j in range(i, n + 1):
            cost[i][j] = min(cost[i][j - 1], cost[i - 1][j - 1] + dist(want_doy[i - 1], stack_doy[j - 1]))
    picks, i, j = [], m, n
    while i > 0:
        if cost[i][j] == cost[i][j - 1] and j - 1 >= i:
            j -= 1
        else:
            picks.append(j - 1)
            i, j = i - 1, j - 1
    return picks[::-1]


# ---------------------------------------------------------------------------------------------------------
# datasets and model cards

#: the channel layout of a temporal dataset's images and of a temporal model's ``image`` input
LAYOUT = (
    "date-major: for each of the T dates its C bands then its validity (1 = valid, 0 = invalid), i.e. "
    "(N, T * (C + 1), H, W) = (N, T, C + 1, H, W)"
)
DOY_INPUT = "doy"


def dataset_layout(manifest: dict) -> Optional[StackLayout]:
    """The multi-date layout of a dataset (its ``bands`` are the stack's ``<band>@<date>`` descriptions and its
    manifest has a ``timeseries`` entry), None for a single-date dataset."""
    lay = parse_stack(manifest.get("bands") or [])
    ts = manifest.get("timeseries")
    if lay is None:
        if ts:
            raise StackLayoutError(
                "the manifest has a 'timeseries' entry but its bands carry no dates: rebuild "
                "the dataset with satclassify:buildpatches from a multi-date stack"
            )
        return None
    if isinstance(ts, dict) and ts.get("dates") not in (None, lay.dates):
        raise StackLayoutError(
            f"the manifest's timeseries dates {ts.get('dates')} differ from its bands' dates "
            f"{lay.dates}: the dataset is inconsistent, rebuild it"
        )
    return lay


def dataset_entry(layout: StackLayout) -> dict:
    """The manifest's ``timeseries`` entry of a dataset built from a multi-date stack."""
    return {
        "version": 1,
        "dates": list(layout.dates),
        "doy": layout.doy,
        "bands": list(layout.bands),
        "num_dates": layout.num_dates,
        "channels_per_date": len(layout.bands) + 1,
        "layout": LAYOUT,
    }


def card_entry(bands: Sequence[str], dates: Sequence[str], doy_input: bool) -> dict:
    """The model card's ``timeseries`` entry: the dates (and days of year) the model was trained on, the bands
    of each date and whether the graph takes the days of year as its second input ``doy`` (T,)."""
    return {
        "dates": list(dates),
        "doy": [day_of_year(d) for d in dates],
        "num_dates": len(dates),
        "bands": list(bands),
        "channels_per_date": len(bands) + 1,
        "layout": LAYOUT,
        "doy_input": DOY_INPUT if doy_input else None,
    }


def check_card_entry(ts, bands: Sequence[str], error=SatClassifyError) -> dict:
    """Validate a card's ``timeseries`` entry against the card's ``bands``; returns it normalised."""
    if not isinstance(ts, dict):
        raise error("model card: 'timeseries' must be an object")
    dates = ts.get("dates")
    if not isinstance(dates, list) or not dates:
        raise error("model card: 'timeseries' needs a non-empty 'dates' list (YYYY-MM-DD)")
    for d in dates:
        try:
            parse_date(d, "model card: timeseries date")
        except StackLayoutError as e:
            raise error(str(e))
    if sorted(set(dates)) != list(dates):
        raise error(f"model card: timeseries dates {dates} must increase")
    if list(ts.get("bands") or bands) != list(bands):
        raise error(f"model card: timeseries bands {ts.get('bands')} differ from the card's bands {list(bands)}")
    doy = ts.get("doy") or [day_of_year(d) for d in dates]
    if (
        not isinstance(doy, list)
        or len(doy) != len(dates)
        or not all(isinstance(v, int) and 1 <= v <= 366 for v in doy)
    ):
        raise error(f"model card: timeseries doy {doy!r} must give a day of year 1..366 per date")
    doy_input = ts.get("doy_input")
    if doy_input not in (None, DOY_INPUT):
        raise error(f"model card: timeseries doy_input must be '{DOY_INPUT}' or null, not {doy_input!r}")
    return {**card_entry(bands, dates, bool(doy_input)), "doy": list(doy)}


__all__ = [
    "DOY_INPUT",
    "LAYOUT",
    "SEPARATOR",
    "VALID",
    "card_entry",
    "check_card_entry",
    "dataset_entry",
    "dataset_layout",
    "VALID",
    "StackLayout",
    "StackLayoutError",
    "band_name",
    "choose_dates",
    "day_of_year",
    "descriptions",
    "is_multidate",
    "parse_date",
    "parse_stack",
]
