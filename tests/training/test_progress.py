"""``--progress jsonl`` (training/progress.py's protocol) and cancellation by SIGTERM / SIGINT (issue 27: the
QGIS tool trainmodel reads these events from the child's stdout and stops it with SIGTERM)."""

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from training import checkpoint as ckpt_io
from training.cli import main
from training.progress import PREFIX, Cancel, Cancelled, JsonlProgress, parse_line

from .conftest import ROOT

TINY_YAML = "widths: {s1: 8, s2: 16, s3: 16, head: 16}\npixels_per_patch: 4\n"


def _events(text):
    return [e for e in (parse_line(ln) for ln in text.splitlines()) if e is not None]


def _log_rows(run):
    with open(os.path.join(run, "log.csv"), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_jsonl_lines_and_step_throttle():
    now = [0.0]
    out = io.StringIO()
    p = JsonlProgress(out, interval=0.5, clock=lambda: now[0])
    for i in range(10):  # 10 steps within 0.45 s: one event
        now[0] = i * 0.05
        p.step(1, i + 1, 100)
    now[0] = 0.6
    p.step(1, 11, 100)
    p.emit("epoch", metrics={"val_miou": float("nan"), "val_oa": 0.5}, improved=True)
    lines = out.getvalue().splitlines()
    assert all(ln.startswith(PREFIX) and "\n" not in ln for ln in lines)
    ev = [parse_line(ln) for ln in lines]
    assert ev == [
        {"event": "step", "epoch": 1, "step": 1, "steps": 100},
        {"event": "step", "epoch": 1, "step": 11, "steps": 100},
        {"event": "epoch", "metrics": {"val_miou": None, "val_oa": 0.5}, "improved": True},
    ]
    assert parse_line("epoch 1/2: train_loss 0.1") is None


@pytest.fixture(scope="module")
def tiny_run(dataset, tmp_path_factory):
    """A 2-epoch CNN-dual run with --progress jsonl: (run folder, stdout, stderr)."""
    tmp = tmp_path_factory.mktemp("progress")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(TINY_YAML)
    run = str(tmp / "run")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(
            [
                "train",
                "--data",
                dataset,
                "--model",
                "cnn_dual",
                "--config",
                str(cfg),
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--out",
                run,
                "--progress",
                "jsonl",
            ]
        )
    assert rc == 0, err.getvalue()
    return run, out.getvalue(), err.getvalue()


def test_progress_events_of_a_two_epoch_training_and_its_export(tiny_run, tmp_path, capsys):
    run, stdout, stderr = tiny_run
    assert "\r" not in stderr  # no tqdm bars with jsonl
    ev = _events(stdout)
    kinds = [e["event"] for e in ev]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("epoch") == 2, kinds
    start = ev[0]
    assert (
        start["protocol"],
        start["command"],
        start["epochs"],
        start["start_epoch"],
        start["model"],
        start["device"],
        start["amp"],
        start["run_dir"],
    ) == (1, "train", 2, 1, "cnn_dual", "cpu", None, run)
    assert start["device_name"].startswith("cpu") and start["steps_per_epoch"] >= 1
    ck = ckpt_io.load(os.path.join(run, "last.pt"))
    assert start["num_parameters"] == ck["num_parameters"] > 0
    steps = [e for e in ev if e["event"] == "step"]
    assert steps and all(1 <= e["step"] <= e["steps"] and e["epoch"] in (1, 2) for e in steps)
    epochs = [e for e in ev if e["event"] == "epoch"]
    rows = _log_rows(run)
    for e, row, hist in zip(epochs, rows, ck["history"]):
        assert e["epochs"] == 2 and e["metrics"] == hist and e["seconds"] == hist["seconds"]
        assert float(row["val_oa"]) == pytest.approx(e["metrics"]["val_oa"])
    assert [e["epoch"] for e in epochs] == [1, 2] and epochs[0]["improved"] is True
    done = ev[-1]
    assert done == {
        "event": "done",
        "best": os.path.join(run, "best.pt"),
        "last": os.path.join(run, "last.pt"),
        "run_dir": run,
        "epochs_run": 2,
        "early_stopped": False,
    }
    assert json.loads(stdout.strip().splitlines()[-1])["epochs_run"] == 2  # the result line is still there

    onnx = str(tmp_path / "m.onnx")
    assert main(["export", "--checkpoint", done["best"], "--out", onnx, "--progress", "jsonl"]) == 0
    ev = _events(capsys.readouterr().out)
    assert [e["event"] for e in ev] == ["start", "done"]
    assert ev[0]["format"] == "float32" and ev[0]["out"] == onnx and ev[0]["command"] == "export"
    from training.card import read_card

    assert ev[1]["onnx"] == onnx and ev[1]["card"] == read_card(onnx).to_dict()


def test_warnings_are_events(tmp_path, capsys):
    from .test_cli import _one_class_dataset

    d = _one_class_dataset(tmp_path / "one")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY_YAML)
    assert (
        main(
            [
                "train",
                "--data",
                d,
                "--model",
                "cnn_dual",
                "--config",
                str(cfg),
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "r"),
                "--progress",
                "jsonl",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    warns = [e["message"] for e in _events(out.out) if e["event"] == "warning"]
    assert len(warns) == 1 and warns[0].startswith("the dataset has only one class")
    assert f"warning: {warns[0]}" in out.err


def test_sigterm_mid_epoch_stops_within_5s_and_keeps_the_run_consistent(dataset, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("widths: {s1: 8, s2: 16, s3: 16, head: 16}\npixels_per_patch: 8\nbatch_size: 2\n")
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "training",
            "train",
            "--data",
            dataset,
            "--model",
            "cnn_dual",
            "--config",
            str(cfg),
            "--epochs",
            "200",
            "--device",
            "cpu",
            "--out",
            str(run),
            "--progress",
            "jsonl",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        deadline = time.time() + 240
        for line in p.stdout:  # streamed while it trains, not only at the end
            ev = parse_line(line)
            if ev is not None:
                seen.append(ev)
            if any(e["event"] == "epoch" for e in seen) and ev is not None and ev["event"] == "step":
                break
            assert time.time() < deadline and p.poll() is None, seen
        t0 = time.time()
        p.send_signal(signal.SIGTERM)
        rest, err = p.communicate(timeout=30)
        stopped = time.time() - t0
    finally:
        if p.poll() is None:
            p.kill()
    seen += _events(rest)
    assert p.returncode == 130, err
    assert stopped < 5, stopped
    done = [e["epoch"] for e in seen if e["event"] == "epoch"]
    n = done[-1] + 1  # the epoch that was running
    assert err.strip() == f"training cancelled at epoch {n}", err
    assert "Traceback" not in err and not any(e["event"] == "done" for e in seen)
    assert seen[-1] == {"event": "cancelled", "command": "train", "epoch": n}
    # the run folder as after epoch n - 1: checkpoint, log and the epoch events agree; nothing half-written
    ck = ckpt_io.load(str(run / "last.pt"))
    assert int(ck["epoch"]) + 1 == n - 1 == len(ck["history"]) == len(_log_rows(str(run))) == len(done)
    assert sorted(os.listdir(run)) == ["best.pt", "config.yaml", "last.pt", "log.csv"]


def test_sigint_sets_the_flag_and_a_second_interrupts():
    c = Cancel()
    before = signal.getsignal(signal.SIGINT)
    with c.installed():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert c.requested
        with pytest.raises(Cancelled, match="^training cancelled at epoch 3$"):
            c.check(3)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.fixture(scope="module")
def checkpoint(tiny_run):
    return os.path.join(tiny_run[0], "best.pt")


def _sigterm_self():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(1)  # the handler raises here
    raise AssertionError("the SIGTERM handler did not stop the export")


def _export_cancelled(args, capsys):
    assert main(["export", *args, "--progress", "jsonl"]) == 130
    out = capsys.readouterr()
    assert out.err.strip() == "export cancelled" and "Traceback" not in out.err
    assert [e["event"] for e in _events(out.out)] == ["start", "cancelled"]


def test_sigterm_during_export_leaves_no_onnx(checkpoint, tmp_path, monkeypatch, capsys):
    import training.export as ex

    onnx = tmp_path / "m.onnx"

    @contextlib.contextmanager
    def half_written(path, mode="wb", **kw):
        with real(path, mode, **kw) as f:

            class Half:
                def write(self, data):
                    f.write(data[: len(data) // 2])
                    _sigterm_self()

            yield Half()

    real = ex.atomic_open
    monkeypatch.setattr(ex, "atomic_open", half_written)
    _export_cancelled(["--checkpoint", checkpoint, "--out", str(onnx)], capsys)
    assert os.listdir(tmp_path) == []  # neither the .onnx nor its temporary file
    monkeypatch.setattr(ex, "atomic_open", real)

    def parity(*a, **kw):
        _sigterm_self()

    monkeypatch.setattr(ex, "parity", parity)
    _export_cancelled(["--checkpoint", checkpoint, "--out", str(onnx)], capsys)
    assert os.listdir(tmp_path) == []


def test_sigterm_before_the_card_info_is_in_removes_the_onnx(checkpoint, tmp_path, monkeypatch, capsys):
    import training.card as card

    info = tmp_path / "info.json"
    info.write_text('{"description": "x"}')
    monkeypatch.setattr(card, "merge_training_info", lambda *a: _sigterm_self())
    _export_cancelled(["--checkpoint", checkpoint, "--out", str(tmp_path / "m.onnx"), "--card-info", str(info)], capsys)
    assert os.listdir(tmp_path) == ["info.json"]
