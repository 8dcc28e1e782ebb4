"""The one feedback contract of long core calls: progress, messages, cancel (pure Python).

Every long core call takes one :class:`Monitor` (``monitor=``, None = silent) and raises :class:`Canceled` when the
user cancels (``monitor.check()``). Progress is always a fraction 0-1 of the call's work; a step of a call reports
through ``monitor.sub(start, end)``. The algorithms adapt ``QgsProcessingFeedback`` (percent) in one place,
``SatClassifyAlgorithm.monitor``, and turn ``Canceled`` (a :class:`SatClassifyError`) into the tool's message like
any other user error.
"""

from typing import Callable, Optional

from .errors import SatClassifyError


class Canceled(SatClassifyError):
    """The user cancelled the run. The message says what happened to the output (default: nothing kept)."""

    def __init__(self, message: str = "cancelled by the user: no output was written"):
        super().__init__(message)


class Monitor:
    """Progress (a fraction 0-1), messages and cancel. All callbacks are optional."""

    def __init__(
        self,
        progress: Optional[Callable[[float], None]] = None,
        info: Optional[Callable[[str], None]] = None,
        is_canceled: Optional[Callable[[], bool]] = None,
    ):
        self._progress, self._info, self._is_canceled = progress, info, is_canceled

    def progress(self, fraction: float) -> None:
        if self._progress:
            self._progress(max(0.0, min(1.0, float(fraction))))

    def info(self, message: str) -> None:
        if self._info:
            self._info(message)

    def canceled(self) -> bool:
        return bool(self._is_canceled and self._is_canceled())

    def check(self) -> None:
        if self.canceled():
            raise Canceled()

    def sub(self, start: float, end: float) -> "Monitor":
        """A monitor mapping 0-1 onto [start, end] (fractions) of this one."""
        return Monitor(lambda f: self.progress(start + (end - start) * f), self._info, self._is_canceled)
