"""Outputs of the CLI: never over an input, whole or not at all, and a write that fails (read-only, no
permission, immutable, full disk, a path through a file) is one line "error: cannot write ...", exit 2.

Tests run as root here, so permissions do not stop a write: a failing disk is simulated where Python opens a
file for writing (and creates a folder) below one folder, which is where any real failure surfaces too."""

import builtins
import errno
import hashlib
import io
import os

import pytest

from training.cli import main

from .conftest import make_dataset

TINY = ["--model", "cnn_dual", "--epochs", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text("widths: {s1: 8, s2: 16, s3: 16, head: 16}\npixels_per_patch: 4\n")
    return str(p)


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else None


class _Disk:
    """Everything below ``root`` is on a failing disk: opening a file there for writing (or creating a folder)
    raises ``OSError(err)``; with ``err=ENOSPC`` and ``room`` bytes, writes succeed until ``room`` bytes are
    used, then the write that does not fit writes what fits and raises ENOSPC, as a full disk does."""

    def __init__(self, monkeypatch, root, err, room=0):
        self.root, self.err, self.room = os.path.abspath(root) + os.sep, err, room
        self._open, self._mkdir = builtins.open, os.mkdir
        monkeypatch.setattr(builtins, "open", self.open)
        monkeypatch.setattr(os, "mkdir", self.mkdir)

    def _below(self, path):
        return isinstance(path, (str, os.PathLike)) and (os.path.abspath(path) + os.sep).startswith(self.root)

    def _fail(self, path):
        raise OSError(self.err, os.strerror(self.err), str(path))

    def mkdir(self, path, *a, **kw):
        if self._below(path) and self.err != errno.ENOSPC:
            self._fail(path)
        return self._mkdir(path, *a, **kw)

    def open(self, file, mode="r", *a, **kw):
        if not (self._below(file) and any(c in mode for c in "wax+")):
            return self._open(file, mode, *a, **kw)
        if self.err != errno.ENOSPC:
            self._fail(file)
        raw = _FullIO(file, mode.replace("b", "").replace("t", ""), self)
        if "b" in mode:
            return io.BufferedWriter(raw)
        return io.TextIOWrapper(
            io.BufferedWriter(raw), encoding=kw.get("encoding") or "utf-8", newline=kw.get("newline")
        )


class _FullIO(io.FileIO):
    def __init__(self, path, mode, disk):
        super().__init__(path, mode)
        self.disk = disk

    def write(self, b):
        b = memoryview(b).cast("B")
        if len(b) > self.disk.room:
            super().write(b[: self.disk.room])
            self.disk.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.disk.room -= len(b)
        return super().write(b)


#: core.contract.errors' texts (the plugin's tools say the same)
REASON = {
    errno.EROFS: "the disk is read-only: choose a folder you can write to",
    errno.EACCES: "permission denied: choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted (an immutable file or folder?): choose another folder",
    errno.ENOSPC: "the disk is full: free space or choose another folder",
}


# --- an output on an input ------------------------------------------------------------------------------------


def test_export_out_on_its_checkpoint_is_refused(trained, tmp_path, capsys):
    import shutil

    ck = tmp_path / "best.pt"
    shutil.copy(trained["cnn_dual"]["best"], ck)
    os.symlink(ck, tmp_path / "link.onnx")
    os.link(ck, tmp_path / "hard.onnx")
    before = _digest(ck)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for out in (str(ck), "best.pt", "./sub/../best.pt", str(tmp_path / "link.onnx"), "hard.onnx"):
            (tmp_path / "sub").mkdir(exist_ok=True)
            assert main(["export", "--checkpoint", str(ck), "--out", out]) == 2, out
            assert _err(capsys) == (
                f"error: --out '{out}' is the --checkpoint '{ck}': writing it would destroy that "
                "input. Give --out another path"
            )
    finally:
        os.chdir(cwd)
    assert _digest(ck) == before and os.path.islink(tmp_path / "link.onnx")
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "hard.onnx", "link.onnx", "sub"]


def test_evaluate_out_on_the_checkpoint_or_the_dataset_is_refused(trained, tmp_path, capsys):
    import shutil

    data = make_dataset(tmp_path / "ds", splits=(("test", 2),))
    ck = str(tmp_path / "best.pt")
    shutil.copy(trained["cnn_dual"]["best"], ck)
    keep = {p: _digest(p) for p in (ck, os.path.join(data, "manifest.json"))}
    assert main(["evaluate", "--checkpoint", ck, "--data", data, "--out", ck]) == 2
    assert "error: --out" in (msg := _err(capsys)) and f"is the --checkpoint '{ck}'" in msg
    man = os.path.join(data, "manifest.json")
    assert main(["evaluate", "--checkpoint", ck, "--data", data, "--out", man]) == 2
    assert _err(capsys) == (
        f"error: --out '{man}' is the dataset file 'manifest.json' of --data '{man}': writing "
        "it would destroy that input. Give --out another path"
    )
    assert main(["evaluate", "--checkpoint", ck, "--data", data, "--out", data]) == 2
    assert f"is the dataset folder --data '{data}'" in _err(capsys)
    assert {p: _digest(p) for p in keep} == keep


def test_train_run_files_on_inputs_are_refused(trained, dataset, tiny_cfg, tmp_path, capsys):
    import shutil

    cls = tmp_path / "cls"
    cls.mkdir()
    shutil.copy(trained["cnn_class"]["best"], cls / "best.pt")
    before = _digest(cls / "best.pt")
    assert (
        main(
            [
                "train",
                "--data",
                dataset,
                "--model",
                "unet",
                "--encoder",
                "resnet18",
                "--encoder-from",
                str(cls / "best.pt"),
                "--out",
                str(cls),
                "--epochs",
                "1",
            ]
        )
        == 2
    )
    assert _err(capsys) == (
        f"error: the run file '{cls / 'best.pt'}' is the --encoder-from '{cls / 'best.pt'}': "
        "writing it would destroy that input. Choose another --out folder"
    )
    assert _digest(cls / "best.pt") == before and os.listdir(cls) == ["best.pt"]

    run = tmp_path / "run"
    run.mkdir()
    cfg = run / "config.yaml"
    shutil.copy(tiny_cfg, cfg)
    assert main(["train", "--data", dataset, "--config", str(cfg), "--out", str(run), *TINY]) == 2
    assert f"the run file '{run / 'config.yaml'}' is the --config '{cfg}'" in _err(capsys)
    assert os.listdir(run) == ["config.yaml"]

    data = make_dataset(tmp_path / "ds", splits=(("train", 4),))
    listing = _listing(data)
    assert main(["train", "--data", data, "--config", tiny_cfg, "--out", data, *TINY]) == 2
    assert _err(capsys).startswith(f"error: --out '{data}' is the dataset folder --data: the run's files would go")
    assert _listing(data) == listing


# --- writes that fail ----------------------------------------------------------------------------------------


def test_out_that_is_a_file_or_lies_under_a_file(trained, dataset, tiny_cfg, tmp_path, capsys):
    """Real failures (no simulation): EEXIST / ENOTDIR."""
    f = tmp_path / "notes.txt"
    f.write_text("keep")
    assert main(["train", "--data", dataset, "--config", tiny_cfg, "--out", str(f), *TINY]) == 2
    assert _err(capsys) == (
        f"error: cannot write '{f}': it is a file, not a folder: choose another --out (or move that file)"
    )
    assert main(["train", "--data", dataset, "--config", tiny_cfg, "--out", str(f / "run"), *TINY]) == 2
    assert _err(capsys) == (
        f"error: cannot write '{f / 'run'}': a part of the path is a file, not a folder: check the path"
    )
    ck = trained["cnn_dual"]["best"]
    assert main(["export", "--checkpoint", ck, "--out", str(f / "m.onnx")]) == 2
    assert _err(capsys) == (
        f"error: cannot write '{f / 'm.onnx'}': '{f}' is a file, not a folder: choose another --out (or move that file)"
    )
    assert (
        main(["evaluate", "--checkpoint", ck, "--data", dataset, "--split", "test", "--out", str(f / "a" / "m.json")])
        == 2
    )
    assert _err(capsys).startswith(f"error: cannot write '{f / 'a' / 'm.json'}': a part of the path is a file")
    assert main(["export", "--checkpoint", ck, "--out", str(tmp_path)]) == 2
    assert _err(capsys) == (
        f"error: --out '{tmp_path}' is a folder: give the ONNX file's name (e.g. {tmp_path / 'model.onnx'})"
    )
    assert f.read_text() == "keep" and os.listdir(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES, errno.EPERM])
def test_train_on_a_folder_that_refuses_writes(dataset, tiny_cfg, tmp_path, monkeypatch, capsys, err):
    run = tmp_path / "ro" / "run"
    run.mkdir(parents=True)
    _Disk(monkeypatch, tmp_path / "ro", err)
    assert main(["train", "--data", dataset, "--config", tiny_cfg, "--out", str(run), *TINY]) == 2
    assert _err(capsys).startswith(f"error: cannot write '{run / 'config.yaml'}': {REASON[err]}")
    assert os.listdir(run) == []
    # a new run folder on that disk: the folder cannot be made
    assert main(["train", "--data", dataset, "--config", tiny_cfg, "--out", str(run / "new"), *TINY]) == 2
    assert _err(capsys).startswith(f"error: cannot write '{run / 'new'}': {REASON[err]}")
    assert os.listdir(run) == []


def test_train_on_a_full_disk_leaves_no_partial_checkpoint(dataset, tiny_cfg, tmp_path, monkeypatch, capsys):
    run = tmp_path / "disk" / "run"
    _Disk(monkeypatch, tmp_path / "disk", errno.ENOSPC, room=4096)  # config.yaml fits, last.pt does not
    assert main(["train", "--data", dataset, "--config", tiny_cfg, "--out", str(run), *TINY]) == 2
    assert _err(capsys) == f"error: cannot write '{run / 'last.pt'}': {REASON[errno.ENOSPC]}"
    assert os.listdir(run) == ["config.yaml"]
    assert "model: cnn_dual" in (run / "config.yaml").read_text()


@pytest.mark.parametrize("err", [errno.EROFS, errno.ENOSPC])
def test_export_that_cannot_write_keeps_the_old_file(trained, tmp_path, monkeypatch, capsys, err):
    out = tmp_path / "disk" / "m.onnx"
    out.parent.mkdir()
    out.write_bytes(b"the previous model")
    _Disk(monkeypatch, out.parent, err, room=1000)
    assert main(["export", "--checkpoint", trained["cnn_dual"]["best"], "--out", str(out)]) == 2
    assert _err(capsys).startswith(f"error: cannot write '{out}': {REASON[err]}")
    assert out.read_bytes() == b"the previous model" and os.listdir(out.parent) == ["m.onnx"]


@pytest.mark.parametrize("err", [errno.EACCES, errno.ENOSPC])
def test_evaluate_that_cannot_write(trained, dataset, tmp_path, monkeypatch, capsys, err):
    out = tmp_path / "disk" / "m.json"
    out.parent.mkdir()
    _Disk(monkeypatch, out.parent, err, room=100)
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                trained["cnn_dual"]["best"],
                "--data",
                dataset,
                "--split",
                "test",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert _err(capsys).startswith(f"error: cannot write '{out}': {REASON[err]}")
    assert os.listdir(out.parent) == []


# --- the same on real disks (a tiny tmpfs, a read-only one, chattr +i), where this machine allows it ------------


@pytest.fixture
def disk(tmp_path):
    """disk(options) -> a tmpfs mounted with those options (skips when mounting is not allowed)."""
    import shutil
    import subprocess

    mounted = []

    def mount(options):
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        if (
            not shutil.which("mount")
            or subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
            ).returncode
        ):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_real_full_and_read_only_disks(trained, dataset, tiny_cfg, disk, capsys):
    full = disk("size=16k")  # config.yaml fits, a checkpoint or an ONNX file does not
    assert main(["train", "--data", dataset, "--config", tiny_cfg, "--out", str(full / "run"), *TINY]) == 2
    assert _err(capsys) == f"error: cannot write '{full / 'run' / 'last.pt'}': {REASON[errno.ENOSPC]}"
    assert os.listdir(full / "run") == ["config.yaml"]
    assert main(["export", "--checkpoint", trained["cnn_dual"]["best"], "--out", str(full / "m.onnx")]) == 2
    assert _err(capsys) == f"error: cannot write '{full / 'm.onnx'}': {REASON[errno.ENOSPC]}"
    assert sorted(os.listdir(full)) == ["run"]
    ro = disk("ro,size=64k")
    assert main(["train", "--data", dataset, "--config", tiny_cfg, "--out", str(ro / "run"), *TINY]) == 2
    assert _err(capsys) == f"error: cannot write '{ro / 'run'}': {REASON[errno.EROFS]}"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                trained["cnn_dual"]["best"],
                "--data",
                dataset,
                "--split",
                "test",
                "--out",
                str(ro / "m.json"),
            ]
        )
        == 2
    )
    assert _err(capsys) == f"error: cannot write '{ro / 'm.json'}': {REASON[errno.EROFS]}"
    assert os.listdir(ro) == []


def test_real_immutable_folder(trained, tmp_path, capsys):
    import subprocess

    folder = tmp_path / "frozen"
    folder.mkdir()
    (folder / "m.onnx").write_bytes(b"previous")
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not allowed here")
    try:
        assert main(["export", "--checkpoint", trained["cnn_dual"]["best"], "--out", str(folder / "m.onnx")]) == 2
        assert _err(capsys) == f"error: cannot write '{folder / 'm.onnx'}': {REASON[errno.EPERM]}"
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    assert os.listdir(folder) == ["m.onnx"] and (folder / "m.onnx").read_bytes() == b"previous"
