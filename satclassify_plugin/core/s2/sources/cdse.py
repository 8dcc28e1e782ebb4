"""Copernicus Data Space Ecosystem (CDSE): OData catalogue search, OpenID token, SAFE zip download.

The catalogue is public: searching sends no credentials (no token, no Authorization header); only the
download needs a login (the token).

Search: ``GET <catalogue>/Products?$filter=...&$top=..&$orderby=ContentDate/Start desc&$expand=Attributes``,
following ``@odata.nextLink``. Token: ``POST <identity>/auth/realms/CDSE/protocol/openid-connect/token``
with ``grant_type=password``, ``client_id=cdse-public`` and the user's credentials. Download:
``GET <download>/Products(<id>)/$value`` with ``Authorization: Bearer``, redirects followed by hand
(the header is kept), resumed with ``Range`` into ``<name>.zip.part``, MD5 checked, then read through
the SAFE import (``/vsizip/``, nothing extracted).

With a non-default URL (mirror, test server) the three services share its root:
``<root>/odata/v1`` (catalogue and downloads) and ``<root>/auth/realms/CDSE/protocol/openid-connect/token``.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from ...contract.errors import SatClassifyError
from ..http import host_of
from ..products import PRODUCT_TYPES, Scene, format_baseline, parse_datetime
from . import SearchQuery, Source

CATALOGUE = "https://catalogue.dataspace.copernicus.eu/odata/v1"
DOWNLOAD = "https://download.dataspace.copernicus.eu/odata/v1"
IDENTITY = "https://identity.dataspace.copernicus.eu"
TOKEN_PATH = "/auth/realms/CDSE/protocol/openid-connect/token"
_UUID = re.compile(r"^[0-9a-fA-F-]{8,64}$")


def odata_filter(query: SearchQuery, aoi_wkt_4326: str) -> str:
    """The OData ``$filter`` of a search (dates inclusive, whole days)."""
    if query.ids:
        names = " or ".join("Name eq '{}'".format(i.replace("'", "''")) for i in query.ids)
        ids = [i for i in query.ids if _UUID.match(i)]
        by_id = " or ".join(f"Id eq {i}" for i in ids)
        return f"({names}{' or ' + by_id if by_id else ''})"
    s, e = query.interval()
    parts = [
        "Collection/Name eq 'SENTINEL-2'",
        f"OData.CSC.Intersects(area=geography'SRID=4326;{aoi_wkt_4326}')",
        f"ContentDate/Start ge {s.strftime('%Y-%m-%dT%H:%M:%S.000Z')}",
        f"ContentDate/Start le {e.strftime('%Y-%m-%dT%H:%M:%S.999Z')}",
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
        f"att/OData.CSC.StringAttribute/Value eq '{PRODUCT_TYPES[query.product]}')",
    ]
    if float(query.max_cloud) < 100:
        parts.append("Attributes/OData.CSC.DoubleAttribute/any(att:att/Name eq 'cloudCover' and "
                     f"att/OData.CSC.DoubleAttribute/Value le {float(query.max_cloud):.2f})")
    return " and ".join(parts)


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
            if (isinstance(x, dict) and str(x.get("Algorithm", "")).upper() == "MD5"
                    and isinstance(x.get("Value"), str) and re.fullmatch(r"[0-9a-fA-F]{32}", x["Value"])):
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
    platform = f"sentinel-2{str(plat).lower()}" if isinstance(plat, str) and len(plat) == 1 else (
        name[:3].lower().replace("s2", "sentinel-2") if name.startswith("S2") else "")
    size = p.get("ContentLength")
    ptype = a.get("productType") if isinstance(a.get("productType"), str) else ""
    level = "L1C" if "1C" in (ptype or name[4:10]) else "L2A"
    return Scene(id=name[:-5] if name.endswith(".SAFE") else name, datetime=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 platform=platform, tile_id=tile, cloud=num(a.get("cloudCover")), baseline=base, source="CDSE",
                 footprint=_geometry(p), product_type=level, offset_applied=False,
                 extra={"uuid": pid, "name": name, "md5": _md5(p),
                        "size": int(size) if isinstance(size, int) and not isinstance(size, bool) and size > 0
                        else None, "online": p.get("Online", True) is not False})


class CdseSource(Source):
    name = "CDSE"
    default_url = CATALOGUE
    download_needs_login = True  # the catalogue is public

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._token: Optional[str] = None
        if self.url.rstrip("/") == CATALOGUE:
            self.catalogue, self.download_root, self.token_url = CATALOGUE, DOWNLOAD, IDENTITY + TOKEN_PATH
        else:
            root = re.sub(r"/odata/v1$", "", self.url)
            self.catalogue = self.download_root = root + "/odata/v1"
            self.token_url = root + TOKEN_PATH

    # -- token ---------------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token:
            return self._token
        self.check_fetch()
        self.monitor.info(f"requesting an access token from {host_of(self.token_url)}")
        r = self.http.request("POST", self.token_url, what="login", ok_status=(200, 400, 401),
                              data={"grant_type": "password", "username": self.credentials.username,
                                    "password": self.credentials.password, "client_id": "cdse-public"})
        try:
            j = r.json()
        except ValueError:
            j = None
        if r.status_code in (400, 401):
            err = j.get("error") if isinstance(j, dict) else None
            if r.status_code == 401 or err in ("invalid_grant", "unauthorized_client", "invalid_client"):
                raise SatClassifyError(f"{host_of(self.token_url)} refused the credentials ({err or 'HTTP 401'}): "
                                       "check the user name and password of the authentication configuration "
                                       "(AUTHCFG)")
            raise SatClassifyError(f"login at {host_of(self.token_url)} failed: HTTP 400 ({err or 'bad request'})")
        tok = j.get("access_token") if isinstance(j, dict) else None
        if not isinstance(tok, str) or not tok:
            raise SatClassifyError(f"malformed response from {host_of(self.token_url)}: no access_token in the "
                                   "login answer")
        self.http.add_secret(tok)
        self._token = tok
        return tok

    def _bearer(self, renew: bool = False) -> Dict[str, str]:
        """The Authorization header; ``renew`` logs in again (CDSE access tokens live about 10 minutes,
        shorter than a few large downloads)."""
        if renew:
            self._token = None
        return {"Authorization": f"Bearer {self.token()}"}

    # -- search --------------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> List[Scene]:
        wkt = url_aoi(query.aoi_wkt)
        params = {"$filter": odata_filter(query, wkt), "$top": str(min(int(query.limit) * 4, 1000)),
                  "$orderby": "ContentDate/Start desc", "$expand": "Attributes"}
        url: Optional[str] = self.catalogue + "/Products"
        out: List[Scene] = []
        self.monitor.info(f"searching {host_of(self.catalogue)} (OData)")
        while url and len(out) < int(query.limit) * 4:
            self.monitor.check()
            j = self.http.get_json(url, what="catalogue search", params=params)
            params = None  # the next link carries them
            if not isinstance(j, dict) or not isinstance(j.get("value"), list):
                raise SatClassifyError(f"malformed response from {host_of(self.catalogue)}: no 'value' list of "
                                       "products")
            for p in j["value"]:
                s = scene_from_product(p)
                if s.product_type == query.product or query.ids:
                    out.append(s)
            nxt = j.get("@odata.nextLink")
            url = nxt if isinstance(nxt, str) and nxt.startswith(("http://", "https://")) else None
        return out

    # -- download ------------------------------------------------------------------------------------
    def prepare(self, scenes: Sequence[Scene], bands: Sequence[str], workdir: str) -> List[Scene]:
        from ..stack import open_safe
        out = []
        n = max(1, len(scenes))
        for i, s in enumerate(scenes):
            if not s.extra.get("online", True):
                raise SatClassifyError(f"product {s.id} is offline (long-term archive): order it at the service "
                                       "first, or choose another date")
            dest = os.path.join(workdir, s.id + ".zip")
            url = f"{self.download_root}/Products({s.extra['uuid']})/$value"
            self.monitor.info(f"downloading {s.id} ({(s.extra.get('size') or 0) / 1e6:.0f} MB) to {dest}")
            self.http.download(url, dest, headers=self._bearer(),
                               expected_md5=s.extra.get("md5"), expected_size=s.extra.get("size"),
                               monitor=self.monitor.sub(0.5 * i / n, 0.5 * (i + 1) / n),
                               reauth=lambda: self._bearer(renew=True))
            safe = open_safe(dest)
            safe.aoi_cover, safe.footprint, safe.rank, safe.source = s.aoi_cover, s.footprint, s.rank, "CDSE"
            out.append(safe)
        return out
