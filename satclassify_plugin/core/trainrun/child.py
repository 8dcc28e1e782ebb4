"""Run a child process (the training CLI) from a tool: lines streamed to callbacks, cancel within seconds.

The child starts in its own process group (POSIX: a new session; Windows: a new process group), so Cancel reaches
the DataLoader worker processes it forked as well. Cancel is staged so that the whole stop stays under 5 s:
SIGTERM to the child itself (the training CLI stops between two batches, ends its workers and exits with code
130, its run folder as after the last finished epoch), SIGTERM to the whole group :data:`GROUP_AFTER` seconds
later (a batch that takes long: the workers go too), SIGKILL to whatever of the group is still alive
:data:`KILL_AFTER` seconds after the cancel. Terminating the group at once would kill the workers first, and
the child would die of a "DataLoader worker killed" error instead of stopping cleanly. The caller's thread polls
the monitor's cancel flag every :data:`POLL` seconds and runs the line callbacks itself (QGIS feedback objects
are called from the tool's own thread).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from typing import Callable, List, Mapping, Optional, Sequence

from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor

POLL = 0.2
#: seconds after the cancel: SIGTERM to the whole group, then SIGKILL to it (the whole stop stays under 5 s)
GROUP_AFTER = 1.5
KILL_AFTER = 3.5
TAIL = 40


class ChildResult:
    def __init__(self, returncode: int, canceled: bool, stderr_tail: List[str], seconds: float):
        self.returncode, self.canceled, self.stderr_tail, self.seconds = returncode, canceled, stderr_tail, seconds


def _reader(stream, name, q):
    try:
        for line in iter(stream.readline, ""):
            q.put((name, line.rstrip("\r\n")))
    except (OSError, ValueError):
        pass
    finally:
        q.put((name, None))


def _signal_group(proc, sig, group=True):
    if os.name == "nt":  # pragma: no cover - Windows
        if sig == getattr(signal, "SIGKILL", None) or sig is None:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True)
        else:
            proc.send_signal(signal.CTRL_BREAK_EVENT)
        return
    try:
        if group:
            os.killpg(proc.pid, sig)
        elif proc.poll() is None:
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_child(
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    on_stdout: Callable[[str], None] = lambda _l: None,
    on_stderr: Callable[[str], None] = lambda _l: None,
    monitor: Optional[Monitor] = None,
    poll: float = POLL,
    kill_after: float = KILL_AFTER,
) -> ChildResult:
    """Run ``argv``; each stdout / stderr line goes to ``on_stdout`` / ``on_stderr`` (in this thread). When
    ``monitor`` is cancelled the process group is terminated, then killed; the result says so. A program that cannot
    start raises SatClassifyError."""
    monitor = monitor or Monitor()
    kw: dict = {}
    if os.name == "nt":  # pragma: no cover - Windows
        kw["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
    else:
        kw["start_new_session"] = True
    t0 = time.time()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            **kw,
        )
    except OSError as e:
        raise SatClassifyError(f"cannot start {argv[0]}: {e.strerror or e}")
    q: "queue.Queue" = queue.Queue()
    threads = [
        threading.Thread(target=_reader, args=(proc.stdout, "out", q), daemon=True),
        threading.Thread(target=_reader, args=(proc.stderr, "err", q), daemon=True),
    ]
    for t in threads:
        t.start()
    tail: List[str] = []
    open_streams, canceled, term_at, group_termed = 2, False, 0.0, False
    try:
        while open_streams or proc.poll() is None:
            if not canceled and monitor.canceled():
                canceled, term_at = True, time.time()
                _signal_group(proc, signal.SIGTERM, group=False)
            if canceled and not group_termed and time.time() - term_at > min(GROUP_AFTER, kill_after / 2):
                group_termed = True
                _signal_group(proc, signal.SIGTERM)
            if canceled and time.time() - term_at > kill_after:
                _signal_group(proc, getattr(signal, "SIGKILL", None))
                break
            try:
                name, line = q.get(timeout=poll)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
                continue
            if name == "out":
                on_stdout(line)
            else:
                tail = (tail + [line])[-TAIL:]
                on_stderr(line)
    finally:
        if proc.poll() is None:
            try:
                proc.wait(timeout=max(0.1, kill_after - (time.time() - term_at)) if canceled else 0.1)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            _signal_group(proc, getattr(signal, "SIGKILL", None))
            proc.wait()
        elif os.name != "nt":  # the leader is gone: its workers go with it
            _signal_group(proc, signal.SIGKILL)
        for stream in (proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
    return ChildResult(proc.returncode, canceled, tail, time.time() - t0)


def child_message(result: ChildResult, what: str = "the training process") -> str:
    """The child's own one-line message: its ``error: ...`` line (the training CLI's user errors), else the last line
    it wrote on stderr (e.g. the last line of a traceback), never the traceback itself."""
    for line in reversed(result.stderr_tail):
        if line.startswith("error: "):
            return line[len("error: ") :].strip()
    lines = [line.strip() for line in result.stderr_tail if line.strip()]
    last = lines[-1] if lines else "no message"
    return f"{what} failed (exit code {result.returncode}): {last}"
