"""The one deadline policy of every network call of the plugin (see :mod:`satclassify_plugin.core.net`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from ..contract.errors import SatClassifyError

TIMEOUT_ENV = "SATCLASSIFY_HTTP_TIMEOUT"
DEFAULT_TIMEOUT = 120.0


class DeadlineExceeded(SatClassifyError):
    """A network call hit its deadline or stalled (the message names the host and what to do)."""


@dataclass(frozen=True)
class Deadlines:
    """An API request (all its tries and waits) ends within ``total`` seconds; a transfer (download, GDAL read)
    fails when less than ``min_rate`` bytes/s arrive for ``stall`` seconds. :meth:`from_env` is the default."""

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
            raise SatClassifyError(
                f"the environment variable {TIMEOUT_ENV} must be a number of seconds above 0 (e.g. 300), not '{v}'"
            )
        return cls.from_timeout(s)

    @property
    def timeout(self):
        """requests' (connect, read) timeouts. The read timeout is only a safety net, just beyond ``total``: the
        watches end a call first (per-read timeouts alone cannot bound a call: a trickle resets them)."""
        return (self.connect, self.total + 1.0)

    def hint(self) -> str:
        return (
            f"it may be overloaded; try again later, raise the timeout (environment variable {TIMEOUT_ENV}, "
            f"now {self.total:g} s) or choose another SOURCE"
        )

    def exceeded(self, host: str, what: str = "", note: str = "") -> str:
        """The message for a call that hit ``total`` (``note``: said before the advice)."""
        return (
            f"the server at {host} did not finish answering within {self.total:g} s"
            f"{' (' + what + ')' if what else ''}{' ' + note if note else ''}: {self.hint()}"
        )

    def stalled(self, host: str, what: str = "", note: str = "") -> str:
        """The message for a transfer that stalled (less than ``min_rate`` bytes/s for ``stall`` s)."""
        return (
            f"the server at {host} stopped sending{' (' + what + ')' if what else ''}: less than "
            f"{self.min_rate} bytes/s for {self.stall:g} s{' ' + note if note else ''}; {self.hint()}"
        )

    def gdal_options(self, retries: int = 3) -> Dict[str, str]:
        """GDAL config options applying this policy to /vsicurl/ reads (curl: total time per request, low speed)."""
        return {
            "GDAL_HTTP_TIMEOUT": str(max(1, math.ceil(self.total))),
            "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, math.ceil(self.connect))),
            "GDAL_HTTP_LOW_SPEED_TIME": str(max(1, math.ceil(self.stall))),
            "GDAL_HTTP_LOW_SPEED_LIMIT": str(int(self.min_rate)),
            "GDAL_HTTP_MAX_RETRY": str(max(0, int(retries))),
        }

    @classmethod
    def from_gdal_options(cls, get: Callable[[str], Optional[str]]) -> "Deadlines":
        """The policy that :meth:`gdal_options` wrote (``get``: e.g. ``gdal.GetConfigOption``)."""

        def num(key, default):
            try:
                return float(get(key) or default)
            except (TypeError, ValueError):
                return default

        d = cls()
        return cls(
            total=num("GDAL_HTTP_TIMEOUT", d.total),
            connect=num("GDAL_HTTP_CONNECTTIMEOUT", d.connect),
            stall=num("GDAL_HTTP_LOW_SPEED_TIME", d.stall),
            min_rate=int(num("GDAL_HTTP_LOW_SPEED_LIMIT", d.min_rate)),
        )
