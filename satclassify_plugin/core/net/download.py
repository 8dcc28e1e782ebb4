"""A resumable, verified download (:func:`download`, also :meth:`HttpClient.download
<satclassify_plugin.core.net.client.HttpClient.download>`).

Writes to ``<dest>.part``, resumes with ``Range`` after a dropped connection or a stall (and on a later run),
follows redirects itself so the ``Authorization`` header survives a redirect to another host (requests drops
it), checks size and MD5, and renames to ``dest`` only when complete. Each request is retried like any other
(urllib3's Retry); a body that breaks off is resumed up to ``client.retries`` times.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, Iterator, Optional
from urllib.parse import urljoin

import requests
import urllib3

from ..contract.feedback import Canceled, Monitor
from ..contract.paths import file_digest
from .client import REDIRECT_STATUS
from .messages import host_of
from .watch import Watch

CANCELED_DOWNLOAD = "download cancelled by the user (the partial file is kept and resumed on the next run)"
_BROKEN = (
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.Timeout,
    urllib3.exceptions.HTTPError,
)


class _Again(Exception):
    """The transfer must start again (new headers after a login, or from a new offset after ``delay`` s)."""

    def __init__(self, delay: float = 0.0):
        super().__init__(delay)
        self.delay = delay


def download(
    client,
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
    """Download ``url`` to ``dest`` with ``client`` (an HttpClient). Returns ``dest``. Existing complete files
    are kept.

    Deadlines: each request up to the answer's headers within ``policy.total``; the body may take as long as it
    needs while at least ``policy.min_rate`` bytes/s arrive (a stall, like a dropped connection, is resumed up to
    ``client.retries`` times). Cancel interrupts a blocked read at once.

    ``reauth``: called once when the server answers 401 (an access token that expired during a long download);
    it returns fresh headers (e.g. a new Bearer token) and the download resumes with them."""
    mon = monitor or client.monitor
    if os.path.exists(dest) and _complete(dest, expected_md5, expected_size):
        mon.info(f"{os.path.basename(dest)} already downloaded and verified")
        mon.progress(1.0)
        return dest
    part = dest + ".part"
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    job = _Download(client, url, dest, dict(headers or {}), expected_size, max_redirects, chunk, mon, reauth)
    while True:
        mon.check()
        try:
            job.attempt()
            break
        except _Again as again:
            _pause(again.delay, mon)
    _verify(client, part, dest, expected_md5, expected_size, mon)
    os.replace(part, dest)
    mon.progress(1.0)
    return dest


class _Download:
    def __init__(self, client, url, dest, headers, expected_size, max_redirects, chunk, mon, reauth):
        self.client, self.url, self.dest, self.headers = client, url, dest, headers
        self.part = dest + ".part"
        self.expected_size, self.max_redirects, self.chunk = expected_size, max_redirects, chunk
        self.mon, self.reauth = mon, reauth
        self.host = host_of(url)
        self.drops = 0

    def _have(self) -> int:
        have = os.path.getsize(self.part) if os.path.exists(self.part) else 0
        if self.expected_size and have > self.expected_size:
            os.remove(self.part)
            have = 0
        return have

    def attempt(self) -> None:
        """One request and its body into the .part file; raises _Again to go on from where it stopped."""
        have = self._have()
        h = dict(self.headers)
        if have:
            h["Range"] = f"bytes={have}-"
        with Watch(
            self.host,
            f"download of {os.path.basename(self.dest)}",
            self.client.policy,
            stall=True,
            is_canceled=self.mon.canceled,
        ) as watch:
            r = follow(self.client, self.url, h, self.max_redirects, auth_retry=self.reauth is not None)
            if r.status_code == 401:
                r.close()
                if self.reauth is None:
                    raise self.client._error(f"download refused at {self.host}: HTTP 401 (not authorised)")
                self.mon.info("the access token expired: logging in again")
                self.headers.update(self.reauth())
                self.reauth = None  # once: a second 401 is a real refusal
                raise _Again()
            if r.status_code == 416 and have:  # already complete
                r.close()
                return
            if r.status_code not in (200, 206):
                r.close()
                raise self.client._error(f"download failed at {self.host}: HTTP {r.status_code}")
            if r.status_code == 200 and have:
                self.mon.info("the server does not resume downloads: starting again from the beginning")
                have = 0
            try:
                self._body(r, watch, have)
            except _BROKEN as e:
                self._broken(e, watch)
            finally:
                r.close()

    def _body(self, r, watch: Watch, have: int) -> None:
        total = _total_size(r, have) or self.expected_size
        watch.arm()
        f = None  # opened at the first byte: a download that never starts leaves no file
        try:
            done = have
            for block in _body_blocks(r, self.chunk):
                watch.progress(len(block))
                if self.mon.canceled():
                    r.close()
                    raise Canceled(CANCELED_DOWNLOAD)
                if f is None:
                    f = open(self.part, "ab" if have else "wb")
                f.write(block)
                done += len(block)
                if total:
                    self.mon.progress(done / total)
            if watch.fired or (total and done < total):
                raise requests.ConnectionError(f"connection closed after {done} of {total} bytes")
            if f is None and not os.path.exists(self.part):
                open(self.part, "wb").close()  # an empty body
        finally:
            if f is not None:
                f.close()

    def _broken(self, e: BaseException, watch: Watch) -> None:
        """A body that broke off: resume (raise _Again) or, after ``client.retries`` resumes, report."""
        client = self.client
        if watch.fired == "cancel":
            raise Canceled(CANCELED_DOWNLOAD) from e
        stalled = watch.fired == "stall"
        self.drops += 1
        if self.drops > client.retries:
            if stalled:
                note = f"(the partial download {self.part} is resumed on the next run)"
                raise client._error(str(watch.error(note if os.path.exists(self.part) else ""))) from e
            raise client._error(
                f"the download from {self.host} kept failing ({type(e).__name__} {self.drops} "
                f"times): run again to resume from {self.part}"
            ) from e
        self.mon.info(
            f"the download from {self.host} stalled (less than {client.policy.min_rate} bytes/s for "
            f"{client.policy.stall:g} s); resuming"
            if stalled
            else f"connection dropped ({type(e).__name__}); resuming"
        )
        raise _Again(min(client.backoff * 2 ** (self.drops - 1), client.max_wait)) from e


def _pause(seconds: float, mon: Monitor) -> None:
    end = time.monotonic() + seconds
    while True:
        mon.check()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.25))


def follow(
    client, url: str, headers: Dict[str, str], max_redirects: int, auth_retry: bool = False
) -> requests.Response:
    """GET following redirects by hand so that every header (Authorization included) is kept.
    With ``auth_retry`` a 401 is returned to the caller (which may log in again) instead of raised."""
    ok = (200, 206, 416, 401) if auth_retry else (200, 206, 416)
    for _ in range(max_redirects + 1):
        r = client.request(
            "GET", url, what="download", ok_status=ok, headers=headers, stream=True, allow_redirects=False
        )
        if r.status_code in REDIRECT_STATUS:
            loc = r.headers.get("Location")
            r.close()
            if not loc:
                raise client._error(f"{host_of(url)} sent a redirect without a Location header")
            url = urljoin(url, loc)
            continue
        return r
    raise client._error(f"too many redirects (more than {max_redirects}) downloading from {host_of(url)}")


def _verify(
    client, part: str, dest: str, expected_md5: Optional[str], expected_size: Optional[int], mon: Monitor
) -> None:
    size = os.path.getsize(part)
    if expected_size and size != expected_size:
        raise client._error(
            f"the download of {os.path.basename(dest)} is incomplete ({size} of {expected_size} "
            "bytes): run again to resume"
        )
    if expected_md5:
        got = md5_of(part)
        if got.lower() != expected_md5.lower():
            os.remove(part)
            raise client._error(
                f"checksum mismatch for {os.path.basename(dest)} (MD5 {got}, expected "
                f"{expected_md5}): the corrupt file was removed, run again"
            )
        mon.info(f"MD5 checksum of {os.path.basename(dest)} verified")


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
