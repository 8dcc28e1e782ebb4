"""The Copernicus Data Space Ecosystem (CDSE) OData catalogue: OpenID token, paged product search, download.

The catalogue is public: searching sends no credentials (no token, no Authorization header); only the
download needs a login (the token).

Search: ``GET <catalogue>/Products?$filter=...&$top=..&$orderby=ContentDate/Start desc&$expand=Attributes``,
following ``@odata.nextLink``. Token: ``POST <identity>/auth/realms/CDSE/protocol/openid-connect/token``
with ``grant_type=password``, ``client_id=cdse-public`` and the user's credentials. Download:
``GET <download>/Products(<id>)/$value`` with ``Authorization: Bearer``, redirects followed by hand
(the header is kept), resumed with ``Range`` into ``<name>.part``, MD5 checked.

With a non-default URL (mirror, test server) the three services share its root:
``<root>/odata/v1`` (catalogue and downloads) and ``<root>/auth/realms/CDSE/protocol/openid-connect/token``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from ..net import HttpClient, host_of
from . import Credentials

CATALOGUE = "https://catalogue.dataspace.copernicus.eu/odata/v1"
DOWNLOAD = "https://download.dataspace.copernicus.eu/odata/v1"
IDENTITY = "https://identity.dataspace.copernicus.eu"
TOKEN_PATH = "/auth/realms/CDSE/protocol/openid-connect/token"
_UUID = re.compile(r"^[0-9a-fA-F-]{8,64}$")


def odata_filter(
    collection: str,
    product_type: str = "",
    aoi_wkt_4326: str = "",
    start=None,
    end=None,
    max_cloud: float = 100.0,
    ids: Sequence[str] = (),
) -> str:
    """The OData ``$filter`` of a search: by ``ids`` (product names or UUIDs), else by collection, AOI (ISO WKT,
    EPSG:4326), ``start``..``end`` (aware datetimes, inclusive), product type and cloud cover."""
    if ids:
        names = " or ".join("Name eq '{}'".format(i.replace("'", "''")) for i in ids)
        uuids = [i for i in ids if _UUID.match(i)]
        by_id = " or ".join(f"Id eq {i}" for i in uuids)
        return f"({names}{' or ' + by_id if by_id else ''})"
    parts = [f"Collection/Name eq '{collection}'"]
    if aoi_wkt_4326:
        parts.append(f"OData.CSC.Intersects(area=geography'SRID=4326;{aoi_wkt_4326}')")
    if start is not None:
        parts.append(f"ContentDate/Start ge {start.strftime('%Y-%m-%dT%H:%M:%S.000Z')}")
    if end is not None:
        parts.append(f"ContentDate/Start le {end.strftime('%Y-%m-%dT%H:%M:%S.999Z')}")
    if product_type:
        parts.append(
            "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
            f"att/OData.CSC.StringAttribute/Value eq '{product_type}')"
        )
    if float(max_cloud) < 100:
        parts.append(
            "Attributes/OData.CSC.DoubleAttribute/any(att:att/Name eq 'cloudCover' and "
            f"att/OData.CSC.DoubleAttribute/Value le {float(max_cloud):.2f})"
        )
    return " and ".join(parts)


class ODataCatalog:
    """CDSE's OData services (catalogue, identity, download) for ``url`` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        http: HttpClient,
        credentials: Optional[Credentials] = None,
        require_login: Optional[Callable[[], None]] = None,
    ):
        self.http = http
        self.credentials = credentials or Credentials()
        self.require_login = require_login  # raises the caller's "needs a login" error
        self._token: Optional[str] = None
        if url.rstrip("/") == CATALOGUE:
            self.catalogue, self.download_root, self.token_url = CATALOGUE, DOWNLOAD, IDENTITY + TOKEN_PATH
        else:
            root = re.sub(r"/odata/v1$", "", url.rstrip("/"))
            self.catalogue = self.download_root = root + "/odata/v1"
            self.token_url = root + TOKEN_PATH

    # -- token ---------------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token:
            return self._token
        if self.require_login is not None:
            self.require_login()
        self.http.monitor.info(f"requesting an access token from {host_of(self.token_url)}")
        r = self.http.request(
            "POST",
            self.token_url,
            what="login",
            ok_status=(200, 400, 401),
            data={
                "grant_type": "password",
                "username": self.credentials.username,
                "password": self.credentials.password,
                "client_id": "cdse-public",
            },
        )
        try:
            j = r.json()
        except ValueError:
            j = None
        if r.status_code in (400, 401):
            err = j.get("error") if isinstance(j, dict) else None
            if r.status_code == 401 or err in ("invalid_grant", "unauthorized_client", "invalid_client"):
                raise SatClassifyError(
                    f"{host_of(self.token_url)} refused the credentials ({err or 'HTTP 401'}): "
                    "check the user name and password of the authentication configuration "
                    "(AUTHCFG)"
                )
            raise SatClassifyError(f"login at {host_of(self.token_url)} failed: HTTP 400 ({err or 'bad request'})")
        tok = j.get("access_token") if isinstance(j, dict) else None
        if not isinstance(tok, str) or not tok:
            raise SatClassifyError(
                f"malformed response from {host_of(self.token_url)}: no access_token in the login answer"
            )
        self.http.add_secret(tok)
        self._token = tok
        return tok

    def bearer(self, renew: bool = False) -> Dict[str, str]:
        """The Authorization header; ``renew`` logs in again (CDSE access tokens live about 10 minutes,
        shorter than a few large downloads)."""
        if renew:
            self._token = None
        return {"Authorization": f"Bearer {self.token()}"}

    # -- search --------------------------------------------------------------------------------------
    def products(self, filter_: str, top: int, enough: Callable[[], bool]) -> Iterator[Dict[str, Any]]:
        """The products matching ``filter_`` (newest first), ``top`` per page, following the next links until
        ``enough()`` says so (asked before each page) or the pages end."""
        params: Optional[Dict[str, str]] = {
            "$filter": filter_,
            "$top": str(top),
            "$orderby": "ContentDate/Start desc",
            "$expand": "Attributes",
        }
        url: Optional[str] = self.catalogue + "/Products"
        self.http.monitor.info(f"searching {host_of(self.catalogue)} (OData)")
        while url and not enough():
            self.http.monitor.check()
            j = self.http.get_json(url, what="catalogue search", params=params)
            params = None  # the next link carries them
            if not isinstance(j, dict) or not isinstance(j.get("value"), list):
                raise SatClassifyError(
                    f"malformed response from {host_of(self.catalogue)}: no 'value' list of products"
                )
            yield from j["value"]
            nxt = j.get("@odata.nextLink")
            url = nxt if isinstance(nxt, str) and nxt.startswith(("http://", "https://")) else None

    # -- download ------------------------------------------------------------------------------------
    def download(
        self,
        uuid: str,
        dest: str,
        md5: Optional[str] = None,
        size: Optional[int] = None,
        monitor: Optional[Monitor] = None,
    ) -> str:
        """Download product ``uuid`` to ``dest`` (logged in; a token that expires meanwhile is renewed once)."""
        return self.http.download(
            f"{self.download_root}/Products({uuid})/$value",
            dest,
            headers=self.bearer(),
            expected_md5=md5,
            expected_size=size,
            monitor=monitor,
            reauth=lambda: self.bearer(renew=True),
        )
