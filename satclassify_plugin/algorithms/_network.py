"""QGIS's network settings for the core's HTTP (not a tool: the provider skips modules whose name starts with "_").

QGIS keeps its proxy under Settings > Options > Network in the QgsSettings keys ``proxy/proxyEnabled``,
``proxy/proxyType`` (DefaultProxy = the system's proxy, HttpProxy, HttpCachingProxy, Socks5Proxy,
FtpCachingProxy), ``proxy/proxyHost``, ``proxy/proxyPort``, ``proxy/proxyUser``, ``proxy/proxyPassword``,
``proxy/authcfg`` (a Basic authentication configuration holding the proxy login), ``proxy/noProxyUrls`` (URL
prefixes reached directly) and ``proxy/proxyExcludedUrls`` (URL prefixes sent through the system's proxy) - the
same keys on QGIS 3.22 to 3.44; QgsNetworkAccessManager applies them to QGIS's own requests. The core is
qgis-free and uses requests/urllib3 and GDAL, which never see those settings: :func:`qgis_proxy` turns them into
the plain :class:`~satclassify_plugin.core.net.ProxyConfig` the core's HttpClient takes (its sessions, and GDAL's
/vsicurl/ reads through config options set for the reads only).

Read it in the main thread (``prepareAlgorithm``): loading ``proxy/authcfg`` may ask for the master password.
"""

from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsProcessingException, QgsSettings

ORIGIN = "QGIS proxy settings (Settings > Options > Network)"


def _bool(v):
    return v if isinstance(v, bool) else str(v).strip().lower() in ("true", "1", "yes")


def _list(v):
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return [str(x).strip() for x in v if str(x).strip()]
    return [x.strip() for x in str(v).split("|") if x.strip()]


def _auth_login(authcfg):
    """(user, password) of the Basic authentication configuration ``authcfg``."""
    cfg = QgsAuthMethodConfig()
    ok = QgsApplication.authManager().loadAuthenticationConfig(authcfg, cfg, True)
    if isinstance(ok, tuple):  # some PyQGIS builds return (ok, config)
        ok, cfg = ok[0], ok[1] if len(ok) > 1 else cfg
    if not ok or not cfg.isValid(True) or cfg.method() != "Basic":
        raise QgsProcessingException(
            f"the proxy's authentication configuration '{authcfg}' ({ORIGIN}) cannot be loaded or is not of type "
            "Basic: check it under Settings > Options > Authentication, or enter the proxy user and password"
        )
    return cfg.config("username") or "", cfg.config("password") or ""


def qgis_proxy(settings=None):
    """QGIS's proxy as a :class:`ProxyConfig`, or None when QGIS uses no proxy of its own (proxy disabled: the
    core then honours the standard environment variables, as before)."""
    from ..core.net import ProxyConfig

    s = settings or QgsSettings()
    if not _bool(s.value("proxy/proxyEnabled", False)):
        return None
    kind = str(s.value("proxy/proxyType", "") or "DefaultProxy")
    direct = tuple(_list(s.value("proxy/noProxyUrls")))
    via_system = tuple(_list(s.value("proxy/proxyExcludedUrls")))
    if kind == "DefaultProxy":
        system = ProxyConfig.from_system()
        return ProxyConfig(
            system.http,
            system.https,
            no_proxy=system.no_proxy,
            exclude=direct + via_system,
            origin=f"{ORIGIN}: system proxy",
        )
    host = str(s.value("proxy/proxyHost", "") or "").strip()
    if not host or kind == "FtpCachingProxy":  # no proxy for http(s) then, as in QGIS
        return ProxyConfig(origin=ORIGIN)
    port = str(s.value("proxy/proxyPort", "") or "").strip()
    user = str(s.value("proxy/proxyUser", "") or "")
    password = str(s.value("proxy/proxyPassword", "") or "")
    authcfg = str(s.value("proxy/authcfg", "") or "").strip()
    if authcfg:
        user, password = _auth_login(authcfg)
    scheme = "socks5h" if kind == "Socks5Proxy" else "http"
    schemes = ("http",) if kind == "HttpCachingProxy" else ("http", "https")  # a caching proxy serves http only
    cfg = ProxyConfig.from_url(
        f"{scheme}://{host}{':' + port if port and port != '0' else ''}",
        user,
        password,
        exclude=direct,
        origin=ORIGIN,
        schemes=schemes,
    )
    if via_system:
        from dataclasses import replace

        cfg = replace(cfg, system_for=via_system, system=ProxyConfig.from_system())
    return cfg
