"""Issue 25 (data loss) in the training CLI: outputs that are devices, run folders that already hold a run, two
trainings in one folder, --resume with options the checkpoint fixes, leftovers of interrupted writes."""

import os
import socket
import subprocess
import sys

import pytest
import torch

from satclassify_plugin.core.contract.paths import HOST_ID
from training.cli import main
from training.files import RUN_LOCK, RunLock, atomic_open

from .test_outputs import TINY, _digest, _err


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text("widths: {s1: 8, s2: 16, s3: 16, head: 16}\npixels_per_patch: 4\n")
    return str(p)


# --- 1. an output that is a device, a FIFO or a socket --------------------------------------------------------


@pytest.fixture
def specials(tmp_path):
    d = tmp_path / "special"
    d.mkdir()
    os.symlink("/dev/null", d / "null.onnx")  # a character device, through a link (a failing test replaces the link)
    os.mkfifo(d / "pipe.json")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d / "sock.onnx"))
    yield d
    sock.close()


def test_export_and_evaluate_refuse_a_device_fifo_or_socket(trained, dataset, specials, capsys):
    ck = trained["cnn_dual"]["best"]
    for name, what in (
        ("null.onnx", "a character device"),
        ("sock.onnx", "a socket"),
        ("pipe.json", "a FIFO (named pipe)"),
    ):
        out = str(specials / name)
        assert main(["export", "--checkpoint", ck, "--out", out]) == 2
        assert _err(capsys) == (
            f"error: cannot write '{out}': it is {what}, not a regular file, and the new file "
            "would replace it: give --out a file name"
        )
    out = str(specials / "pipe.json")
    assert main(["evaluate", "--checkpoint", ck, "--data", dataset, "--out", out]) == 2
    assert "it is a FIFO (named pipe), not a regular file" in _err(capsys)
    assert os.path.islink(specials / "null.onnx") and sorted(os.listdir(specials)) == [
        "null.onnx",
        "pipe.json",
        "sock.onnx",
    ]


def test_atomic_open_refuses_a_device_that_appears_during_the_write(tmp_path):
    from training.errors import TrainingError

    target = tmp_path / "m.json"
    with pytest.raises(TrainingError, match="it is a character device"):
        with atomic_open(str(target), "w") as f:
            f.write("{}")
            os.symlink("/dev/null", target)
    assert os.path.islink(target) and os.listdir(tmp_path) == ["m.json"]


# --- 3. run folders --------------------------------------------------------------------------------------------


def _train(dataset, cfg, out, *extra):
    return main(["train", "--data", dataset, "--config", cfg, "--out", str(out), *TINY, *extra])


def test_a_run_folder_holding_a_run_is_refused_without_overwrite(dataset, tiny_cfg, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(dataset, tiny_cfg, run) == 0
    capsys.readouterr()
    kept = {n: _digest(run / n) for n in ("best.pt", "last.pt", "log.csv")}
    assert _train(dataset, tiny_cfg, run, "--epochs", "2") == 2
    assert _err(capsys) == (
        f"error: --out '{run}' already holds a training run (best.pt, last.pt, log.csv, "
        "metrics.json): a new run would replace its checkpoints. Choose another --out folder, "
        f"continue that run with --resume {run / 'last.pt'}, or give --overwrite to replace it"
    )
    assert {n: _digest(run / n) for n in kept} == kept and RUN_LOCK not in os.listdir(run)
    # --overwrite replaces the run whole (no file of the old one stays behind)
    (run / "curves.png").unlink()
    assert _train(dataset, tiny_cfg, run, "--epochs", "2", "--overwrite") == 0
    assert len(torch.load(run / "last.pt", weights_only=True)["history"]) == 2
    assert sorted(os.listdir(run)) == ["best.pt", "config.yaml", "curves.png", "last.pt", "log.csv", "metrics.json"]
    # resuming into its own folder needs no --overwrite
    capsys.readouterr()
    assert main(["train", "--resume", str(run / "last.pt"), "--epochs", "3", "--no-progress"]) == 0
    assert len(torch.load(run / "last.pt", weights_only=True)["history"]) == 3


def test_a_second_training_in_a_folder_in_use_is_refused(dataset, tiny_cfg, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock().take(str(run))  # another training holds the folder
    try:
        assert _train(dataset, tiny_cfg, run) == 2
        assert _err(capsys) == (
            f"error: --out '{run}' is in use by another training (process {os.getpid()}): two "
            "runs in one folder would mix their checkpoints. Wait for it to finish, or choose "
            "another --out folder"
        )
        assert os.listdir(run) == [RUN_LOCK]
    finally:
        lock.release()
    assert os.listdir(run) == []


def test_a_lock_left_by_a_killed_training_is_not_in_the_way(dataset, tiny_cfg, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    (run / RUN_LOCK).write_text(f"{p.pid} {HOST_ID} gone\n")
    assert _train(dataset, tiny_cfg, run) == 0
    assert RUN_LOCK not in os.listdir(run)


def test_two_trainings_at_once_into_one_folder(dataset, tiny_cfg, tmp_path):
    """Real processes: exactly one of them trains, the other is refused with the message (before: both exit 0
    and leave a folder mixing their files)."""
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "training",
        "train",
        "--data",
        dataset,
        "--config",
        tiny_cfg,
        "--out",
        str(run),
        *TINY,
        "--epochs",
        "3",
    ]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    procs = [
        subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    err = [e for (_o, e), p in zip(outs, procs) if p.returncode == 2][0]
    assert "is in use by another training" in err or "already holds a training run" in err, err
    assert len(torch.load(run / "last.pt", weights_only=True)["history"]) == 3


# --- 9. --resume with options the checkpoint fixes -------------------------------------------------------------


def test_resume_refuses_options_that_the_checkpoint_fixes(trained, dataset, tmp_path, capsys):
    last = trained["unet"]["last"]
    new = tmp_path / "new"
    assert main(["train", "--resume", last, "--model", "cnn_dual", "--out", str(new), "--epochs", "9"]) == 2
    msg = _err(capsys)
    assert msg.startswith(
        f"error: --resume '{last}' continues a unet run whose options it fixes: --model cnn_dual "
        "(the checkpoint's run has unet). Drop this option to resume"
    )
    assert main(["train", "--resume", last, "--encoder", "resnet34", "--bands", "B02,B03", "--out", str(new)]) == 2
    assert (
        "--encoder resnet34 (the checkpoint's run has resnet18), --bands B02,B03 (the checkpoint's run has None)"
    ) in _err(capsys)
    assert not new.exists()


def test_resume_names_only_files_it_wrote(trained, dataset, tmp_path, capsys):
    ck = torch.load(trained["cnn_dual"]["last"], weights_only=True)
    ck["best"] = 2.0  # no epoch can beat it (mIoU <= 1): this run writes no best.pt
    src = tmp_path / "src" / "last.pt"
    src.parent.mkdir()
    torch.save(ck, src)
    new = tmp_path / "new"
    assert (
        main(["train", "--resume", str(src), "--out", str(new), "--epochs", str(ck["epoch"] + 2), "--no-progress"]) == 0
    )
    out, err = capsys.readouterr()
    import json

    res = json.loads(out.strip().splitlines()[-1])
    assert res["best"] is None and res["last"] == str(new / "last.pt") and os.path.isfile(res["last"])
    assert "no best.pt was written" in err and not (new / "best.pt").exists()


# --- 13. leftovers of interrupted writes -----------------------------------------------------------------------


def test_leftovers_of_a_dead_write_of_the_same_file_are_removed(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    gone = tmp_path / f".best.pt.{p.pid}-{HOST_ID}abcd.tmp"
    live = tmp_path / f".best.pt.1-{HOST_ID}abcd.tmp"
    other = tmp_path / f".last.pt.{p.pid}-{HOST_ID}abcd.tmp"
    for f in (gone, live, other):
        f.write_bytes(b"partial")
    with atomic_open(str(tmp_path / "best.pt"), "wb") as f:
        f.write(b"whole")
    assert not gone.exists() and live.exists() and other.exists()
    assert (tmp_path / "best.pt").read_bytes() == b"whole"
