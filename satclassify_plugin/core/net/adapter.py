"""The requests adapter every session of the plugin is mounted with (ours, pystac-client's, sentinelsat's):
each request gets a :class:`~.watch.Watch` (deadline, cancel), its connections are watched, it is retried by
:class:`~.retry.DeadlineRetry` and sent through the proxy of :class:`~.proxy.ProxyConfig`."""

from __future__ import annotations

from typing import Callable, Optional
from urllib.parse import urlparse

from requests.adapters import HTTPAdapter

from ..contract.errors import SatClassifyError
from .deadlines import Deadlines
from .messages import host_of
from .proxy import ProxyConfig
from .watch import Watch, raise_if_fired, remaining, watch_pools


class DeadlineAdapter(HTTPAdapter):
    """A streamed answer is watched up to its headers; the caller watches its body (see
    :func:`~satclassify_plugin.core.net.download.download`). ``proxy``: None leaves requests' own choice."""

    def __init__(
        self,
        policy: Optional[Deadlines] = None,
        is_canceled: Optional[Callable[[], bool]] = None,
        proxy: Optional[ProxyConfig] = None,
        **kw,
    ):
        self.policy = policy or Deadlines()
        self.is_canceled = is_canceled
        self.proxy = proxy
        super().__init__(**kw)

    def init_poolmanager(self, *a, **kw):
        super().init_poolmanager(*a, **kw)
        watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy, **kw):
        manager = super().proxy_manager_for(proxy, **kw)
        watch_pools(manager)
        return manager

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        if self.proxy is not None:
            proxies = self.proxy.for_url(request.url)
        what = f"{request.method} {urlparse(request.url).path or '/'}"
        own = None if remaining() <= self.policy.total else self.policy.total  # an enclosing call's deadline rules
        with Watch(host_of(request.url), what, self.policy, total=own, is_canceled=self.is_canceled):
            raise_if_fired()
            try:
                r = super().send(
                    request,
                    stream=stream,
                    timeout=_clamped(timeout, self.policy),
                    verify=verify,
                    cert=cert,
                    proxies=proxies,
                )
                if getattr(r, "raw", None) is not None and hasattr(r.raw, "enforce_content_length"):
                    r.raw.enforce_content_length = True  # a body cut short is an error, not a short answer
                if not stream:
                    r.content  # noqa: B018 - read the body while watched
            except SatClassifyError:
                raise
            except Exception as e:
                raise_if_fired(e)
                raise
            raise_if_fired()
        return r


def _clamped(timeout, policy: Deadlines):
    """(connect, read) from a requests timeout, the policy's when none, cut to the time left by the watches."""
    if timeout is None:
        connect, read = policy.timeout
    elif isinstance(timeout, tuple):
        connect, read = (
            policy.timeout[0] if timeout[0] is None else timeout[0],
            policy.timeout[1] if timeout[1] is None else timeout[1],
        )
    elif isinstance(timeout, (int, float)):
        connect = read = float(timeout)
    else:  # urllib3 Timeout object: leave it
        return timeout
    left = max(0.05, remaining() + 1.0)  # just beyond the deadline: the watch ends the call first
    return (min(float(connect), left), min(float(read), left))
