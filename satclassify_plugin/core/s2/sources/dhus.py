"""A Data Hub Software (DHuS) mirror through sentinelsat (national collaborative ground segments).

``SentinelAPI(user, password, api_url)``: OpenSearch query by AOI, dates, product type and cloud cover;
``download`` resumes and checks the MD5 itself; the zip is then read through the SAFE import.

sentinelsat's session gets the client's deadlines, cancel and retries (it sets no timeout of its own:
``SentinelAPI(timeout=...)`` is not applied to its requests); its downloads are watched for stalls and cancel
through its progress-bar hook.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Sequence

from ...contract.errors import SatClassifyError
from ..http import Watch, host_of, own_error
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
    try:
        cloud = float(p.get("cloudcoverpercentage"))
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
    return Scene(id=title, datetime=when.strftime("%Y-%m-%dT%H:%M:%SZ"), platform=plat, tile_id=tile, cloud=cloud,
                 baseline=base, source="DHuS", footprint=fp, product_type="L1C" if "1C" in ptype else "L2A",
                 offset_applied=False, extra={"uuid": uuid})


class DhusSource(Source):
    name = "DHuS"
    default_url = "https://colhub.met.no/"
    needs_login = True
    module = "sentinelsat"

    def _api(self):
        from sentinelsat import SentinelAPI
        api = SentinelAPI(self.credentials.username, self.credentials.password, self.url + "/",
                          show_progressbars=False, timeout=self.http.timeout)
        self.http.mount(api.session, retry=True)
        api.downloader.chunk_size = 1 << 14  # progress (and the stall rule) every 16 kB, not every MB
        return api

    def _translate(self, e: Exception, what: str) -> SatClassifyError:
        import requests
        from sentinelsat import exceptions as sx
        host = host_of(self.url)
        own = own_error(e)  # a deadline or a cancel
        if own is not None:
            return own
        if isinstance(e, sx.UnauthorizedError):
            return SatClassifyError(f"{host} refused the credentials (HTTP 401): check the user name and password of "
                                    "the authentication configuration (AUTHCFG)")
        if isinstance(e, (sx.LTATriggered, sx.LTAError)):
            return SatClassifyError(f"the product is offline at {host} (long-term archive); its retrieval was "
                                    "requested: run again later or choose another date")
        if isinstance(e, sx.InvalidChecksumError):
            return SatClassifyError(f"checksum mismatch for the product downloaded from {host}: run again")
        resp = getattr(e, "response", None)
        code = getattr(resp, "status_code", None)
        if code == 429:
            return SatClassifyError(f"quota reached at {host} (HTTP 429 Too Many Requests): wait before trying again")
        if isinstance(code, int) and code >= 500:
            return SatClassifyError(f"the service at {host} is failing (HTTP {code}): try again later")
        if isinstance(e, (requests.ConnectionError, requests.Timeout)):
            return SatClassifyError(f"cannot reach {host} ({type(e).__name__}): the service is down or unreachable; "
                                    "check the URL and the network, or try again later")
        if isinstance(e, sx.SentinelAPIError):
            return SatClassifyError(self.http.redact(f"{what} at {host} failed: {getattr(e, 'msg', '') or e}"))
        return SatClassifyError(self.http.redact(f"{what} at {host} failed: {type(e).__name__}: {str(e)[:200]}"))

    def search(self, query: SearchQuery) -> List[Scene]:
        api = self._api()
        kw: Dict[str, Any] = {"platformname": "Sentinel-2", "producttype": PRODUCT_TYPES[query.product]}
        self.monitor.info(f"searching {host_of(self.url)} (DHuS OpenSearch)")
        try:
            if query.ids:
                res = api.query(filename=" OR ".join(f"{i}*" for i in query.ids), limit=int(query.limit) * 4)
            else:
                s, e = query.interval()
                if float(query.max_cloud) < 100:
                    kw["cloudcoverpercentage"] = (0, float(query.max_cloud))
                res = api.query(area=query.aoi_wkt, date=(s, e),
                                limit=int(query.limit) * 4, **kw)
        except Exception as e:
            raise self._translate(e, "searching")
        if not hasattr(res, "items"):
            raise SatClassifyError(f"malformed response from {host_of(self.url)}: not a list of products")
        return [scene_from_entry(k, v) for k, v in res.items()]

    def prepare(self, scenes: Sequence[Scene], bands: Sequence[str], workdir: str) -> List[Scene]:
        from ..stack import open_safe
        api = self._api()
        os.makedirs(workdir, exist_ok=True)
        out = []
        n = max(1, len(scenes))
        for i, s in enumerate(scenes):
            self.monitor.check()
            mon = self.monitor.sub(0.5 * i / n, 0.5 * (i + 1) / n)
            self.monitor.info(f"downloading {s.id} from {host_of(self.url)} to {workdir}")
            with self.http.watch(self.url, f"download of {s.id}", total=False, stall=True) as watch:
                api._tqdm = api.downloader._tqdm = lambda w=watch, m=mon, **kw: _Progress(w, m, **kw)
                try:
                    info = api.download(s.extra["uuid"], directory_path=workdir, checksum=True)
                except Exception as e:
                    if watch.fired == "stall":
                        raise watch.error("(the partial download is resumed on the next run)") from e
                    if watch.fired:
                        raise watch.error() from e
                    raise self._translate(e, "download")
            safe = open_safe(info["path"])
            safe.aoi_cover, safe.footprint, safe.rank, safe.source = s.aoi_cover, s.footprint, s.rank, "DHuS"
            out.append(safe)
        return out


class _Progress:
    """sentinelsat's progress bar (``_tqdm``): the bytes feed the download's watch (stall rule) and the progress."""

    def __init__(self, watch: Watch, monitor, total=None, initial=0, desc="", **_):
        self.watch, self.monitor = watch, monitor
        self.total, self.n = total, initial or 0
        self.downloading = str(desc).startswith("Downloading")
        if self.downloading:
            watch.arm()  # the answer's headers are in: the transfer starts

    def update(self, n=1):
        self.watch.progress(n)
        self.n += n
        if self.downloading and self.total:
            self.monitor.progress(self.n / self.total)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
