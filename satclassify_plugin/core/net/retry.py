"""The one retry mechanism of the plugin's HTTP: urllib3's :class:`~urllib3.util.retry.Retry`, bounded by the
watches. Used by every session the client mounts (ours, pystac-client's, sentinelsat's).

urllib3 decides what is retried (connection errors, 429 and 5xx, any method) and reads ``Retry-After`` (seconds
or an HTTP date). This subclass only bounds it: a wait is at most ``max_wait`` seconds; a try whose wait would
end past the active watches' deadline is not made (the last answer or error is reported instead); the wait
itself ends at once on a cancel; an invalid ``Retry-After`` falls back to the backoff (1, 2, 4... times
``backoff_factor``) instead of failing; each retry is announced through ``on_retry``.
"""

from __future__ import annotations

from typing import Callable, Optional

from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from . import watch as _watch

RETRY_STATUS = (429, 500, 502, 503, 504)


class DeadlineRetry(Retry):
    RETRY_AFTER_STATUS_CODES = frozenset(RETRY_STATUS)  # Retry-After is honoured on the statuses we retry

    def __init__(self, *a, max_wait: float = 30.0, on_retry: Optional[Callable[[str], None]] = None, **kw):
        super().__init__(*a, **kw)
        self.max_wait = float(max_wait)
        self.on_retry = on_retry

    @classmethod
    def for_client(
        cls, retries: int, backoff: float, max_wait: float, on_retry: Optional[Callable[[str], None]] = None
    ) -> "DeadlineRetry":
        """``retries`` more tries after the first on connection errors, 429 and 5xx, for any method."""
        return cls(
            total=max(0, int(retries)),
            backoff_factor=backoff,
            status_forcelist=RETRY_STATUS,
            allowed_methods=None,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            max_wait=max_wait,
            on_retry=on_retry,
        )

    def new(self, **kw) -> "DeadlineRetry":
        r = super().new(**kw)
        r.max_wait, r.on_retry = self.max_wait, self.on_retry
        return r

    def get_retry_after(self, response) -> Optional[float]:
        try:
            v = super().get_retry_after(response)
        except InvalidHeader:  # not seconds, not an HTTP date: the backoff applies
            return None
        return None if v is None else min(max(0.0, float(v)), self.max_wait)

    def get_backoff_time(self) -> float:
        n = len(self.history)  # the failed tries so far
        return 0.0 if n == 0 else min(self.backoff_factor * 2 ** (n - 1), self.max_wait)

    def delay(self, response=None) -> float:
        """The wait before the next try: ``Retry-After`` when the answer has a valid one, else the backoff."""
        ra = self.get_retry_after(response) if response is not None and self.respect_retry_after_header else None
        return ra if ra is not None else self.get_backoff_time()

    def sleep(self, response=None) -> None:
        _watch.wait(self.delay(response))

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        _watch.raise_if_fired(error)  # a watch cut this try: its error (deadline, cancel), not a retry
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = new.delay(response)
        if wait >= _watch.remaining():  # no time left for another try: report this one
            raise MaxRetryError(_pool, url, error or ResponseError(f"HTTP {getattr(response, 'status', '?')}"))
        for w in _watch.active():
            w.tries += 1
        if self.on_retry is not None:
            outer = _watch.active()[0] if _watch.active() else None
            what = f"{outer.what}: {outer.host}" if outer is not None else (getattr(_pool, "host", "") or "")
            did = f"answered HTTP {response.status}" if response is not None else f"failed ({type(error).__name__})"
            tries = new.total + len(new.history) + 1 if isinstance(new.total, int) else None
            self.on_retry(
                f"{what} {did}; retrying in {wait:.1f} s (try {len(new.history) + 1}{f' of {tries}' if tries else ''})"
            )
        return new
