"""Sentinel-2 from a Data Hub Software (DHuS) mirror (national collaborative ground segments): the query and
fields of Sentinel-2 products on :class:`~satclassify_plugin.core.catalog.dhus.DhusCatalog` (sentinelsat), then
the zip read through the SAFE import."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Sequence

from ...catalog.dhus import DhusCatalog
from ...contract.errors import SatClassifyError
from ...net import host_of
from ..products import PRODUCT_TYPES, Scene, format_baseline, parse_datetime
from . import SearchQuery, Source


def scene_from_entry(uuid: Any, p: Any) -> Scene:
    """A sentinelsat query result (uuid, properties) -> Scene; SatClassifyError on malformed entries."""
    if not isinstance(uuid, str) or not isinstance(p, dict):
        raise SatClassifyError("malformed DHuS response: a product entry is not an object")
    title = p.get("title")
    if not isinstance(title, str) or not title:
        raise SatClassifyError(f"malformed DHuS response: product {uuid} has no title")
    when = p.get("beginposition")
    when = parse_datetime(when if not isinstance(when, (int, float)) else None)
    if when is None:
        raise SatClassifyError(f"malformed DHuS response: product {title} has no valid beginposition")
    fp = None
    if isinstance(p.get("footprint"), str):
        try:
            from osgeo import ogr

            g = ogr.CreateGeometryFromWkt(p["footprint"])
            fp = json.loads(g.ExportToJson()) if g is not None else None
        except Exception:
            fp = None
    raw_cloud = p.get("cloudcoverpercentage")
    try:
        cloud = float(raw_cloud) if raw_cloud is not None else None
    except (TypeError, ValueError):
        cloud = None
    m = re.search(r"_N(\d{4})_", title)
    base = format_baseline(p.get("processingbaseline")) or (format_baseline(m.group(1)) if m else "")
    tile = p.get("tileid") if isinstance(p.get("tileid"), str) else ""
    if not tile:
        m = re.search(r"_T(\d{2}[A-Z]{3})_", title)
        tile = m.group(1) if m else ""
    plat = str(p.get("platformserialidentifier") or "").lower().replace(" ", "")
    ptype = str(p.get("producttype") or title[4:10])
    return Scene(
        id=title,
        datetime=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        platform=plat,
        tile_id=tile,
        cloud=cloud,
        baseline=base,
        source="DHuS",
        footprint=fp,
        product_type="L1C" if "1C" in ptype else "L2A",
        offset_applied=False,
        extra={"uuid": uuid},
    )


class DhusSource(Source):
    name = "DHuS"
    default_url = "https://colhub.met.no/"
    needs_login = True
    module = "sentinelsat"

    def catalog(self) -> DhusCatalog:
        return DhusCatalog(self.url, self.http, self.credentials)

    def search(self, query: SearchQuery) -> List[Scene]:
        kw: Dict[str, Any] = {"platformname": "Sentinel-2", "producttype": PRODUCT_TYPES[query.product]}
        self.monitor.info(f"searching {host_of(self.url)} (DHuS OpenSearch)")
        if query.ids:
            res = self.catalog().query(filename=" OR ".join(f"{i}*" for i in query.ids), limit=int(query.limit) * 4)
        else:
            s, e = query.interval()
            if float(query.max_cloud) < 100:
                kw["cloudcoverpercentage"] = (0, float(query.max_cloud))
            res = self.catalog().query(area=query.aoi_wkt, date=(s, e), limit=int(query.limit) * 4, **kw)
        return [scene_from_entry(k, v) for k, v in res.items()]

    def prepare(self, scenes: Sequence[Scene], bands: Sequence[str], workdir: str) -> List[Scene]:
        from ..stack import open_safe

        catalog = self.catalog()
        os.makedirs(workdir, exist_ok=True)
        out = []
        n = max(1, len(scenes))
        for i, s in enumerate(scenes):
            self.monitor.check()
            mon = self.monitor.sub(0.5 * i / n, 0.5 * (i + 1) / n)
            self.monitor.info(f"downloading {s.id} from {host_of(self.url)} to {workdir}")
            safe = open_safe(catalog.download(str(s.extra["uuid"]), s.id, workdir, mon))
            safe.aoi_cover, safe.footprint, safe.rank, safe.source = s.aoi_cover, s.footprint, s.rank, "DHuS"
            out.append(safe)
        return out
