"""Machine-readable progress of ``python -m training train|export --progress jsonl``, and cancellation on
SIGTERM / SIGINT. A program that drives the CLI as a child process (the QGIS tool ``satclassify:trainmodel``)
reads the events from the child's stdout and stops it with SIGTERM.

Protocol (version 1)
--------------------
With ``--progress jsonl`` each event is one line on **stdout**::

    SATCLASSIFY_PROGRESS {"event": "epoch", "epoch": 3, ...}

i.e. the prefix :data:`PREFIX` (``SATCLASSIFY_PROGRESS`` and one space), then one JSON object (no line breaks
in it; numbers that are not finite are ``null``). Other stdout lines are the human log (``epoch 3/20: ...``,
the final JSON result); read only the lines that start with the prefix (:func:`parse_line` does it). Errors
and warnings also go to stderr as before (``error: ...``, ``warning: ...``). Every object has ``"event"``:

``train``:

* ``start``: ``protocol`` (1), ``command`` ("train"), ``epochs`` (the last epoch, 1-based), ``start_epoch``
  (1-based, > 1 when resuming), ``steps_per_epoch`` (optimizer steps planned per epoch), ``device`` (e.g.
  "cuda:0", "cpu"), ``device_name`` (the CUDA GPU's name, or "cpu (<CPU model>)"), ``amp`` ("bf16", "fp16"
  or null), ``run_dir``, ``num_parameters``, ``model`` (the architecture), ``world_size`` (processes).
* ``step``: ``epoch`` (1-based), ``step`` (batches done in this epoch), ``steps`` (batches in this epoch). At
  most about two a second (:class:`JsonlProgress` throttles them); an epoch may end without a step event.
* ``epoch``: ``epoch``, ``epochs``, ``metrics`` (the epoch's row of ``log.csv``: train_loss, lr, val_loss,
  val_oa, val_miou, ...; null for a figure the task has not), ``improved`` (whether ``best.pt`` was written
  for it), ``seconds``. Sent after the epoch's checkpoints are written: a run cancelled later keeps it.
* ``warning``: ``message`` (also printed on stderr as ``warning: <message>``).
* ``done``: ``best`` and ``last`` (the checkpoint paths, null for one this run did not write), ``run_dir``,
  ``epochs_run``, ``early_stopped`` (bool).

``export``:

* ``start``: ``protocol``, ``command`` ("export"), ``checkpoint``, ``out``, ``format`` ("float32", "int8" or
  "float16").
* ``done``: ``onnx`` (the written file), ``card`` (the model card as stored in the file's metadata,
  ``metadata_props["satclassify"]``: the card travels inside the .onnx, there is no separate card file).

Both: ``cancelled``: ``command``, ``epoch`` (train: the epoch that was running). A failure prints its one
line ``error: ...`` on stderr (exit code 2) and sends no ``done``.

Cancellation
------------
SIGTERM or SIGINT (Ctrl+C) stops ``train`` within a few seconds: a flag (:class:`Cancel`) is checked between
batches (training and validation), so a checkpoint being written is always finished first. The run folder is
left as it was after the last finished epoch (``last.pt``, ``best.pt``, ``log.csv``; ``--resume last.pt``
continues it; ``curves.png`` and ``metrics.json`` are written only by a run that ends). The process prints
one line ``training cancelled at epoch N`` on stderr and exits with code 130. A second SIGINT interrupts at
once. ``export`` stops at once on either signal (exit code 130, ``export cancelled``): its files are
written under temporary names and moved onto ``--out`` only when complete, so no .onnx is left that looks
complete. Send the signal to the main process: it ends its DataLoader workers itself (a process-group kill
ends them too, and is recognised as the cancellation when the main process got the signal as well).
Under ``torchrun`` the signals are torchrun's (it ends the ranks).
"""

import json
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional, TextIO

PREFIX = "SATCLASSIFY_PROGRESS "
PROTOCOL = 1
STEP_INTERVAL = 0.5  # seconds between two step events at least


def plain(value: Any) -> Any:
    """``value`` as JSON can hold it: numpy scalars as numbers, non-finite floats as None, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) or hasattr(value, "item"):
        try:
            v = value.item() if hasattr(value, "item") else value
        except (TypeError, ValueError):
            return str(value)
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    return str(value)


class Progress:
    """Where a run's events go. This base drops them (no ``--progress jsonl``)."""

    def emit(self, event: str, **fields: Any) -> None:
        """Send one event."""

    def step(self, epoch: int, step: int, steps: int) -> None:
        """A batch is done (subclasses throttle these)."""

    def warning(self, message: str) -> None:
        self.emit("warning", message=message)


class JsonlProgress(Progress):
    """Events as ``SATCLASSIFY_PROGRESS {json}`` lines on ``stream`` (stdout); step events at most one per
    ``interval`` seconds."""

    def __init__(
        self,
        stream: Optional[TextIO] = None,
        interval: float = STEP_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self._last_step: Optional[float] = None

    def emit(self, event: str, **fields: Any) -> None:
        line = PREFIX + json.dumps({"event": event, **plain(fields)}, allow_nan=False, separators=(",", ":"))
        out = self.stream or sys.stdout
        out.write(line + "\n")
        out.flush()

    def step(self, epoch: int, step: int, steps: int) -> None:
        now = self.clock()
        if self._last_step is not None and now - self._last_step < self.interval:
            return
        self._last_step = now
        self.emit("step", epoch=epoch, step=step, steps=steps)


def make_progress(mode: Optional[str]) -> Progress:
    """The reporter of a ``--progress`` value: ``jsonl`` -> :class:`JsonlProgress`, anything else the silent
    :class:`Progress` (tqdm bars are the training loop's own)."""
    return JsonlProgress() if mode == "jsonl" else Progress()


def parse_line(line: str) -> Optional[Dict[str, Any]]:
    """The event of one stdout line, or None for a line that is not an event (the human log)."""
    if not line.startswith(PREFIX):
        return None
    return json.loads(line[len(PREFIX) :])


class Cancelled(BaseException):
    """The run was stopped by SIGTERM / SIGINT. Not a user error: the CLI prints ``str(e)`` and exits 130. A
    BaseException (like KeyboardInterrupt), so that no ``except Exception`` on the way turns it into an error."""

    def __init__(self, command: str = "training", epoch: Optional[int] = None) -> None:
        self.command, self.epoch = command, epoch
        super().__init__(f"{command} cancelled" + (f" at epoch {epoch}" if epoch is not None else ""))


class Cancel:
    """The cancellation flag a run polls: :meth:`installed` makes SIGTERM and SIGINT set it (and, with
    ``immediate``, raise :class:`Cancelled` at once); :meth:`check` raises :class:`Cancelled` once it is set."""

    def __init__(self, command: str = "training") -> None:
        self.command = command
        self.signum: Optional[int] = None
        self.immediate = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum

    def check(self, epoch: Optional[int] = None) -> None:
        if self.requested:
            raise Cancelled(self.command, epoch)

    def settle(self, seconds: float = 0.3) -> bool:
        """Whether the flag is set, waiting up to ``seconds`` for a signal in flight (a DataLoader worker killed
        with its process group fails the batch before the main process's own handler has run)."""
        end = time.monotonic() + seconds
        while not self.requested and time.monotonic() < end:
            time.sleep(0.02)
        return self.requested

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: stop now
        self.signum = signum
        if self.immediate:
            raise Cancelled(self.command)

    @contextmanager
    def installed(self, immediate: bool = False) -> Iterator["Cancel"]:
        """SIGTERM and SIGINT handled by this flag while the block runs (only in the main thread, where Python
        delivers signals; elsewhere the block runs without it)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self.immediate = immediate
        old = {s: signal.signal(s, self._handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def cpu_name() -> str:
    """'cpu' and the CPU's model name where the system says it (Linux /proc/cpuinfo, else platform)."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if not model:
        import platform

        model = platform.processor()
    return f"cpu ({model})" if model else "cpu"
