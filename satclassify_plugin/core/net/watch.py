"""Watches: the deadline, stall rule and cancel of a network call, enforced from a watchdog thread.

A :class:`Watch` is a context manager around a call. Connections opened or used inside it (through the pools of
:func:`watch_pools`, installed by :class:`~satclassify_plugin.core.net.adapter.DeadlineAdapter`) are registered
with every watch active in the calling thread; when one fires it shuts their sockets down, so the blocked read
returns at once, whichever library is reading. Per-read socket timeouts alone cannot bound a call: a server that
sends its headers and then nothing, or one byte every few seconds, never trips them.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from typing import Callable, List, Optional, Tuple

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..contract.errors import SatClassifyError
from ..contract.feedback import Canceled
from .deadlines import DeadlineExceeded, Deadlines

_local = threading.local()


def active() -> List["Watch"]:
    """The watches active in this thread, outermost first."""
    stack = getattr(_local, "watches", None)
    if stack is None:
        stack = _local.watches = []
    return stack


def raise_if_fired(cause: Optional[BaseException] = None) -> None:
    """Raise the error of the first active watch that fired (deadline, stall or cancel)."""
    for w in active():
        if w.fired:
            raise w.error() from cause


def remaining() -> float:
    """Seconds until the nearest deadline of the active watches (inf when none has one)."""
    return min([w.remaining() for w in active()] or [math.inf])


def own_error(e: Optional[BaseException]) -> Optional[SatClassifyError]:
    """Our error (deadline, cancel) when a library wrapped it (pystac-client raises ``APIError(str(err))``)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, SatClassifyError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


class Watch:
    """The deadline, stall rule and cancel of one network call (see the module docstring).

    When ``total`` seconds have passed, or (after :meth:`arm`) fewer than ``policy.min_rate`` bytes/s were
    reported with :meth:`progress` for ``policy.stall`` seconds, or ``is_canceled()`` says so, the watch fires:
    it shuts the registered sockets down and :meth:`error` gives the message. ``tries`` counts the tries made
    inside it (the retries of :class:`~satclassify_plugin.core.net.retry.DeadlineRetry` add to it).
    """

    POLL = 0.05

    def __init__(
        self,
        host: str,
        what: str = "request",
        policy: Optional[Deadlines] = None,
        total: Optional[float] = None,
        stall: bool = False,
        is_canceled: Optional[Callable[[], bool]] = None,
    ):
        self.host, self.what = host, what
        self.policy = policy or Deadlines()
        self.end = None if total is None else time.monotonic() + float(total)
        self.stall = bool(stall)
        self.is_canceled = is_canceled
        self.fired: Optional[str] = None  # "deadline" | "stall" | "cancel"
        self.tries = 1
        self._conns: list = []
        self._bytes = 0
        self._window: Optional[Tuple[float, int]] = None  # (start time, bytes then) of the stall rule once armed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "Watch":
        active().append(self)
        self._thread = threading.Thread(target=self._run, name=f"satclassify-watch {self.host}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        stack = active()
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is self:
                del stack[i]
                break

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


def wait(seconds: float) -> None:
    """Sleep ``seconds`` in short steps; an active watch that fires (deadline, cancel) ends the wait with its
    error."""
    end = time.monotonic() + max(0.0, seconds)
    while True:
        raise_if_fired()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, Watch.POLL))


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
    for w in active():
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


def watch_pools(manager) -> None:
    """Make a urllib3 PoolManager (or ProxyManager) open watched connections (stock pools only, not SOCKS)."""
    classes = getattr(manager, "pool_classes_by_scheme", None)
    if (
        isinstance(classes, dict)
        and classes.get("http") is HTTPConnectionPool
        and classes.get("https") is HTTPSConnectionPool
    ):
        manager.pool_classes_by_scheme = {**classes, "http": _HTTPPool, "https": _HTTPSPool}
