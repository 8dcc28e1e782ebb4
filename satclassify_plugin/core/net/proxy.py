"""Which proxy a request goes through: :class:`ProxyConfig`, a plain value the core gets from its caller.

Inside QGIS the algorithms build it from QGIS's network settings (Settings > Options > Network, the same
settings QgsNetworkAccessManager applies); outside QGIS (headless, scripts) :meth:`ProxyConfig.from_env` reads
the standard variables ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` (either case). The
client's sessions (ours, pystac-client's, sentinelsat's) send through :meth:`ProxyConfig.for_url` (urllib3's
ProxyManager, via requests), GDAL's ``/vsicurl/`` reads through :meth:`ProxyConfig.gdal_options`.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from dataclasses import dataclass, field, replace
from typing import Dict, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote, unquote, urlparse

from ..contract.errors import SatClassifyError


@dataclass(frozen=True)
class ProxyConfig:
    """``http`` / ``https``: the proxy URL for requests to http:// / https:// URLs (``http://host:port``,
    ``socks5h://host:port``; empty = direct); ``user`` / ``password``: the proxy login (or in the URL);
    ``no_proxy``: hosts reached directly (``NO_PROXY`` syntax: ``example.org`` also covers its subdomains,
    ``.example.org``, ``host:port``, an IP address or network, ``*``); ``exclude``: URL prefixes reached directly
    (QGIS's "no proxy" list, e.g. ``http://intranet``); ``system_for``: URL prefixes sent through ``system`` (the
    platform's proxy, :meth:`from_system`) instead (QGIS's "excluded URLs"); ``origin``: where it came from, for
    messages."""

    http: str = ""
    https: str = ""
    user: str = ""
    password: str = field(default="", repr=False)
    no_proxy: Tuple[str, ...] = ()
    exclude: Tuple[str, ...] = ()
    system_for: Tuple[str, ...] = ()
    system: Optional["ProxyConfig"] = field(default=None, repr=False)
    origin: str = ""

    def __bool__(self) -> bool:
        return bool(self.http or self.https)

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_url(
        cls,
        url: str,
        user: str = "",
        password: str = "",
        no_proxy: Sequence[str] = (),
        exclude: Sequence[str] = (),
        origin: str = "",
        schemes: Sequence[str] = ("http", "https"),
    ) -> "ProxyConfig":
        """One proxy for the given URL schemes (``host:port`` without a scheme means an HTTP proxy)."""
        url = _scheme((url or "").strip())
        return cls(
            http=url if "http" in schemes else "",
            https=url if "https" in schemes else "",
            user=user,
            password=password,
            no_proxy=tuple(_split(no_proxy)),
            exclude=tuple(e.strip() for e in exclude if e and e.strip()),
            origin=origin,
        )

    @classmethod
    def from_system(cls) -> "ProxyConfig":
        """The platform's proxy as Python sees it: the environment variables, and where none is set the Windows
        registry or the macOS network settings (what Qt's "system proxy" reads too)."""
        import urllib.request

        found = {f"{k}_proxy": v for k, v in urllib.request.getproxies().items()}
        return replace(cls.from_env(found), origin="system proxy settings")

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "ProxyConfig":
        """The standard proxy variables (``https_proxy``, ``http_proxy``, ``all_proxy``, ``no_proxy``; lower case
        wins over upper case, as in curl and requests). Empty when none is set."""
        env = os.environ if environ is None else environ

        def get(name):
            return (env.get(name) or env.get(name.upper()) or "").strip()

        every = get("all_proxy")
        http, https = get("http_proxy") or every, get("https_proxy") or every
        return cls(
            http=_scheme(http),
            https=_scheme(https),
            no_proxy=tuple(_split([get("no_proxy")])),
            origin="environment (HTTPS_PROXY / HTTP_PROXY / NO_PROXY)",
        )

    # -- use -------------------------------------------------------------------------------------------
    def bypass(self, url: str) -> bool:
        """True when ``url`` is reached directly (in ``exclude`` or ``no_proxy``)."""
        if any(url.startswith(p) for p in self.exclude):
            return True
        p = urlparse(url)
        host = (p.hostname or "").lower()
        port = p.port or {"http": 80, "https": 443}.get(p.scheme)
        return any(_host_matches(host, port, rule) for rule in self.no_proxy)

    def proxy_for(self, url: str) -> str:
        """The proxy URL (login included) a request to ``url`` goes through; "" = direct."""
        if self.system is not None and any(url.startswith(p) for p in self.system_for):
            return self.system.proxy_for(url)
        proxy = self.https if url.lower().startswith("https:") else self.http if url.lower().startswith("http:") else ""
        if not proxy or self.bypass(url):
            return ""
        return _with_login(proxy, self.user, self.password)

    def for_url(self, url: str) -> Dict[str, str]:
        """requests' ``proxies`` for one request (``{}`` = direct)."""
        proxy = self.proxy_for(url)
        return {urlparse(url).scheme.lower(): proxy} if proxy else {}

    def requests_proxies(self) -> Dict[str, str]:
        """requests' ``proxies`` for a session (no per-URL exclusions: use :meth:`for_url` where possible)."""
        out = {
            k: _with_login(v, self.user, self.password) for k, v in (("http", self.http), ("https", self.https)) if v
        }
        if self.no_proxy:
            out["no_proxy"] = ",".join(self.no_proxy)
        return out

    def gdal_options(self, urls: Sequence[str] = ()) -> Dict[str, str]:
        """GDAL config options sending /vsicurl/ reads through the proxy (GDAL_HTTP_PROXY, GDAL_HTTPS_PROXY,
        GDAL_HTTP_PROXYUSERPWD). GDAL takes one proxy per scheme for every read: with ``urls`` given and all of
        them reached directly, none is set; otherwise the proxy covers all reads of the scope."""
        if not self or (urls and all(self.bypass(u) for u in urls)):
            return {}
        out = {}
        for key, proxy in (("GDAL_HTTP_PROXY", self.http or self.https), ("GDAL_HTTPS_PROXY", self.https)):
            if proxy:
                p = urlparse(proxy)
                scheme = "" if p.scheme in ("http", "") else p.scheme + "://"
                out[key] = f"{scheme}{p.hostname}{':' + str(p.port) if p.port else ''}"
        user, password = self.login()
        if user:
            out["GDAL_HTTP_PROXYUSERPWD"] = f"{user}:{password}"
        return out

    def login(self) -> Tuple[str, str]:
        """(user, password) of the proxy: the given ones, else those written in the proxy URL."""
        if self.user:
            return self.user, self.password
        p = urlparse(self.https or self.http)
        return unquote(p.username or ""), unquote(p.password or "")

    def secrets(self) -> Tuple[str, ...]:
        """What must never appear in a message: the password and the URLs that carry it."""
        _, password = self.login()
        return tuple(s for s in (password, quote(password, safe="")) if s)

    def describe(self) -> str:
        """The proxy for messages (no login)."""
        p = urlparse(self.https or self.http)
        return f"{p.hostname}:{p.port}" if p.port else str(p.hostname or "")

    def check(self) -> "ProxyConfig":
        """Refuse what cannot work, with the fix: a SOCKS proxy needs PySocks in requests."""
        if self.system is not None:
            self.system.check()
        for proxy in (self.http, self.https):
            scheme = urlparse(proxy).scheme.lower()
            if scheme.startswith("socks") and importlib.util.find_spec("socks") is None:
                raise SatClassifyError(
                    f"the proxy {self.describe()} ({self.origin or 'proxy settings'}) is a SOCKS proxy, which needs "
                    "the Python package 'PySocks': install it (python3 -m pip install --user PySocks) or use an "
                    "HTTP proxy"
                )
            if proxy and scheme not in ("http", "https", "socks5", "socks5h", "socks4", "socks4a"):
                raise SatClassifyError(
                    f"unsupported proxy '{self.describe()}' (scheme {scheme}): use an HTTP or SOCKS5 proxy"
                )
        return self


def _scheme(url: str) -> str:
    return url if not url or "://" in url else "http://" + url


def _split(values: Sequence[str]):
    for v in values:
        for part in str(v or "").replace(";", ",").replace(" ", ",").split(","):
            if part.strip():
                yield part.strip().lower()


def _host_matches(host: str, port: Optional[int], rule: str) -> bool:
    if rule == "*":
        return True
    rule_host, _, rule_port = rule.rpartition(":") if rule.count(":") == 1 else (rule, "", "")
    if rule_port and (not rule_port.isdigit() or int(rule_port) != port):
        return False
    rule_host = rule_host.strip("[]")
    try:
        net = ipaddress.ip_network(rule_host, strict=False)
        return ipaddress.ip_address(host.strip("[]")) in net
    except ValueError:
        pass
    rule_host = rule_host.lstrip(".")
    return bool(rule_host) and (host == rule_host or host.endswith("." + rule_host))


def _with_login(proxy: str, user: str, password: str) -> str:
    if not user:
        return proxy
    p = urlparse(proxy)
    login = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return p._replace(netloc=f"{login}@{p.hostname}{':' + str(p.port) if p.port else ''}").geturl()
