"""Sentinel-2 from the Copernicus Data Space Ecosystem (CDSE): the product filter and fields of Sentinel-2 SAFE
products on :class:`~satclassify_plugin.core.catalog.odata.ODataCatalog` (search, token, download), then the
SAFE zip read through the SAFE import (``/vsizip/``, nothing extracted)."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from ...catalog.odata import CATALOGUE, ODataCatalog
from ...catalog.odata import odata_filter as _odata_filter
from ...contract.errors import SatClassifyError
from ..products import PRODUCT_TYPES, Scene, format_baseline, parse_datetime
from . import SearchQuery, Source

COLLECTION = "SENTINEL-2"


def odata_filter(query: SearchQuery, aoi_wkt_4326: str) -> str:
    """The OData ``$filter`` of a Sentinel-2 search (dates inclusive, whole days)."""
    if query.ids:
        return _odata_filter(COLLECTION, ids=query.ids)
    s, e = query.interval()
    return _odata_filter(COLLECTION, PRODUCT_TYPES[query.product], aoi_wkt_4326, s, e, query.max_cloud)


#: longest AOI WKT sent in a catalogue URL; a longer (detailed) polygon is replaced by its bounding box
MAX_URL_WKT = 1500


def url_aoi(aoi_wkt: str, max_chars: int = MAX_URL_WKT) -> str:
    """The AOI as ISO WKT short enough for a GET URL: a detailed polygon (e.g. a municipality boundary) is
    sent as its bounding box; products are a superset, and AOI coverage is still computed on the real AOI."""
    from ..stack import bbox_wkt, geometry_from_wkt

    g = geometry_from_wkt(aoi_wkt)
    wkt = g.ExportToIsoWkt()
    if len(wkt) <= max_chars:
        return wkt
    xmin, xmax, ymin, ymax = g.GetEnvelope()
    return bbox_wkt(xmin, ymin, xmax, ymax)


def _attrs(p: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    a = p.get("Attributes")
    if isinstance(a, list):
        for x in a:
            if isinstance(x, dict) and isinstance(x.get("Name"), str):
                out[x["Name"]] = x.get("Value")
    return out


def _md5(p: Dict[str, Any]) -> Optional[str]:
    c = p.get("Checksum")
    if isinstance(c, dict):
        c = [c]
    if isinstance(c, list):
        for x in c:
            if (
                isinstance(x, dict)
                and str(x.get("Algorithm", "")).upper() == "MD5"
                and isinstance(x.get("Value"), str)
                and re.fullmatch(r"[0-9a-fA-F]{32}", x["Value"])
            ):
                return x["Value"]
    return None


def _geometry(p: Dict[str, Any]) -> Optional[dict]:
    g = p.get("GeoFootprint")
    if isinstance(g, dict) and g.get("type") in ("Polygon", "MultiPolygon") and isinstance(g.get("coordinates"), list):
        return g
    f = p.get("Footprint")
    if isinstance(f, str):
        m = re.search(r"SRID=4326;(.+?)'?$", f)
        wkt = m.group(1) if m else f
        try:
            from osgeo import ogr

            geom = ogr.CreateGeometryFromWkt(wkt.strip().rstrip("'"))
            return json.loads(geom.ExportToJson()) if geom is not None else None
        except Exception:
            return None
    return None


def scene_from_product(p: Any) -> Scene:
    """An OData product (dict) -> Scene; SatClassifyError on malformed entries."""
    if not isinstance(p, dict):
        raise SatClassifyError(f"malformed CDSE response: a product is a {type(p).__name__}, not an object")
    pid, name = p.get("Id"), p.get("Name")
    if not isinstance(pid, str) or not pid or not isinstance(name, str) or not name:
        raise SatClassifyError("malformed CDSE response: a product has no 'Id' or 'Name'")
    cd = p.get("ContentDate")
    when = parse_datetime(cd.get("Start")) if isinstance(cd, dict) and isinstance(cd.get("Start"), str) else None
    if when is None:
        raise SatClassifyError(f"malformed CDSE response: product {name} has no valid ContentDate/Start")
    a = _attrs(p)

    def num(v):
        try:
            f = float(v)
            return f if f == f and abs(f) != float("inf") else None
        except (TypeError, ValueError):
            return None

    baseline = a.get("processingBaseline")
    m = re.search(r"_N(\d{4})_", name)
    base = format_baseline(baseline) or (format_baseline(m.group(1)) if m else "")
    tile = a.get("tileId") if isinstance(a.get("tileId"), str) else ""
    if not tile:
        m = re.search(r"_T(\d{2}[A-Z]{3})_", name)
        tile = m.group(1) if m else ""
    plat = a.get("platformSerialIdentifier")
    platform = (
        f"sentinel-2{str(plat).lower()}"
        if isinstance(plat, str) and len(plat) == 1
        else (name[:3].lower().replace("s2", "sentinel-2") if name.startswith("S2") else "")
    )
    size = p.get("ContentLength")
    ptype = a.get("productType") if isinstance(a.get("productType"), str) else ""
    level = "L1C" if "1C" in (ptype or name[4:10]) else "L2A"
    return Scene(
        id=name[:-5] if name.endswith(".SAFE") else name,
        datetime=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        platform=platform,
        tile_id=tile,
        cloud=num(a.get("cloudCover")),
        baseline=base,
        source="CDSE",
        footprint=_geometry(p),
        product_type=level,
        offset_applied=False,
        extra={
            "uuid": pid,
            "name": name,
            "md5": _md5(p),
            "size": int(size) if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None,
            "online": p.get("Online", True) is not False,
        },
    )


class CdseSource(Source):
    name = "CDSE"
    default_url = CATALOGUE
    download_needs_login = True  # the catalogue is public

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.odata = ODataCatalog(self.url, self.http, self.credentials, self.check_fetch)

    def token(self) -> str:
        return self.odata.token()

    def search(self, query: SearchQuery) -> List[Scene]:
        limit = int(query.limit) * 4
        flt = odata_filter(query, url_aoi(query.aoi_wkt))
        out: List[Scene] = []
        for p in self.odata.products(flt, min(limit, 1000), enough=lambda: len(out) >= limit):
            s = scene_from_product(p)
            if s.product_type == query.product or query.ids:
                out.append(s)
        return out

    # -- download ------------------------------------------------------------------------------------
    def prepare(self, scenes: Sequence[Scene], bands: Sequence[str], workdir: str) -> List[Scene]:
        from ..stack import open_safe

        out = []
        n = max(1, len(scenes))
        for i, s in enumerate(scenes):
            if not s.extra.get("online", True):
                raise SatClassifyError(
                    f"product {s.id} is offline (long-term archive): order it at the service "
                    "first, or choose another date"
                )
            dest = os.path.join(workdir, s.id + ".zip")
            size = s.extra.get("size")
            self.monitor.info(f"downloading {s.id} ({(size if isinstance(size, int) else 0) / 1e6:.0f} MB) to {dest}")
            self.odata.download(
                s.extra["uuid"],
                dest,
                md5=s.extra.get("md5"),
                size=s.extra.get("size"),
                monitor=self.monitor.sub(0.5 * i / n, 0.5 * (i + 1) / n),
            )
            safe = open_safe(dest)
            safe.aoi_cover, safe.footprint, safe.rank, safe.source = s.aoi_cover, s.footprint, s.rank, "CDSE"
            out.append(safe)
        return out
