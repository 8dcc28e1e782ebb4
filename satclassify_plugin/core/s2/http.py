"""HTTP for the Sentinel-2 sources: one retrying client with clear errors, and a resumable download.

* :class:`Deadlines` is the one deadline policy of every network call of the plugin: our own requests and
  downloads, pystac-client (STAC), sentinelsat (DHuS) and GDAL ``/vsicurl/`` reads. An API request (all its
  tries and waits) must be answered completely within ``total`` seconds; a transfer (download, GDAL read)
  fails when less than ``min_rate`` bytes/s arrive for ``stall`` seconds. Both derive from one number, the
  ``SATCLASSIFY_HTTP_TIMEOUT`` environment variable (seconds, default 120). Per-read socket timeouts alone
  cannot do this: a server that sends its headers and then nothing, or one byte every few seconds, never
  trips them.
* :class:`Watch` enforces it for anything built on requests: a watchdog thread shuts the call's sockets
  down when the deadline passes, the transfer stalls or the user cancels, so the blocked read returns at
  once, whichever library is reading. :class:`DeadlineAdapter` (mounted by :meth:`HttpClient.mount` on our
  session and on pystac-client's and sentinelsat's) registers the sockets and gives every request a watch.
* :class:`Monitor` carries progress, messages and cancel (the algorithms wire it to QgsProcessingFeedback).
* :class:`HttpClient` retries connection failures, 429 and 5xx with exponential backoff, honouring
  ``Retry-After`` up to ``max_wait`` seconds; after the last try it raises a
  :class:`~satclassify_plugin.core.contract.errors.SatClassifyError` that says what went wrong (service down,
  quota reached, bad credentials, malformed response) and never contains a secret registered with
  :meth:`HttpClient.add_secret`.
* :meth:`HttpClient.download` writes to ``<dest>.part``, resumes with ``Range`` after a dropped connection
  (and on a later run), follows redirects itself so the ``Authorization`` header survives a redirect to
  another host (requests drops it), checks size and MD5, and renames to ``dest`` only when complete.
"""
from __future__ import annotations

import email.utils
import json
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional
from urllib.parse import urljoin, urlparse

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from ..contract.errors import SatClassifyError
from ..contract.feedback import Canceled, Monitor
from ..contract.paths import file_digest

USER_AGENT = "SatClassify-QGIS-plugin"
RETRY_STATUS = (429, 500, 502, 503, 504)
REDIRECT_STATUS = (301, 302, 303, 307, 308)
TIMEOUT_ENV = "SATCLASSIFY_HTTP_TIMEOUT"
DEFAULT_TIMEOUT = 120.0


def host_of(url: str) -> str:
    p = urlparse(url)
    return p.netloc.rsplit("@", 1)[-1] or url


class DeadlineExceeded(SatClassifyError):
    """A network call hit its deadline or stalled (the message names the host and what to do)."""


@dataclass(frozen=True)
class Deadlines:
    """The deadline policy of every network call (see the module docstring); :meth:`from_env` is the default."""
    total: float = DEFAULT_TIMEOUT  # an API request, all its tries and waits included, ends within this
    connect: float = 10.0  # opening a connection
    stall: float = DEFAULT_TIMEOUT / 2  # a transfer fails when less than min_rate bytes/s arrive for this long
    min_rate: int = 1024  # bytes/s

    @classmethod
    def from_timeout(cls, seconds: float) -> "Deadlines":
        """The policy for one timeout: ``total`` = seconds, ``stall`` = half of it, ``connect`` at most 10 s."""
        s = float(seconds)
        return cls(total=s, connect=min(10.0, s), stall=s / 2)

    @classmethod
    def from_env(cls, environ=None) -> "Deadlines":
        env = os.environ if environ is None else environ
        v = str(env.get(TIMEOUT_ENV, "") or "").strip()
        if not v:
            return cls()
        try:
            s = float(v)
        except ValueError:
            s = float("nan")
        if not 0 < s < 1e6:  # also false for nan
            raise SatClassifyError(f"the environment variable {TIMEOUT_ENV} must be a number of seconds above 0 "
                                   f"(e.g. 300), not '{v}'")
        return cls.from_timeout(s)

    @property
    def timeout(self):
        """requests' (connect, read) timeouts. The read timeout is only a safety net, just beyond ``total``: the
        watches end a call first (per-read timeouts alone cannot bound a call: a trickle resets them)."""
        return (self.connect, self.total + 1.0)

    def hint(self) -> str:
        return (f"it may be overloaded; try again later, raise the timeout (environment variable {TIMEOUT_ENV}, "
                f"now {self.total:g} s) or choose another SOURCE")

    def exceeded(self, host: str, what: str = "", note: str = "") -> str:
        """The message for a call that hit ``total`` (``note``: said before the advice)."""
        return (f"the server at {host} did not finish answering within {self.total:g} s"
                f"{' (' + what + ')' if what else ''}{' ' + note if note else ''}: {self.hint()}")

    def stalled(self, host: str, what: str = "", note: str = "") -> str:
        """The message for a transfer that stalled (less than ``min_rate`` bytes/s for ``stall`` s)."""
        return (f"the server at {host} stopped sending{' (' + what + ')' if what else ''}: less than "
                f"{self.min_rate} bytes/s for {self.stall:g} s{' ' + note if note else ''}; {self.hint()}")

    def gdal_options(self, retries: int = 3) -> Dict[str, str]:
        """GDAL config options applying this policy to /vsicurl/ reads (curl: total time per request, low speed)."""
        return {"GDAL_HTTP_TIMEOUT": str(max(1, math.ceil(self.total))),
                "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, math.ceil(self.connect))),
                "GDAL_HTTP_LOW_SPEED_TIME": str(max(1, math.ceil(self.stall))),
                "GDAL_HTTP_LOW_SPEED_LIMIT": str(int(self.min_rate)),
                "GDAL_HTTP_MAX_RETRY": str(max(0, int(retries)))}

    @classmethod
    def from_gdal_options(cls, get: Callable[[str], Optional[str]]) -> "Deadlines":
        """The policy that :meth:`gdal_options` wrote (``get``: e.g. ``gdal.GetConfigOption``)."""
        def num(key, default):
            try:
                return float(get(key) or default)
            except (TypeError, ValueError):
                return default
        d = cls()
        return cls(total=num("GDAL_HTTP_TIMEOUT", d.total), connect=num("GDAL_HTTP_CONNECTTIMEOUT", d.connect),
                   stall=num("GDAL_HTTP_LOW_SPEED_TIME", d.stall),
                   min_rate=int(num("GDAL_HTTP_LOW_SPEED_LIMIT", d.min_rate)))


_local = threading.local()


def _watches() -> List["Watch"]:
    """The watches active in this thread, outermost first."""
    stack = getattr(_local, "watches", None)
    if stack is None:
        stack = _local.watches = []
    return stack


def _fired() -> Optional["Watch"]:
    for w in _watches():
        if w.fired:
            return w
    return None


def raise_if_fired(cause: Optional[BaseException] = None) -> None:
    """Raise the error of the first active watch that fired (deadline, stall or cancel)."""
    w = _fired()
    if w is not None:
        raise w.error() from cause


def own_error(e: BaseException) -> Optional[SatClassifyError]:
    """Our error (deadline, cancel) when a library wrapped it (pystac-client raises ``APIError(str(err))``)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, SatClassifyError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


class Watch:
    """The deadline, stall rule and cancel of one network call, enforced from a watchdog thread.

    Use as a context manager around the call. Connections used inside it (through :class:`DeadlineAdapter`)
    are registered; when ``total`` seconds have passed, or (after :meth:`arm`) fewer than ``policy.min_rate``
    bytes/s were reported with :meth:`progress` for ``policy.stall`` seconds, or ``is_canceled()`` says so, the
    watch fires: it shuts those sockets down, the blocked read fails at once, and :meth:`error` gives the message.
    """
    POLL = 0.05

    def __init__(self, host: str, what: str = "request", policy: Optional[Deadlines] = None,
                 total: Optional[float] = None, stall: bool = False,
                 is_canceled: Optional[Callable[[], bool]] = None):
        self.host, self.what = host, what
        self.policy = policy or Deadlines()
        self.end = None if total is None else time.monotonic() + float(total)
        self.stall = bool(stall)
        self.is_canceled = is_canceled
        self.fired: Optional[str] = None  # "deadline" | "stall" | "cancel"
        self._conns: list = []
        self._bytes = 0
        self._window = None  # (start time, bytes then) of the stall rule once armed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "Watch":
        _watches().append(self)
        self._thread = threading.Thread(target=self._run, name=f"satclassify-watch {self.host}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        self._stop.set()
        self._thread.join()
        stack = _watches()
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is self:
                del stack[i]
                break
        return False

    def remaining(self) -> float:
        return math.inf if self.end is None else self.end - time.monotonic()

    def arm(self) -> None:
        """Start the stall rule (call it when the transfer starts, after the answer's headers)."""
        with self._lock:
            self._window = (time.monotonic(), self._bytes)

    def progress(self, nbytes: int) -> None:
        with self._lock:
            self._bytes += int(nbytes)

    def add(self, conn) -> None:
        with self._lock:
            self._conns.append(conn)
            fired = self.fired
        if fired:
            _shut(conn)

    def error(self, note: str = "") -> SatClassifyError:
        """The error for how the watch fired (``note``: e.g. that a partial download is kept)."""
        if self.fired == "cancel":
            return Canceled()
        if self.fired == "stall":
            return DeadlineExceeded(self.policy.stalled(self.host, self.what, note))
        return DeadlineExceeded(self.policy.exceeded(self.host, self.what, note))

    def check(self) -> None:
        """Raise :meth:`error` if the watch fired."""
        if self.fired:
            raise self.error()

    def _reason(self) -> Optional[str]:
        now = time.monotonic()
        if self.is_canceled is not None and self.is_canceled():
            return "cancel"
        if self.end is not None and now >= self.end:
            return "deadline"
        with self._lock:
            if self.stall and self._window is not None and now - self._window[0] >= self.policy.stall:
                if self._bytes - self._window[1] < self.policy.min_rate * self.policy.stall:
                    return "stall"
                self._window = (now, self._bytes)
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.POLL):
            try:
                reason = self._reason()
            except Exception:
                reason = None
            if reason:
                with self._lock:
                    self.fired = reason
                    conns = list(self._conns)
                for c in conns:
                    _shut(c)
                return


def _shut(conn) -> None:
    """Shut a connection's socket down from another thread: a read blocked on it returns at once."""
    for sock in (getattr(conn, "_satclassify_sock", None), getattr(conn, "sock", None)):
        if sock is not None:
            try:  # the plain socket's shutdown, also for TLS sockets (no TLS close_notify from this thread)
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except (OSError, TypeError, ValueError):
                pass


def _watched(conn) -> None:
    """Register ``conn`` with this thread's watches; refuse to start when one fired already."""
    for w in _watches():
        w.add(conn)
    raise_if_fired()


class _WatchedConnection:
    def connect(self):
        _watched(self)
        super().connect()
        self._satclassify_sock = self.sock  # kept: http.client drops conn.sock when the answer closes the connection

    def request(self, *a, **kw):
        _watched(self)
        return super().request(*a, **kw)

    def request_chunked(self, *a, **kw):  # urllib3 1.26
        _watched(self)
        return super().request_chunked(*a, **kw)


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def _watch_pools(manager) -> None:
    classes = getattr(manager, "pool_classes_by_scheme", None)
    if (isinstance(classes, dict) and classes.get("http") is HTTPConnectionPool
            and classes.get("https") is HTTPSConnectionPool):  # stock pools (not e.g. SOCKS)
        manager.pool_classes_by_scheme = {**classes, "http": _HTTPPool, "https": _HTTPSPool}


def _remaining() -> float:
    return min([w.remaining() for w in _watches()] or [math.inf])


def _clamped(timeout, policy: Deadlines):
    """(connect, read) from a requests timeout, the policy's when none, cut to the time left by the watches."""
    if timeout is None:
        connect, read = policy.timeout
    elif isinstance(timeout, tuple):
        connect, read = (policy.timeout[0] if timeout[0] is None else timeout[0],
                         policy.timeout[1] if timeout[1] is None else timeout[1])
    elif isinstance(timeout, (int, float)):
        connect = read = float(timeout)
    else:  # urllib3 Timeout object: leave it
        return timeout
    left = max(0.05, _remaining() + 1.0)  # just beyond the deadline: the watch ends the call first
    return (min(float(connect), left), min(float(read), left))


class BoundedRetry(Retry):
    """urllib3 retries (for libraries that retry inside urllib3) whose waits honour ``Retry-After`` up to
    ``max_wait`` seconds and never outlast the active watches' deadline."""
    max_wait = 30.0

    def get_retry_after(self, response):
        v = super().get_retry_after(response)
        return None if v is None else max(0.0, min(v, self.max_wait, _remaining() - 0.05))

    def get_backoff_time(self):
        return max(0.0, min(super().get_backoff_time(), self.max_wait, _remaining() - 0.05))


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose every request has a :class:`Watch` (``policy.total``, cancel) and whose
    connections are registered with the watches of the calling thread (so an outer watch covers them too).
    A streamed answer is watched up to its headers; the caller watches its body (see :meth:`HttpClient.download`)."""

    def __init__(self, policy: Optional[Deadlines] = None, is_canceled: Optional[Callable[[], bool]] = None,
                 **kw):
        self.policy = policy or Deadlines()
        self.is_canceled = is_canceled
        super().__init__(**kw)

    def init_poolmanager(self, *a, **kw):
        super().init_poolmanager(*a, **kw)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy, **kw):
        manager = super().proxy_manager_for(proxy, **kw)
        _watch_pools(manager)
        return manager

    def send(self, request, stream=False, timeout=None, **kw):
        what = f"{request.method} {urlparse(request.url).path or '/'}"
        own = None if _remaining() <= self.policy.total else self.policy.total  # an enclosing call's deadline rules
        with Watch(host_of(request.url), what, self.policy, total=own, is_canceled=self.is_canceled):
            raise_if_fired()
            try:
                r = super().send(request, stream=stream, timeout=_clamped(timeout, self.policy), **kw)
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


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent/invalid."""
    if value is None:
        return None
    v = str(value).strip()
    if not v:
        return None
    try:
        s = float(v)
        return s if s >= 0 and s == s and s != float("inf") else None
    except ValueError:
        pass
    try:
        d = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError, IndexError):
        return None
    if d is None:
        return None
    return max(0.0, d.timestamp() - (time.time() if now is None else now))


class HttpClient:
    """Requests with retries and the :class:`Deadlines` policy (``policy``; default: :meth:`Deadlines.from_env`)."""

    def __init__(self, session: Optional[requests.Session] = None, retries: int = 3,
                 backoff: float = 1.0, max_wait: float = 30.0, monitor: Optional[Monitor] = None,
                 sleep: Callable[[float], None] = time.sleep, policy: Optional[Deadlines] = None):
        self.policy = policy or Deadlines.from_env()
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_wait = max_wait
        self.monitor = monitor or Monitor()
        self._sleep = sleep
        self._secrets = []
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self.mount(self.session)  # this client retries itself: no urllib3 retries

    @property
    def timeout(self):
        """(connect, read) for requests-based libraries."""
        return self.policy.timeout

    # -- the deadline policy for other libraries ---------------------------------------------------------
    def retry(self) -> Retry:
        """urllib3 retries like this client's (429/5xx and connection errors, ``Retry-After`` up to ``max_wait``,
        never past the deadline), for libraries that retry inside urllib3 (pystac-client, sentinelsat)."""
        cls = type("BoundedRetry", (BoundedRetry,), {"max_wait": self.max_wait})  # Retry.new() keeps the class
        return cls(total=self.retries, backoff_factor=self.backoff, status_forcelist=RETRY_STATUS,
                   allowed_methods=None, respect_retry_after_header=True, raise_on_status=False)

    def mount(self, session: requests.Session, retry: bool = False) -> requests.Session:
        """Give ``session`` (ours, pystac-client's, sentinelsat's) this client's deadlines and cancel, and with
        ``retry`` its retries."""
        for prefix in ("http://", "https://"):
            session.mount(prefix, DeadlineAdapter(self.policy, self.monitor.canceled,
                                                  max_retries=self.retry() if retry else 0))
        return session

    def watch(self, url: str, what: str = "request", total: bool = True, stall: bool = False) -> Watch:
        """A :class:`Watch` on ``url``'s host with this client's policy and cancel: ``total`` bounds the call by
        ``policy.total``; ``stall`` applies the stall rule once armed (transfers)."""
        return Watch(host_of(url), what, self.policy, total=self.policy.total if total else None, stall=stall,
                     is_canceled=self.monitor.canceled)

    def gdal_options(self) -> Dict[str, str]:
        """GDAL config options for /vsicurl/ reads under this client's policy and retries."""
        return self.policy.gdal_options(self.retries)

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

    # -- waiting ---------------------------------------------------------------------------------------
    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.monitor.check()
            left = end - time.monotonic()
            if left <= 0:
                return
            self._sleep(min(left, 0.25))

    def _delay(self, attempt: int, response: Optional[requests.Response]) -> float:
        ra = parse_retry_after(response.headers.get("Retry-After")) if response is not None else None
        d = ra if ra is not None else self.backoff * (2 ** attempt)
        return min(d, self.max_wait)

    # -- requests --------------------------------------------------------------------------------------
    def request(self, method: str, url: str, what: str = "request", ok_status=(200,), **kw) -> requests.Response:
        """Send with retries; return the response when its status is in ``ok_status`` (or a redirect when
        ``allow_redirects=False``), raise a clear SatClassifyError otherwise. The whole call, tries and waits
        included, ends within ``policy.total`` seconds (a streamed answer: up to its headers)."""
        kw.setdefault("timeout", self.policy.timeout)
        host = host_of(url)
        last_exc = None
        response = None
        tries = 0
        with self.watch(url, what) as watch:
            for attempt in range(self.retries + 1):
                self.monitor.check()
                tries += 1
                try:
                    response = self.session.request(method, url, **kw)
                    last_exc = None
                except (requests.ConnectionError, requests.Timeout) as e:
                    last_exc, response = e, None
                watch.check()  # the deadline or cancel cut this try
                if response is not None and response.status_code not in RETRY_STATUS:
                    break
                if attempt == self.retries:
                    break
                delay = self._delay(attempt, response)
                if delay >= watch.remaining():
                    break  # no time left for another try: report this one
                reason = f"HTTP {response.status_code}" if response is not None else type(last_exc).__name__
                self.monitor.info(f"{what}: {host} answered {reason}; retrying in {delay:.1f} s "
                                  f"(try {attempt + 2} of {self.retries + 1})")
                if response is not None:
                    response.close()
                self._wait(delay)
        if response is None:
            kind = "timed out" if isinstance(last_exc, requests.Timeout) else "connection failed"
            raise self._error(f"cannot reach {host} ({kind} after {tries} tries): the service is down or "
                              f"unreachable; check the URL and the network, or try again later")
        code = response.status_code
        if code in ok_status or (not kw.get("allow_redirects", True) and code in REDIRECT_STATUS):
            return response
        raise self._error(status_error(code, host, _snippet(response), tries, what, url))

    def get_json(self, url: str, what: str = "request", method: str = "GET", **kw):
        r = self.request(method, url, what=what, **kw)
        return parse_json_response(r, what, self.redact)

    # -- download --------------------------------------------------------------------------------------
    def download(self, url: str, dest: str, headers: Optional[Dict[str, str]] = None,
                 expected_md5: Optional[str] = None, expected_size: Optional[int] = None,
                 max_redirects: int = 5, chunk: int = 1 << 16, monitor: Optional[Monitor] = None,
                 reauth: Optional[Callable[[], Dict[str, str]]] = None) -> str:
        """Download ``url`` to ``dest`` (resumable). Returns ``dest``. Existing complete files are kept.

        Deadlines: each request up to the answer's headers within ``policy.total``; the body may take as long
        as it needs while at least ``policy.min_rate`` bytes/s arrive (a stall, like a dropped connection, is
        resumed up to ``retries`` times). Cancel interrupts a blocked read at once.

        ``reauth``: called once when the server answers 401 (an access token that expired during a long
        download); it returns fresh headers (e.g. a new Bearer token) and the download resumes with them."""
        mon = monitor or self.monitor
        headers = dict(headers or {})
        if os.path.exists(dest) and _complete(dest, expected_md5, expected_size):
            mon.info(f"{os.path.basename(dest)} already downloaded and verified")
            mon.progress(1.0)
            return dest
        part = dest + ".part"
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        host = host_of(url)
        drops = 0
        while True:
            mon.check()
            have = os.path.getsize(part) if os.path.exists(part) else 0
            if expected_size and have > expected_size:
                os.remove(part)
                have = 0
            h = dict(headers)
            if have:
                h["Range"] = f"bytes={have}-"
            with Watch(host, f"download of {os.path.basename(dest)}", self.policy, stall=True,
                       is_canceled=mon.canceled) as watch:
                r = self._follow(url, h, max_redirects, auth_retry=reauth is not None)
                if r.status_code == 401:
                    r.close()
                    if reauth is None:
                        raise self._error(f"download refused at {host}: HTTP 401 (not authorised)")
                    mon.info("the access token expired: logging in again")
                    headers.update(reauth())
                    reauth = None  # once: a second 401 is a real refusal
                    continue
                if r.status_code == 416 and have:  # already complete
                    r.close()
                    break
                if r.status_code not in (200, 206):
                    r.close()
                    raise self._error(f"download failed at {host}: HTTP {r.status_code}")
                if r.status_code == 200 and have:
                    mon.info("the server does not resume downloads: starting again from the beginning")
                    have = 0
                total = _total_size(r, have) or expected_size
                watch.arm()
                f = None  # opened at the first byte: a download that never starts leaves no file
                try:
                    done = have
                    for block in _body_blocks(r, chunk):
                        watch.progress(len(block))
                        if mon.canceled():
                            r.close()
                            raise Canceled(_CANCELED_DOWNLOAD)
                        if f is None:
                            f = open(part, "ab" if have else "wb")
                        f.write(block)
                        done += len(block)
                        if total:
                            mon.progress(done / total)
                    if watch.fired or (total and done < total):
                        raise requests.ConnectionError(f"connection closed after {done} of {total} bytes")
                    if f is None and not os.path.exists(part):
                        open(part, "wb").close()  # an empty body
                    break
                except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout,
                        urllib3.exceptions.HTTPError) as e:
                    if watch.fired == "cancel":
                        raise Canceled(_CANCELED_DOWNLOAD) from e
                    stalled = watch.fired == "stall"
                    drops += 1
                    if drops > self.retries:
                        if stalled:
                            note = f"(the partial download {part} is resumed on the next run)"
                            raise self._error(str(watch.error(note if os.path.exists(part) else ""))) from e
                        raise self._error(f"the download from {host} kept failing ({type(e).__name__} "
                                          f"{drops} times): run again to resume from {part}") from e
                    mon.info(f"the download from {host} stalled (less than {self.policy.min_rate} bytes/s for "
                             f"{self.policy.stall:g} s); resuming" if stalled
                             else f"connection dropped ({type(e).__name__}); resuming")
                    self._wait(self._delay(drops - 1, None))
                finally:
                    if f is not None:
                        f.close()
                    r.close()
        size = os.path.getsize(part)
        if expected_size and size != expected_size:
            raise self._error(f"the download of {os.path.basename(dest)} is incomplete ({size} of {expected_size} "
                              "bytes): run again to resume")
        if expected_md5:
            got = md5_of(part)
            if got.lower() != expected_md5.lower():
                os.remove(part)
                raise self._error(f"checksum mismatch for {os.path.basename(dest)} (MD5 {got}, expected "
                                  f"{expected_md5}): the corrupt file was removed, run again")
            mon.info(f"MD5 checksum of {os.path.basename(dest)} verified")
        os.replace(part, dest)
        mon.progress(1.0)
        return dest

    def _follow(self, url: str, headers: Dict[str, str], max_redirects: int,
                auth_retry: bool = False) -> requests.Response:
        """GET following redirects by hand so that every header (Authorization included) is kept.
        With ``auth_retry`` a 401 is returned to the caller (which may log in again) instead of raised."""
        ok = (200, 206, 416, 401) if auth_retry else (200, 206, 416)
        for _ in range(max_redirects + 1):
            r = self.request("GET", url, what="download", ok_status=ok, headers=headers,
                             stream=True, allow_redirects=False)
            if r.status_code in REDIRECT_STATUS:
                loc = r.headers.get("Location")
                r.close()
                if not loc:
                    raise self._error(f"{host_of(url)} sent a redirect without a Location header")
                url = urljoin(url, loc)
                continue
            return r
        raise self._error(f"too many redirects (more than {max_redirects}) downloading from {host_of(url)}")


_CANCELED_DOWNLOAD = "download cancelled by the user (the partial file is kept and resumed on the next run)"


def status_error(code: int, host: str, body: str = "", tries: int = 1, what: str = "request", url: str = "") -> str:
    """The user-facing message for a failed HTTP status."""
    if code == 429:
        return (f"quota reached at {host} (HTTP 429 Too Many Requests after {tries} tries): "
                "wait before trying again, or check your account's limits")
    if code == 401:
        return (f"{host} refused the credentials (HTTP 401): check the user name and password "
                "of the authentication configuration (AUTHCFG)")
    if code == 403 and "quota" in body.lower():
        return f"quota reached at {host} (HTTP 403: {body}): wait or check your account's limits"
    if code == 403:
        return (f"{host} denied access (HTTP 403{': ' + body if body else ''}): check that the "
                "account may use this service and download this product")
    if code >= 500:
        return f"the service at {host} is failing (HTTP {code} after {tries} tries): try again later"
    if code == 404:
        return f"{what}: not found at {host} (HTTP 404: {url.split('?')[0]}): check the URL and the product id"
    return f"{what} failed at {host}: HTTP {code}{': ' + body if body else ''}"


def parse_json_response(r: requests.Response, what: str = "request", redact=lambda s: s):
    try:
        return r.json()
    except ValueError:
        raise SatClassifyError(redact(f"malformed response from {host_of(r.url or '')} for {what}: not JSON "
                                      f"({_snippet(r, 80) or 'empty body'})"))


def _snippet(r: requests.Response, n: int = 200) -> str:
    try:
        text = r.text or ""
    except Exception:
        return ""
    text = " ".join(text.split())
    try:  # OData / OAuth errors: keep the message only
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


def _total_size(r: requests.Response, have: int) -> Optional[int]:
    cr = r.headers.get("Content-Range", "")
    if "/" in cr:
        tail = cr.rsplit("/", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    cl = r.headers.get("Content-Length", "")
    if cl.isdigit():
        return int(cl) + (have if r.status_code == 206 else 0)
    return None


def md5_of(path: str) -> str:
    return file_digest(path, "md5")


def _complete(path: str, md5: Optional[str], size: Optional[int]) -> bool:
    if size and os.path.getsize(path) != size:
        return False
    if md5:
        return md5_of(path).lower() == md5.lower()
    return bool(size)


def _body_blocks(r: requests.Response, chunk: int) -> Iterator[bytes]:
    """The response body in blocks of at most ``chunk`` bytes, each block as soon as it arrives.

    urllib3 2 collects ``read(chunk)`` until the chunk is full and drops what it had when the connection breaks
    mid-chunk, so a resumed download would restart at a chunk boundary (or from 0). ``read1`` (urllib3 >= 2)
    returns what one socket read gave, so every byte received reaches the .part file and the resume starts at
    the exact byte. urllib3 1.26 has no ``read1``; its ``read(chunk)`` already returns a short block at a break.
    """
    raw = r.raw
    read1 = getattr(raw, "read1", None)
    if read1 is None:
        yield from r.iter_content(chunk)
        return
    while True:
        block = read1(chunk, decode_content=True)
        if not block:
            return
        yield block
