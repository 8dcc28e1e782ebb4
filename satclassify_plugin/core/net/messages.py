"""User-facing messages for failed HTTP calls (the status, the host, what to do), and reading a JSON answer."""

from __future__ import annotations

import json
from urllib.parse import urlparse

from ..contract.errors import SatClassifyError


def host_of(url: str) -> str:
    p = urlparse(url)
    return p.netloc.rsplit("@", 1)[-1] or url


def status_error(code: int, host: str, body: str = "", tries: int = 1, what: str = "request", url: str = "") -> str:
    """The user-facing message for a failed HTTP status."""
    if code == 429:
        return (
            f"quota reached at {host} (HTTP 429 Too Many Requests after {tries} tries): "
            "wait before trying again, or check your account's limits"
        )
    if code == 401:
        return (
            f"{host} refused the credentials (HTTP 401): check the user name and password "
            "of the authentication configuration (AUTHCFG)"
        )
    if code == 403 and "quota" in body.lower():
        return f"quota reached at {host} (HTTP 403: {body}): wait or check your account's limits"
    if code == 403:
        return (
            f"{host} denied access (HTTP 403{': ' + body if body else ''}): check that the "
            "account may use this service and download this product"
        )
    if code == 407:
        return (
            f"the proxy refused the request to {host} (HTTP 407 Proxy Authentication Required): check the "
            "proxy user and password (QGIS: Settings > Options > Network)"
        )
    if code >= 500:
        return f"the service at {host} is failing (HTTP {code} after {tries} tries): try again later"
    if code == 404:
        return f"{what}: not found at {host} (HTTP 404: {url.split('?')[0]}): check the URL and the product id"
    return f"{what} failed at {host}: HTTP {code}{': ' + body if body else ''}"


def unreachable(host: str, error: BaseException, tries: int, proxy: str = "") -> str:
    """The message for a request that got no answer (``proxy``: the proxy it went through, if any)."""
    import requests

    if proxy and isinstance(error, requests.exceptions.ProxyError):
        return (
            f"cannot reach {host} through the proxy {proxy} ({_reason(error)} after {tries} tries): check the "
            "proxy settings (QGIS: Settings > Options > Network; outside QGIS: HTTPS_PROXY / NO_PROXY) or try "
            "again later"
        )
    kind = (
        "timed out" if isinstance(error, requests.Timeout) or "ReadTimeoutError" in str(error) else "connection failed"
    )
    return (
        f"cannot reach {host} ({kind} after {tries} tries): the service is down or unreachable; check the URL "
        "and the network, or try again later"
    )


def _reason(error: BaseException) -> str:
    text = str(error)
    for k in ("Connection refused", "Tunnel connection failed", "Name or service not known", "timed out"):
        if k in text:
            return k.lower()
    return "connection failed"


def parse_json_response(r, what: str = "request", redact=lambda s: s):
    try:
        return r.json()
    except ValueError:
        raise SatClassifyError(
            redact(
                f"malformed response from {host_of(r.url or '')} for {what}: not JSON "
                f"({snippet(r, 80) or 'empty body'})"
            )
        )


def snippet(r, n: int = 200) -> str:
    """The start of an answer's body on one line; of an OData / OAuth error, its message only."""
    try:
        text = r.text or ""
    except Exception:
        return ""
    text = " ".join(text.split())
    try:
        j = json.loads(text)
        if isinstance(j, dict):
            for k in ("error_description", "detail", "message", "error"):
                v = j.get(k)
                if isinstance(v, dict):
                    v = v.get("message") or v.get("value")
                if isinstance(v, str) and v:
                    text = v
                    break
    except ValueError:
        pass
    return text[:n]
