"""Sentinel-2 conventions shared by the search/fetch/import tools (pure Python + numpy, no GDAL).

* Band table (ESA names, native resolution) and the mapping from STAC asset keys to band names.
* The BOA_ADD_OFFSET rule: products with processing baseline >= 04.00 store DN shifted by +1000; the
  tools add the offset (usually -1000) so every stack shares the pre-04.00 scale (reflectance = DN/10000):
  ``DN_out = max(DN_in + offset, 1)`` for valid pixels, ``0`` stays ``0`` (nodata).
* SCL classes and the validity mask (1 = valid, 0 = invalid).
* :class:`Scene`, the record every source returns, and :func:`rank_scenes`, the ranking of search results.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..contract.errors import SatClassifyError

#: Band -> native resolution in metres (B10 exists in L1C only; SCL in L2A only).
BAND_RESOLUTION: Dict[str, int] = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
    "SCL": 20,
}
DEFAULT_BANDS = ("B02", "B03", "B04", "B08")
#: Index used by the product metadata (band_id="0".."12" in BOA_ADD_OFFSET / RADIO_ADD_OFFSET).
BAND_ID = {
    b: i
    for i, b in enumerate(("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"))
}

#: Earth Search (common-name) asset keys for each band; other catalogues use B02-style keys.
COMMON_ASSET_KEYS = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}

#: SCL values that make a pixel invalid in the mask: 0 no data, 1 saturated or defective, 3 cloud shadows,
#: 8 / 9 cloud medium / high probability, 10 thin cirrus, 11 snow or ice (ESA L2A scene classification).
SCL_INVALID = (0, 1, 3, 8, 9, 10, 11)
MASK_CLASSES = [{"value": 1, "name": "valid", "color": "#2ca02c"}]

#: product type names of the ESA catalogues (CDSE OData, DHuS mirrors)
PRODUCT_TYPES = {"L2A": "S2MSI2A", "L1C": "S2MSI1C"}

DEFAULT_OFFSET = -1000
QUANTIFICATION = 10000


def parse_bands(text) -> List[str]:
    """``"B02, b3,B8A"`` or a list -> ``["B02", "B03", "B8A"]``; unknown names raise a clear error."""
    items = text if isinstance(text, (list, tuple)) else re.split(r"[\s,;]+", str(text or ""))
    out: List[str] = []
    for raw in items:
        s = str(raw).strip().upper()
        if not s:
            continue
        m = re.fullmatch(r"B0?(\d{1,2})(A?)", s)
        name = s if s == "SCL" else (f"B{int(m.group(1)):02d}{m.group(2)}" if m else s)
        if name == "B08A":
            name = "B8A"
        if name not in BAND_RESOLUTION:
            raise SatClassifyError(f"unknown Sentinel-2 band '{raw}': use names among {', '.join(BAND_RESOLUTION)}")
        if name not in out:
            out.append(name)
    if not out:
        raise SatClassifyError("no band given: list Sentinel-2 bands such as B02,B03,B04,B08")
    return out


def asset_key(assets: Mapping[str, object], band: str) -> Optional[str]:
    """The key of ``band`` in a STAC item's assets (``red`` on Earth Search, ``B04``/``B04_10m``/``b04``...)."""
    candidates = [COMMON_ASSET_KEYS.get(band, ""), band, band.lower()]
    res = BAND_RESOLUTION[band]
    candidates += [f"{band}_{res}m", f"{band.lower()}_{res}m"]
    if band.startswith("B0"):
        candidates += [band.replace("B0", "B"), band.replace("B0", "b")]  # B4
    for k in candidates:
        if k and k in assets:
            return k
    return None


def parse_baseline(value) -> Optional[Tuple[int, int]]:
    """``"04.00"``, ``"N0400"``, ``"5.1"``, ``4.0``, ``"05.10"`` -> (major, minor); None when unknown."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            return None
        major = int(value)
        return major, int(round((value - major) * 100))
    s = str(value).strip().upper()
    m = re.fullmatch(r"N?(\d{2})(\d{2})", s)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = re.fullmatch(r"(\d{1,2})\.(\d{1,2})", s)
    if m:
        minor = m.group(2)
        return int(m.group(1)), int(minor) * (10 if len(minor) == 1 else 1)
    m = re.fullmatch(r"(\d{1,2})", s)
    if m:
        return int(m.group(1)), 0
    return None


def format_baseline(value) -> str:
    b = parse_baseline(value)
    return f"{b[0]:02d}.{b[1]:02d}" if b else ""


def offset_applies(baseline, offset_already_applied: Optional[bool] = None) -> bool:
    """The offset rule: add BOA_ADD_OFFSET when baseline >= 04.00 and the provider has not applied it yet.

    ``offset_already_applied`` is e.g. Earth Search's ``earthsearch:boa_offset_applied`` (False/None for the
    ``sentinel-2-c1-l2a`` COGs, which keep the raw DN). An unknown baseline is taken as pre-04.00.
    """
    if offset_already_applied:
        return False
    b = parse_baseline(baseline)
    return b is not None and b >= (4, 0)


def harmonise(dn: np.ndarray, offset: int) -> np.ndarray:
    """Apply an additive DN offset (e.g. -1000) to a uint16 band: ``max(DN + offset, 1)``, 0 stays 0."""
    a = np.asarray(dn)
    if not offset:
        return a.astype(np.uint16, copy=False)
    valid = a != 0
    shifted = np.clip(a.astype(np.int32) + int(offset), 1, 65535)
    return np.where(valid, shifted, 0).astype(np.uint16)


def scl_mask(scl: np.ndarray) -> np.ndarray:
    """uint8 validity mask from SCL: 0 where SCL is nodata/defective/cloud shadow/cloud/cirrus/snow, else 1."""
    s = np.asarray(scl)
    return (~np.isin(s, SCL_INVALID)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# scenes and ranking


@dataclass
class Scene:
    """One product (one MGRS tile at one date) as returned by a source."""

    id: str
    datetime: str  # ISO 8601, UTC
    platform: str = ""
    tile_id: str = ""
    cloud: Optional[float] = None  # %
    baseline: str = ""  # "04.00"
    aoi_cover: Optional[float] = None  # % of the AOI inside the footprint
    nodata: Optional[float] = None  # % of nodata pixels in the product, where known
    source: str = ""
    footprint: Optional[dict] = None  # GeoJSON geometry, EPSG:4326
    epsg: Optional[int] = None
    product_type: str = "L2A"
    offset_applied: Optional[bool] = None  # provider already harmonised the DN
    assets: Dict[str, str] = field(default_factory=dict)  # band -> href
    offsets: Dict[str, int] = field(default_factory=dict)  # band -> offset, when the metadata says it
    extra: Dict[str, object] = field(default_factory=dict)  # source-specific (download URL, checksum, ...)
    rank: int = 0

    @property
    def date(self) -> str:
        return self.datetime[:10]

    def offset_for(self, band: str) -> int:
        """DN offset the tools add to ``band`` (0 for SCL and for pre-04.00 or already harmonised data)."""
        if band == "SCL" or not offset_applies(self.baseline, self.offset_applied):
            return 0
        return int(self.offsets.get(band, DEFAULT_OFFSET))


def parse_datetime(value) -> Optional[_dt.datetime]:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        d = value
    else:
        s = str(value).strip()
        if not s:
            return None
        s = s.replace("Z", "+00:00")
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            s += "T00:00:00+00:00"
        s = re.sub(r"(\.\d{6})\d+", r"\1", s)  # fractional seconds beyond microseconds
        try:
            d = _dt.datetime.fromisoformat(s)
        except ValueError:
            return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.astimezone(_dt.timezone.utc)


def _quality(s: Scene, weights: Tuple[float, float, float]) -> float:
    w_cloud, w_cover, w_nodata = weights
    cloud = 100.0 if s.cloud is None else min(max(float(s.cloud), 0.0), 100.0)
    cover = 0.0 if s.aoi_cover is None else min(max(float(s.aoi_cover), 0.0), 100.0)
    nodata = 50.0 if s.nodata is None else min(max(float(s.nodata), 0.0), 100.0)
    return (w_cloud * (100.0 - cloud) + w_cover * cover + w_nodata * (100.0 - nodata)) / (100.0 * sum(weights))


def scene_score(s: Scene, weights: Tuple[float, float, float] = (0.5, 0.3, 0.2)) -> float:
    """Quality in [0, 1]: low cloud, large AOI overlap, few nodata pixels (unknown cloud counts as 100 %,
    unknown overlap as 0 %, unknown nodata as 50 %)."""
    return _quality(s, weights)


def rank_scenes(
    scenes: Sequence[Scene],
    n_dates: int = 1,
    spread_weight: float = 0.5,
    weights: Tuple[float, float, float] = (0.5, 0.3, 0.2),
) -> List[Scene]:
    """Order scenes best first and set ``rank`` (1 = best).

    Criteria (as DeepSatData picks tiles): low cloud cover, large AOI overlap, few nodata pixels; when
    ``n_dates`` > 1 the first ``n_dates`` picks are also spread over the period: each next pick maximises
    ``score + spread_weight * gap`` where ``gap`` is its distance in time to the nearest pick already made,
    relative to the period length. After those picks the rest follow by score. Ties break on date, then id.
    """
    items = list(scenes)
    if not items:
        return []
    scores = {id(s): scene_score(s, weights) for s in items}
    times = {id(s): parse_datetime(s.datetime) for s in items}
    known = [t for t in times.values() if t is not None]
    span = (max(known) - min(known)).total_seconds() if len(known) > 1 else 0.0

    def key(s):
        return (-scores[id(s)], s.datetime, s.id)

    remaining = sorted(items, key=key)
    picked: List[Scene] = []
    while remaining and len(picked) < max(1, int(n_dates)):
        if not picked or span <= 0:
            best = remaining[0]
        else:

            def spread_score(s):
                t = times[id(s)]
                if t is None:
                    gap = 0.0
                else:
                    gaps = [abs((t - times[id(p)]).total_seconds()) for p in picked if times[id(p)] is not None]
                    gap = min(gaps) / span if gaps else 0.0
                return (-(scores[id(s)] + spread_weight * gap), s.datetime, s.id)

            best = min(remaining, key=spread_score)
        picked.append(best)
        remaining.remove(best)
    ordered = picked + remaining
    for i, s in enumerate(ordered, 1):
        s.rank = i
    return ordered


def group_by_date(scenes: Iterable[Scene]) -> Dict[str, List[Scene]]:
    """Scenes grouped by acquisition day and platform (the tiles of one overpass), keyed ``YYYY-MM-DD/platform``."""
    out: Dict[str, List[Scene]] = {}
    for s in scenes:
        out.setdefault(f"{s.date}/{s.platform}", []).append(s)
    return out
