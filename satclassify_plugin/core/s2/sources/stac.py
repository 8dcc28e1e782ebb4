"""STAC API source (default: Earth Search, collection ``sentinel-2-c1-l2a``, no login).

Search goes through :class:`~satclassify_plugin.core.catalog.stac.StacCatalog` (pystac-client on a session with
the client's deadlines, cancel, retries and proxy); reading goes through GDAL ``/vsicurl/`` on the cloud-optimised
GeoTIFF assets, window by window (nothing is downloaded whole).

Offset rule for STAC items: the DN offset (-1000) is applied when the processing baseline
(``s2:processing_baseline``, else ``processing:version``) is >= 04.00 and the item does not say it was
applied already (``earthsearch:boa_offset_applied`` false or absent). The value comes from the asset's
``raster:bands`` offset/scale when given (-0.1 / 0.0001 = -1000), else -1000.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

from ...catalog.stac import StacCatalog
from ...contract.errors import SatClassifyError
from ..products import BAND_RESOLUTION, Scene, asset_key, format_baseline, parse_datetime
from . import SearchQuery, Source

COLLECTIONS = {"L2A": "sentinel-2-c1-l2a", "L1C": "sentinel-2-l1c"}


def _num(v) -> Optional[float]:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _epsg(props: Dict[str, Any]) -> Optional[int]:
    e = props.get("proj:epsg")
    if isinstance(e, int) and not isinstance(e, bool) and e > 0:
        return e
    code = props.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:") and code[5:].isdigit():
        return int(code[5:])
    return None


def _tile(props: Dict[str, Any], item_id: str) -> str:
    for k in ("s2:mgrs_tile", "grid:code", "mgrs:tile"):
        v = props.get(k)
        if isinstance(v, str) and v:
            return v.replace("MGRS-", "")
    z, b, sq = props.get("mgrs:utm_zone"), props.get("mgrs:latitude_band"), props.get("mgrs:grid_square")
    if isinstance(z, int) and isinstance(b, str) and isinstance(sq, str):
        return f"{z:02d}{b}{sq}"
    return ""


def _asset_offset(asset: Dict[str, Any]) -> Optional[int]:
    rb = asset.get("raster:bands")
    if isinstance(rb, list) and rb and isinstance(rb[0], dict):
        off, scale = _num(rb[0].get("offset")), _num(rb[0].get("scale"))
        if off is not None and scale:
            return int(round(off / scale))
    return None


def scene_from_item(item: Any, source: str = "STAC") -> Scene:
    """A STAC item (dict) -> Scene. Raises SatClassifyError (never another exception) on malformed items."""
    if not isinstance(item, dict):
        raise SatClassifyError(f"malformed STAC response: an item is a {type(item).__name__}, not an object")
    iid = item.get("id")
    if not isinstance(iid, str) or not iid:
        raise SatClassifyError("malformed STAC response: an item has no 'id'")
    props = item.get("properties")
    if not isinstance(props, dict):
        raise SatClassifyError(f"malformed STAC response: item {iid} has no 'properties'")
    dt = props.get("datetime") or props.get("start_datetime")
    when = parse_datetime(dt) if isinstance(dt, str) else None
    if when is None:
        raise SatClassifyError(f"malformed STAC response: item {iid} has no valid 'datetime'")
    assets_in = item.get("assets")
    if not isinstance(assets_in, dict):
        raise SatClassifyError(f"malformed STAC response: item {iid} has no 'assets'")
    assets: Dict[str, str] = {}
    offsets: Dict[str, int] = {}
    for band in BAND_RESOLUTION:
        k = asset_key(assets_in, band)
        a = assets_in.get(k) if k else None
        if isinstance(a, dict) and isinstance(a.get("href"), str) and a["href"]:
            assets[band] = a["href"]
            off = _asset_offset(a)
            if off is not None and off < 0 and band != "SCL":
                offsets[band] = off
    geom = item.get("geometry")
    if not (
        isinstance(geom, dict)
        and geom.get("type") in ("Polygon", "MultiPolygon")
        and isinstance(geom.get("coordinates"), list)
    ):
        geom = None
    baseline = props.get("s2:processing_baseline", props.get("processing:version"))
    applied = props.get("earthsearch:boa_offset_applied", props.get("sentinel:boa_offset_applied"))
    nodata = _num(props.get("s2:nodata_pixel_percentage"))
    cloud = _num(props.get("eo:cloud_cover"))
    product = str(props.get("s2:product_type") or props.get("product:type") or "")
    return Scene(
        id=iid,
        datetime=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        platform=str(props.get("platform") or ""),
        tile_id=_tile(props, iid),
        cloud=cloud,
        baseline=format_baseline(baseline),
        nodata=nodata,
        source=source,
        footprint=geom,
        epsg=_epsg(props),
        product_type="L1C" if "1C" in product else "L2A",
        offset_applied=applied if isinstance(applied, bool) else None,
        assets=assets,
        offsets=offsets,
        extra={"collection": item.get("collection") if isinstance(item.get("collection"), str) else ""},
    )


class StacSource(Source):
    name = "STAC"
    default_url = "https://earth-search.aws.element84.com/v1"
    module = "pystac_client"

    def search(self, query: SearchQuery) -> List[Scene]:
        import contextlib
        import json

        from ..stack import geometry_from_wkt

        collection = query.collection or COLLECTIONS[query.product]
        kw: Dict[str, Any] = {
            "collections": [collection],
            "max_items": int(query.limit) * 4,
            "limit": min(100, int(query.limit) * 4),
        }
        if query.ids:
            kw["ids"] = list(query.ids)
        else:
            s, e = query.interval()
            kw["datetime"] = f"{s.strftime('%Y-%m-%dT%H:%M:%SZ')}/{e.strftime('%Y-%m-%dT%H:%M:%S.999Z')}"
            kw["intersects"] = json.loads(geometry_from_wkt(query.aoi_wkt).ExportToJson())
            if float(query.max_cloud) < 100:
                kw["query"] = {"eo:cloud_cover": {"lte": float(query.max_cloud)}}
        self.monitor.info(f"searching {collection} at {self.url}")
        with contextlib.closing(StacCatalog(self.url, self.http).items(**kw)) as items:
            return [scene_from_item(d) for d in items]

    def prepare(self, scenes: Sequence[Scene], bands: Sequence[str], workdir: str) -> List[Scene]:
        from ..stack import vsi_path

        out = []
        for s in scenes:
            missing = [b for b in bands if b not in s.assets and b != "SCL"]
            if missing:
                raise SatClassifyError(
                    f"item {s.id} has no asset for band {', '.join(missing)} (it has "
                    f"{', '.join(sorted(s.assets)) or 'no band asset'})"
                )
            if "SCL" in bands and "SCL" not in s.assets:
                self.monitor.info(f"item {s.id} has no SCL asset: the mask only flags nodata")
            c = Scene(**{**s.__dict__})
            c.assets = {b: vsi_path(h) for b, h in s.assets.items() if b in bands}
            out.append(c)
        if any("SCL" not in s.assets for s in out):
            for s in out:
                s.assets.pop("SCL", None)
        return out
