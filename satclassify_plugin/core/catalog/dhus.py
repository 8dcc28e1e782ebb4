"""A Data Hub Software (DHuS) mirror through sentinelsat (national collaborative ground segments).

``SentinelAPI(user, password, api_url)``: OpenSearch query; ``download`` resumes and checks the MD5 itself.
sentinelsat's session gets the client's deadlines, cancel, retries and proxy (it sets no timeout of its own:
``SentinelAPI(timeout=...)`` is not applied to its requests); its downloads are watched for stalls and cancel
through its progress-bar hook.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from ..net import HttpClient, Watch, host_of, own_error
from . import Credentials


class DhusCatalog:
    def __init__(self, url: str, http: HttpClient, credentials: Credentials):
        self.url, self.http, self.credentials = url, http, credentials

    def api(self):
        from sentinelsat import SentinelAPI

        api = SentinelAPI(
            self.credentials.username,
            self.credentials.password,
            self.url + "/",
            show_progressbars=False,
            timeout=self.http.timeout,
        )
        self.http.mount(api.session)
        api.downloader.chunk_size = 1 << 14  # progress (and the stall rule) every 16 kB, not every MB
        return api

    def query(self, **kw: Any) -> Dict[str, Dict[str, Any]]:
        """``SentinelAPI.query(**kw)``: {uuid: properties}."""
        try:
            res = self.api().query(**kw)
        except Exception as e:
            raise self.translate(e, "searching")
        if not hasattr(res, "items"):
            raise SatClassifyError(f"malformed response from {host_of(self.url)}: not a list of products")
        return res

    def download(self, uuid: str, name: str, workdir: str, monitor: Optional[Monitor] = None) -> str:
        """Download product ``uuid`` (called ``name`` in messages) into ``workdir``; returns the file's path.
        No total deadline, the stall rule and cancel apply."""
        mon = monitor or self.http.monitor
        api = self.api()
        with self.http.watch(self.url, f"download of {name}", total=False, stall=True) as watch:
            api._tqdm = api.downloader._tqdm = lambda w=watch, m=mon, **kw: _Progress(w, m, **kw)
            try:
                info = api.download(uuid, directory_path=workdir, checksum=True)
            except Exception as e:
                if watch.fired == "stall":
                    raise watch.error("(the partial download is resumed on the next run)") from e
                if watch.fired:
                    raise watch.error() from e
                raise self.translate(e, "download")
        return info["path"]

    def translate(self, e: Exception, what: str) -> SatClassifyError:
        import requests
        from sentinelsat import exceptions as sx

        host = host_of(self.url)
        own = own_error(e)  # a deadline or a cancel
        if own is not None:
            return own
        if isinstance(e, sx.UnauthorizedError):
            return SatClassifyError(
                f"{host} refused the credentials (HTTP 401): check the user name and password of "
                "the authentication configuration (AUTHCFG)"
            )
        if isinstance(e, (sx.LTATriggered, sx.LTAError)):
            return SatClassifyError(
                f"the product is offline at {host} (long-term archive); its retrieval was "
                "requested: run again later or choose another date"
            )
        if isinstance(e, sx.InvalidChecksumError):
            return SatClassifyError(f"checksum mismatch for the product downloaded from {host}: run again")
        resp = getattr(e, "response", None)
        code = getattr(resp, "status_code", None)
        if code == 429:
            return SatClassifyError(f"quota reached at {host} (HTTP 429 Too Many Requests): wait before trying again")
        if isinstance(code, int) and code >= 500:
            return SatClassifyError(f"the service at {host} is failing (HTTP {code}): try again later")
        if isinstance(e, (requests.ConnectionError, requests.Timeout)):
            return SatClassifyError(
                f"cannot reach {host} ({type(e).__name__}): the service is down or unreachable; "
                "check the URL and the network, or try again later"
            )
        if isinstance(e, sx.SentinelAPIError):
            return SatClassifyError(self.http.redact(f"{what} at {host} failed: {getattr(e, 'msg', '') or e}"))
        return SatClassifyError(self.http.redact(f"{what} at {host} failed: {type(e).__name__}: {str(e)[:200]}"))


class _Progress:
    """sentinelsat's progress bar (``_tqdm``): the bytes feed the download's watch (stall rule) and the progress."""

    def __init__(self, watch: Watch, monitor, total=None, initial=0, desc="", **_):
        self.watch, self.monitor = watch, monitor
        self.total, self.n = total, initial or 0
        self.downloading = str(desc).startswith("Downloading")
        if self.downloading:
            watch.arm()  # the answer's headers are in: the transfer starts

    def update(self, n=1):
        self.watch.progress(n)
        self.n += n
        if self.downloading and self.total:
            self.monitor.progress(self.n / self.total)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
