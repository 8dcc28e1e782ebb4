"""HttpClient: requests through the deadline policy, the one retry mechanism and the proxy, with clear errors."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import requests

from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from .adapter import DeadlineAdapter
from .deadlines import Deadlines
from .messages import host_of, parse_json_response, snippet, status_error, unreachable
from .proxy import ProxyConfig
from .retry import DeadlineRetry
from .watch import Watch

USER_AGENT = "SatClassify-QGIS-plugin"
REDIRECT_STATUS = (301, 302, 303, 307, 308)


class HttpClient:
    """Requests with retries (:class:`~.retry.DeadlineRetry`: connection errors, 429 and 5xx, ``Retry-After`` up
    to ``max_wait``), the :class:`~.deadlines.Deadlines` policy (``policy``; default :meth:`Deadlines.from_env`)
    and a proxy (``proxy``; default :meth:`ProxyConfig.from_env`, the standard variables). Errors are
    :class:`~satclassify_plugin.core.contract.errors.SatClassifyError` saying what went wrong, never containing a
    secret registered with :meth:`add_secret`."""

    def __init__(
        self,
        session: Optional[requests.Session] = None,
        retries: int = 3,
        backoff: float = 1.0,
        max_wait: float = 30.0,
        monitor: Optional[Monitor] = None,
        policy: Optional[Deadlines] = None,
        proxy: Optional[ProxyConfig] = None,
    ):
        self.policy = policy or Deadlines.from_env()
        self.proxy = (ProxyConfig.from_env() if proxy is None else proxy).check()
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_wait = max_wait
        self.monitor = monitor or Monitor()
        self._secrets: List[str] = []
        for s in self.proxy.secrets():
            self.add_secret(s)
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self.mount(self.session)

    @property
    def timeout(self):
        """(connect, read) for requests-based libraries."""
        return self.policy.timeout

    # -- the policy for other libraries ----------------------------------------------------------------
    def retry(self) -> DeadlineRetry:
        """This client's retries (announced through the monitor)."""
        return DeadlineRetry.for_client(
            self.retries, self.backoff, self.max_wait, on_retry=lambda m: self.monitor.info(self.redact(m))
        )

    def mount(self, session: requests.Session) -> requests.Session:
        """Give ``session`` (ours, pystac-client's, sentinelsat's) this client's deadlines, cancel, retries and
        proxy."""
        for prefix in ("http://", "https://"):
            session.mount(
                prefix, DeadlineAdapter(self.policy, self.monitor.canceled, proxy=self.proxy, max_retries=self.retry())
            )
        return session

    def watch(self, url: str, what: str = "request", total: bool = True, stall: bool = False) -> Watch:
        """A :class:`~.watch.Watch` on ``url``'s host with this client's policy and cancel: ``total`` bounds the
        call by ``policy.total``; ``stall`` applies the stall rule once armed (transfers)."""
        return Watch(
            host_of(url),
            what,
            self.policy,
            total=self.policy.total if total else None,
            stall=stall,
            is_canceled=self.monitor.canceled,
        )

    def gdal_options(self, urls: Sequence[str] = ()) -> Dict[str, str]:
        """GDAL config options for /vsicurl/ reads (of ``urls``, when known) under this client's policy, retries
        and proxy; apply them for the reads only (``core.s2.stack.gdal_remote_config`` restores the old values)."""
        return {**self.policy.gdal_options(self.retries), **self.proxy.gdal_options(urls)}

    # -- secrets ---------------------------------------------------------------------------------------
    def add_secret(self, value: Optional[str]) -> None:
        """Never let ``value`` appear in an error message of this client."""
        if value and len(str(value)) >= 3:
            self._secrets.append(str(value))

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _error(self, message: str) -> SatClassifyError:
        return SatClassifyError(self.redact(message))

    # -- requests --------------------------------------------------------------------------------------
    def request(self, method: str, url: str, what: str = "request", ok_status=(200,), **kw) -> requests.Response:
        """Send (retried by urllib3); return the response when its status is in ``ok_status`` (or a redirect when
        ``allow_redirects=False``), raise a clear SatClassifyError otherwise. The whole call, tries and waits
        included, ends within ``policy.total`` seconds (a streamed answer: up to its headers)."""
        kw.setdefault("timeout", self.policy.timeout)
        host = host_of(url)
        self.monitor.check()
        with self.watch(url, what) as watch:
            try:
                response = self.session.request(method, url, **kw)
            except (requests.ConnectionError, requests.Timeout) as e:
                watch.check()  # the deadline or cancel cut the call
                raise self._error(
                    unreachable(host, e, watch.tries, self.proxy.proxy_for(url) and self.proxy.describe())
                ) from e
            watch.check()
        code = response.status_code
        if code in ok_status or (not kw.get("allow_redirects", True) and code in REDIRECT_STATUS):
            return response
        body = snippet(response)
        response.close()
        raise self._error(status_error(code, host, body, watch.tries, what, url))

    def get_json(self, url: str, what: str = "request", method: str = "GET", **kw):
        r = self.request(method, url, what=what, **kw)
        return parse_json_response(r, what, self.redact)

    def download(
        self,
        url: str,
        dest: str,
        headers: Optional[Dict[str, str]] = None,
        expected_md5: Optional[str] = None,
        expected_size: Optional[int] = None,
        max_redirects: int = 5,
        chunk: int = 1 << 16,
        monitor: Optional[Monitor] = None,
        reauth: Optional[Callable[[], Dict[str, str]]] = None,
    ) -> str:
        """Download ``url`` to ``dest``, resumable (see :func:`~.download.download`). Returns ``dest``."""
        from .download import download

        return download(
            self,
            url,
            dest,
            headers=headers,
            expected_md5=expected_md5,
            expected_size=expected_size,
            max_redirects=max_redirects,
            chunk=chunk,
            monitor=monitor,
            reauth=reauth,
        )
