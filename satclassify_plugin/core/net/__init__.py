"""Sensor-neutral networking: one HTTP client with deadlines, one retry mechanism and the proxy.

* :class:`Deadlines` (``deadlines``) is the one deadline policy of every network call of the plugin: our own
  requests and downloads, pystac-client (STAC), sentinelsat (DHuS) and GDAL ``/vsicurl/`` reads. An API request
  (all its tries and waits) must be answered completely within ``total`` seconds; a transfer (download, GDAL
  read) fails when less than ``min_rate`` bytes/s arrive for ``stall`` seconds. Both derive from one number, the
  ``SATCLASSIFY_HTTP_TIMEOUT`` environment variable (seconds, default 120).
* :class:`Watch` (``watch``) enforces it for anything built on requests: a watchdog thread shuts the call's
  sockets down when the deadline passes, the transfer stalls or the user cancels, so the blocked read returns at
  once, whichever library is reading. :class:`DeadlineAdapter` (``adapter``, mounted by :meth:`HttpClient.mount`
  on our session and on pystac-client's and sentinelsat's) gives every request a watch, the retries and the proxy.
* :class:`DeadlineRetry` (``retry``) is the one retry mechanism: urllib3's ``Retry`` (connection errors, 429 and
  5xx, its ``Retry-After`` handling), its waits capped at ``max_wait`` and never past the deadline.
* :class:`ProxyConfig` (``proxy``): the proxy, handed in by the caller (QGIS's settings, from the algorithms) or
  read from ``HTTPS_PROXY`` / ``NO_PROXY``; GDAL reads get it as config options for their scope.
* :class:`HttpClient` (``client``) sends with all of this and raises a
  :class:`~satclassify_plugin.core.contract.errors.SatClassifyError` that says what went wrong (service down,
  quota reached, bad credentials, malformed response, proxy unreachable) and never contains a registered secret;
  :meth:`HttpClient.download` (``download``) is resumable and verified.
* Progress, messages and cancel come in through a :class:`~satclassify_plugin.core.contract.feedback.Monitor`.
"""

from ..contract.feedback import Canceled, Monitor
from .adapter import DeadlineAdapter
from .client import USER_AGENT, HttpClient
from .deadlines import TIMEOUT_ENV, DeadlineExceeded, Deadlines
from .download import md5_of
from .messages import host_of, parse_json_response, status_error
from .proxy import ProxyConfig
from .retry import RETRY_STATUS, DeadlineRetry
from .watch import Watch, own_error, raise_if_fired

__all__ = [
    "Canceled",
    "DeadlineAdapter",
    "DeadlineExceeded",
    "DeadlineRetry",
    "Deadlines",
    "HttpClient",
    "Monitor",
    "ProxyConfig",
    "RETRY_STATUS",
    "TIMEOUT_ENV",
    "USER_AGENT",
    "Watch",
    "host_of",
    "md5_of",
    "own_error",
    "parse_json_response",
    "raise_if_fired",
    "status_error",
]
