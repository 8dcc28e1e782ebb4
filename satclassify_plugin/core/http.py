"""HTTP for the Sentinel-2 sources: one retrying client with clear errors, and a resumable download.

* :class:`Monitor` carries progress, messages and cancel (the algorithms wire it to QgsProcessingFeedback).
* :class:`HttpClient` retries connection failures, 429 and 5xx with exponential backoff, honouring
  ``Retry-After`` up to ``max_wait`` seconds; after the last try it raises a
  :class:`~satclassify_plugin.core.errors.SatClassifyError` that says what went wrong (service down,
  quota reached, bad credentials, malformed response) and never contains a secret registered with
  :meth:`HttpClient.add_secret`.
* :meth:`HttpClient.download` writes to ``<dest>.part``, resumes with ``Range`` after a dropped connection
  (and on a later run), follows redirects itself so the ``Authorization`` header survives a redirect to
  another host (requests drops it), checks size and MD5, and renames to ``dest`` only when complete.
"""
from __future__ import annotations

import email.utils
import hashlib
import json
import os
import time
from typing import Callable, Dict, Iterator, Optional
from urllib.parse import urljoin, urlparse

import requests
import urllib3

from .errors import SatClassifyError

USER_AGENT = "SatClassify-QGIS-plugin"
RETRY_STATUS = (429, 500, 502, 503, 504)
REDIRECT_STATUS = (301, 302, 303, 307, 308)


class Canceled(SatClassifyError):
    """The user cancelled the run."""

    def __init__(self, message="cancelled by the user"):
        super().__init__(message)


class Monitor:
    """Progress (0-100), messages and cancel. All callbacks are optional."""

    def __init__(self, progress: Optional[Callable[[float], None]] = None,
                 info: Optional[Callable[[str], None]] = None,
                 is_canceled: Optional[Callable[[], bool]] = None):
        self._progress, self._info, self._is_canceled = progress, info, is_canceled

    def progress(self, pct: float) -> None:
        if self._progress:
            self._progress(max(0.0, min(100.0, float(pct))))

    def info(self, message: str) -> None:
        if self._info:
            self._info(message)

    def canceled(self) -> bool:
        return bool(self._is_canceled and self._is_canceled())

    def check(self) -> None:
        if self.canceled():
            raise Canceled()

    def sub(self, start: float, end: float) -> "Monitor":
        """A monitor mapping 0-100 onto [start, end] of this one."""
        return Monitor(lambda p: self.progress(start + (end - start) * p / 100.0), self._info, self._is_canceled)


def host_of(url: str) -> str:
    p = urlparse(url)
    return p.netloc.rsplit("@", 1)[-1] or url


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
    def __init__(self, session: Optional[requests.Session] = None, timeout=(10.0, 120.0), retries: int = 3,
                 backoff: float = 1.0, max_wait: float = 30.0, monitor: Optional[Monitor] = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_wait = max_wait
        self.monitor = monitor or Monitor()
        self._sleep = sleep
        self._secrets = []

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
        ``allow_redirects=False``), raise a clear SatClassifyError otherwise."""
        kw.setdefault("timeout", self.timeout)
        host = host_of(url)
        last_exc = None
        response = None
        for attempt in range(self.retries + 1):
            self.monitor.check()
            try:
                response = self.session.request(method, url, **kw)
                last_exc = None
            except (requests.ConnectionError, requests.Timeout) as e:
                last_exc, response = e, None
            if response is not None and response.status_code not in RETRY_STATUS:
                break
            if attempt < self.retries:
                delay = self._delay(attempt, response)
                reason = f"HTTP {response.status_code}" if response is not None else type(last_exc).__name__
                self.monitor.info(f"{what}: {host} answered {reason}; retrying in {delay:.1f} s "
                                  f"(try {attempt + 2} of {self.retries + 1})")
                if response is not None:
                    response.close()
                self._wait(delay)
        tries = self.retries + 1
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

        ``reauth``: called once when the server answers 401 (an access token that expired during a long
        download); it returns fresh headers (e.g. a new Bearer token) and the download resumes with them."""
        mon = monitor or self.monitor
        headers = dict(headers or {})
        if os.path.exists(dest) and _complete(dest, expected_md5, expected_size):
            mon.info(f"{os.path.basename(dest)} already downloaded and verified")
            mon.progress(100)
            return dest
        part = dest + ".part"
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
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
            r = self._follow(url, h, max_redirects, auth_retry=reauth is not None)
            if r.status_code == 401:
                r.close()
                if reauth is None:
                    raise self._error(f"download refused at {host_of(url)}: HTTP 401 (not authorised)")
                mon.info("the access token expired: logging in again")
                headers.update(reauth())
                reauth = None  # once: a second 401 is a real refusal
                continue
            if r.status_code == 416 and have:  # already complete
                r.close()
                break
            if r.status_code not in (200, 206):
                r.close()
                raise self._error(f"download failed at {host_of(url)}: HTTP {r.status_code}")
            if r.status_code == 200 and have:
                mon.info("the server does not resume downloads: starting again from the beginning")
                have = 0
            total = _total_size(r, have) or expected_size
            try:
                with open(part, "ab" if have else "wb") as f:
                    done = have
                    for block in _body_blocks(r, chunk):
                        if mon.canceled():
                            r.close()
                            raise Canceled("download cancelled by the user (the partial file is kept and "
                                           "resumed on the next run)")
                        f.write(block)
                        done += len(block)
                        if total:
                            mon.progress(100.0 * done / total)
                if total and done < total:
                    raise requests.ConnectionError(f"connection closed after {done} of {total} bytes")
                break
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout,
                    urllib3.exceptions.HTTPError) as e:
                drops += 1
                if drops > self.retries:
                    raise self._error(f"the download from {host_of(url)} kept failing ({type(e).__name__} "
                                      f"{drops} times): run again to resume from {part}")
                mon.info(f"connection dropped ({type(e).__name__}); resuming")
                self._wait(self._delay(drops - 1, None))
            finally:
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
        mon.progress(100)
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
    except Exception:  # noqa: BLE001 - undecodable body
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
    h = hashlib.md5()  # noqa: S324 - integrity check required by the service, not security
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
