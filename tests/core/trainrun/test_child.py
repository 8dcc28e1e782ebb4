"""The child-process runner of trainmodel: lines in order, cancel of the whole process group within 5 s."""

import os
import sys
import textwrap
import time

import pytest

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.contract.feedback import Monitor
from satclassify_plugin.core.trainrun.child import ChildResult, child_message, run_child

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX process groups")


def _script(tmp_path, body):
    p = tmp_path / "child.py"
    p.write_text(textwrap.dedent(body))
    return [sys.executable, "-u", str(p)]


def test_lines_reach_the_callbacks(tmp_path):
    out, err = [], []
    res = run_child(
        _script(
            tmp_path,
            """
        import sys
        for i in range(3):
            print(f"line {i}")
        print("error: the dataset is bad", file=sys.stderr)
        sys.exit(2)
        """,
        ),
        on_stdout=out.append,
        on_stderr=err.append,
    )
    assert out == ["line 0", "line 1", "line 2"] and err == ["error: the dataset is bad"]
    assert res.returncode == 2 and not res.canceled
    assert child_message(res) == "the dataset is bad"


def test_a_traceback_becomes_its_last_line():
    res = ChildResult(
        1,
        False,
        [
            "Traceback (most recent call last):",
            '  File "x.py", line 1',
            "",
            "ModuleNotFoundError: No module named 'torch'",
        ],
        0.1,
    )
    assert child_message(res, "the training") == (
        "the training failed (exit code 1): ModuleNotFoundError: No module named 'torch'"
    )


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (not yet reaped by its parent) is gone too
        return f.read().split(")")[-1].split()[0] != "Z"


def test_cancel_kills_the_group_even_when_sigterm_is_ignored(tmp_path):
    """A child that ignores SIGTERM and has a worker process: both are gone within 5 s of the cancel."""
    pids = tmp_path / "pids"
    argv = _script(
        tmp_path,
        f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        w = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); time.sleep(60)"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{w.pid}}")
        print("started", flush=True)
        time.sleep(60)
        """,
    )
    state = {"cancel": False, "at": None}

    def on_out(line):
        if line == "started":
            state["cancel"], state["at"] = True, time.time()

    res = run_child(argv, on_stdout=on_out, monitor=Monitor(is_canceled=lambda: state["cancel"]))
    took = time.time() - state["at"]
    assert res.canceled and took < 5
    leader, worker = map(int, pids.read_text().split())
    time.sleep(0.2)
    assert not _alive(leader) and not _alive(worker)


def test_a_program_that_cannot_start_is_a_clear_error(tmp_path):
    with pytest.raises(SatClassifyError, match="cannot start"):
        run_child([str(tmp_path / "no-python")])
