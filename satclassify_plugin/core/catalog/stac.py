"""A STAC API through pystac-client (imported lazily), on a session with the client's deadlines, cancel,
retries and proxy (:meth:`~satclassify_plugin.core.net.HttpClient.mount`). Yields the items as dicts."""

from __future__ import annotations

from typing import Any, Dict, Generator

from ..contract.errors import SatClassifyError
from ..net import HttpClient, host_of, own_error, status_error


class StacCatalog:
    def __init__(self, url: str, http: HttpClient):
        self.url, self.http = url, http

    def _client(self):
        import pystac_client
        from pystac_client.stac_api_io import StacApiIO

        io = StacApiIO(max_retries=None, timeout=self.http.timeout)
        self.http.mount(io.session)
        try:
            return pystac_client.Client.open(self.url, stac_io=io)
        except Exception as e:
            io.session.close()
            raise self.translate(e, "opening the catalogue")

    def items(self, **search: Any) -> Generator[Dict[str, Any], None, None]:
        """The items of ``Client.search(**search)`` as dicts; any failure is a clear SatClassifyError."""
        client = self._client()
        try:
            for d in client.search(**search).items_as_dicts():
                self.http.monitor.check()
                yield d
        except SatClassifyError:
            raise
        except Exception as e:
            raise self.translate(e, "searching")
        finally:
            io = getattr(client, "_stac_io", None)
            if io is not None and getattr(io, "session", None) is not None:
                io.session.close()

    def translate(self, e: Exception, what: str) -> SatClassifyError:
        own = own_error(e)  # a deadline or a cancel, through pystac-client's APIError
        if own is not None:
            return own
        import requests
        from pystac_client.exceptions import APIError

        host = host_of(self.url)
        tries = self.http.retries + 1
        status = getattr(e, "status_code", None) if isinstance(e, APIError) else None
        if status:
            return SatClassifyError(status_error(int(status), host, str(e)[:200], tries, what, self.url))
        text = str(e)
        if isinstance(e, APIError) and any(
            k in text
            for k in (
                "NewConnectionError",
                "Connection refused",
                "Max retries exceeded",
                "timed out",
                "Name or service not known",
            )
        ):
            return SatClassifyError(
                f"cannot reach {host} (connection failed after {tries} tries): the service is "
                "down or unreachable; check the URL and the network, or try again later"
            )
        if isinstance(e, (requests.ConnectionError, requests.Timeout)):
            cause = str(e)
            if "Max retries exceeded" in cause and "too many" in cause and "error responses" in cause:
                return SatClassifyError(f"the service at {host} kept failing after {tries} tries: try again later")
            return SatClassifyError(
                f"cannot reach {host} ({type(e).__name__}): the service is down or unreachable; "
                "check the URL and the network, or try again later"
            )
        if isinstance(e, requests.RetryError if hasattr(requests, "RetryError") else ()):
            return SatClassifyError(f"the service at {host} kept failing after {tries} tries: try again later")
        if isinstance(e, ValueError):  # JSONDecodeError and pystac's own validation
            return SatClassifyError(f"malformed response from {host} while {what}: {str(e)[:160]}")
        return SatClassifyError(f"{what} at {host} failed: {type(e).__name__}: {str(e)[:200]}")
