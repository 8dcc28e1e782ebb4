"""Sentinel-2 sources behind one small interface (chosen by the tools' SOURCE parameter).

A :class:`Source` searches (:meth:`Source.search` -> list of :class:`~satclassify_plugin.core.s2.products.Scene`)
and makes the chosen scenes readable by GDAL (:meth:`Source.prepare`: COG URLs for STAC, downloaded
SAFE zips for CDSE and DHuS). :func:`search` adds the AOI overlap and the ranking; :func:`fetch` turns
the best date (or given ids) into the stack and mask.

Sources: ``STAC`` (default, no login, Earth Search), ``CDSE`` (Copernicus Data Space Ecosystem OData: the
catalogue is public, downloads need a login), ``DHuS`` (a Data Hub Software mirror through sentinelsat, login
for both). The protocols are the sensor-neutral clients of :mod:`satclassify_plugin.core.catalog`; every request
goes through the source's :class:`~satclassify_plugin.core.net.HttpClient` (deadlines, retries, proxy: see
:mod:`satclassify_plugin.core.net`). This package adds what is Sentinel-2: the queries, the product fields
(``Scene``), the bands to read.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Type

from ...catalog import Credentials
from ...contract.errors import SatClassifyError
from ...net import HttpClient, Monitor
from ..products import Scene, group_by_date, parse_datetime, rank_scenes

__all__ = ["Credentials", "SearchQuery", "Source", "choose_date", "fetch", "get_source", "search", "unique_scenes"]
SOURCES = ("STAC", "CDSE", "DHuS")
PRODUCTS = ("L2A", "L1C")


@dataclass
class SearchQuery:
    aoi_wkt: str  # polygon, EPSG:4326 lon/lat
    start: str = ""  # YYYY-MM-DD (inclusive)
    end: str = ""  # YYYY-MM-DD (inclusive)
    max_cloud: float = 100.0
    product: str = "L2A"
    limit: int = 50
    collection: str = ""  # STAC collection override
    ids: Sequence[str] = ()

    def validate(self) -> "SearchQuery":
        from ..stack import geometry_from_wkt

        if self.product not in PRODUCTS:
            raise SatClassifyError(f"unknown product '{self.product}': use L2A or L1C")
        g = geometry_from_wkt(self.aoi_wkt)
        xmin, xmax, ymin, ymax = g.GetEnvelope()
        if xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90:
            raise SatClassifyError(
                "the area of interest lies outside the globe's coverage (longitudes -180..180, "
                "latitudes -90..90): check its coordinate reference system"
            )
        if not -56 <= (ymin + ymax) / 2 <= 84:
            raise SatClassifyError("the area of interest is outside Sentinel-2 coverage (latitudes 56 S to 84 N)")
        if not self.ids:
            s, e = parse_datetime(self.start), parse_datetime(self.end)
            if s is None or e is None:
                raise SatClassifyError("give START and END dates (YYYY-MM-DD) or an ITEM id")
            if e < s:
                raise SatClassifyError(f"END ({self.end}) is before START ({self.start})")
        if not 0 <= float(self.max_cloud) <= 100:
            raise SatClassifyError(f"MAX_CLOUD must be between 0 and 100, not {self.max_cloud}")
        if int(self.limit) < 1:
            raise SatClassifyError("LIMIT must be at least 1")
        return self

    def interval(self):
        """(start, end) as aware datetimes covering whole days."""
        s = parse_datetime(self.start)
        e = parse_datetime(self.end)
        if e is not None and len(str(self.end).strip()) <= 10:
            e = e + _dt.timedelta(days=1) - _dt.timedelta(milliseconds=1)
        return s, e


class Source:
    name = ""
    default_url = ""
    needs_login = False  # searching needs a login (and so everything)
    download_needs_login = False  # only downloading (fetch) needs one
    module: Optional[str] = None  # lazily imported package this source needs

    def __init__(
        self,
        url: str = "",
        credentials: Optional[Credentials] = None,
        http: Optional[HttpClient] = None,
        monitor: Optional[Monitor] = None,
    ):
        self.url = (url or self.default_url).rstrip("/")
        self.credentials = credentials or Credentials()
        self.monitor = monitor or Monitor()
        self.http = http or HttpClient(monitor=self.monitor)
        self.http.add_secret(self.credentials.password)
        if self.module and importlib.util.find_spec(self.module) is None:
            pip = {"pystac_client": "pystac-client"}.get(self.module, self.module)
            raise SatClassifyError(
                f"the {self.name} source needs the Python package '{pip}', which QGIS's Python "
                "cannot import: install it with Plugins > SatClassify > Install Python dependencies "
                f"(or python3 -m pip install --user {pip}), or choose another SOURCE"
            )
        if self.needs_login:
            self.require_login()

    def require_login(self, action: str = "") -> None:
        """Raise a clear error when there is no login; ``action``: what needs it (e.g. "to download products")."""
        if not self.credentials:
            raise SatClassifyError(
                f"the {self.name} source needs a login{' ' + action if action else ''}: choose an "
                "authentication configuration (AUTHCFG, Basic authentication with user name and "
                "password)"
            )

    def check_fetch(self) -> None:
        """Fail before any request when fetching from this source cannot work (e.g. a download without login)."""
        if self.download_needs_login:
            self.require_login("to download products (searching needs none)")

    def search(self, query: SearchQuery) -> List[Scene]:
        raise NotImplementedError

    def prepare(self, scenes: Sequence[Scene], bands: Sequence[str], workdir: str) -> List[Scene]:
        """Scenes whose ``assets`` are GDAL-readable paths for ``bands``."""
        raise NotImplementedError


def get_source(
    name: str,
    url: str = "",
    credentials: Optional[Credentials] = None,
    http: Optional[HttpClient] = None,
    monitor: Optional[Monitor] = None,
) -> Source:
    key = (name or "STAC").strip().upper()
    cls: Type[Source]
    if key == "STAC":
        from .stac import StacSource as cls
    elif key == "CDSE":
        from .cdse import CdseSource as cls
    elif key == "DHUS":
        from .dhus import DhusSource as cls
    else:
        raise SatClassifyError(f"unknown SOURCE '{name}': use one of {', '.join(SOURCES)}")
    return cls(url, credentials, http, monitor)


def search(source: Source, query: SearchQuery, n_dates: int = 1) -> List[Scene]:
    """Search, compute the AOI overlap, rank (best first). Raises a clear error when nothing is found."""
    from ..stack import aoi_cover

    query.validate()
    scenes = unique_scenes(source.search(query), source)
    for s in scenes:
        if s.aoi_cover is None:
            s.aoi_cover = aoi_cover(s.footprint, query.aoi_wkt)
    if query.max_cloud < 100:
        scenes = [s for s in scenes if s.cloud is None or s.cloud <= query.max_cloud]
    if not query.ids:
        scenes = [s for s in scenes if s.aoi_cover is None or s.aoi_cover > 0]
    if not scenes:
        if query.ids:
            raise SatClassifyError(
                f"no product with id {', '.join(query.ids)} at {source.name} ({source.url}): "
                "check the id and the SOURCE"
            )
        raise SatClassifyError(
            f"no Sentinel-2 {query.product} product found at {source.name} between {query.start} and {query.end} "
            f"with cloud cover <= {query.max_cloud:g} % over the area of interest: widen the dates, raise "
            "MAX_CLOUD, or check that the area of interest is covered by this catalogue"
        )
    return rank_scenes(scenes, n_dates=n_dates)[: int(query.limit)]


def unique_scenes(scenes: Sequence[Scene], source: Optional[Source] = None) -> List[Scene]:
    """Each product once, by its id, in the order found: a catalogue whose paging repeats items (the same page
    served again) must not list one product many times. The repeats are logged."""
    seen, out = set(), []
    for s in scenes:
        if s.id in seen:
            continue
        seen.add(s.id)
        out.append(s)
    if len(out) < len(scenes) and source is not None and getattr(source, "monitor", None) is not None:
        source.monitor.info(
            f"the catalogue returned {len(scenes) - len(out)} repeated item(s) (same product id, e.g. "
            "a page served twice): each product is listed once"
        )
    return out


def choose_date(scenes: Sequence[Scene], mosaic: bool = True) -> List[Scene]:
    """The tiles to read: the best-ranked scene and, with ``mosaic``, the other tiles of its date/platform,
    ordered by AOI overlap so the best-covering tile is read first."""
    if not scenes:
        return []
    best = scenes[0]
    if not mosaic:
        return [best]
    group = group_by_date(scenes)[f"{best.date}/{best.platform}"]
    tiles: Dict[str, Scene] = {}
    for s in group:  # one scene per tile (the best-ranked)
        tiles.setdefault(s.tile_id or s.id, s)
    others = sorted((s for s in tiles.values() if s is not best), key=lambda s: -(s.aoi_cover or 0))
    return [best] + [s for s in others if (best.tile_id or best.id) != (s.tile_id or s.id)]


def fetch(
    source: Source,
    query: SearchQuery,
    bands: Sequence[str],
    output: str,
    mask_output: Optional[str],
    target_epsg: Optional[int] = None,
    mosaic: bool = True,
    workdir: str = "",
    clouds: str = "auto",
) -> Dict[str, object]:
    """Search (or look up ``query.ids``), pick the best date, make it readable and write stack + mask
    (``clouds``: SCL and/or the cloud detector, :data:`..clouds.MODES`)."""
    from ..stack import build_stack, gdal_remote_config

    mon = source.monitor
    source.check_fetch()
    ranked = search(source, query)
    chosen = list(ranked) if query.ids else choose_date(ranked, mosaic)
    mon.info(
        "reading " + ", ".join(f"{s.id} ({s.date}, cloud {s.cloud if s.cloud is not None else '?'} %)" for s in chosen)
    )
    read_bands = list(bands) + (["SCL"] if query.product == "L2A" and "SCL" not in bands else [])
    if mask_output and clouds != "none" and (clouds != "auto" or query.product == "L1C"):
        read_bands += [b for b in ("B02", "B03", "B04", "B08") if b not in read_bands]  # the cloud detector's
    workdir = workdir or os.path.join(os.path.expanduser("~"), ".satclassify", "downloads")
    prepared = source.prepare(chosen, read_bands, workdir)
    if query.product == "L1C":
        for s in prepared:
            s.assets.pop("SCL", None)
    meta = {
        "SATCLASSIFY_SOURCE": f"{source.name} {source.url}",
        "SATCLASSIFY_DATE": chosen[0].date,
        "SATCLASSIFY_CLOUD": ",".join(str(s.cloud) for s in chosen),
    }
    urls = [p[len("/vsicurl/") :] for s in prepared for p in s.assets.values() if p.startswith("/vsicurl/")]
    with gdal_remote_config(**source.http.gdal_options(urls)):
        summary = build_stack(
            prepared,
            bands,
            output,
            mask_output,
            aoi_wkt=query.aoi_wkt,
            target_epsg=target_epsg,
            monitor=mon.sub(0.0 if source.name == "STAC" else 0.5, 1.0),
            metadata=meta,
            clouds=clouds,
        )
    summary["scenes"] = chosen
    return summary
