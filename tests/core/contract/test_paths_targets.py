"""core.contract.paths: targets a temp-then-rename writer may replace, GeoPackage layer targets, temporary names
owned by a process (issue 25: devices replaced by files, leftovers of interrupted runs)."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from satclassify_plugin.core.contract import gpkg, paths
from satclassify_plugin.core.contract.dataset import DatasetSpec, DatasetWriter
from satclassify_plugin.core.contract.errors import SatClassifyError


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_not_regular_names_what_a_path_is(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    os.mkfifo(tmp_path / "fifo")
    os.symlink("/dev/null", tmp_path / "null")
    os.symlink(tmp_path / "nowhere", tmp_path / "broken")
    os.symlink(f, tmp_path / "link")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "sock"))
    try:
        got = {
            n: paths.not_regular(str(tmp_path / n))
            for n in ("f.txt", "fifo", "null", "broken", "link", "sock", "absent")
        }
    finally:
        s.close()
    assert got == {
        "f.txt": None,
        "fifo": "a FIFO (named pipe)",
        "null": "a character device",
        "broken": "a broken symbolic link",
        "link": None,
        "sock": "a socket",
        "absent": None,
    }
    assert paths.not_regular(str(tmp_path)) == "a folder"
    with pytest.raises(
        SatClassifyError,
        match=r"cannot write '.*null': it is a character device, not a regular "
        r"file, and the new file would replace it: choose another output",
    ):
        paths.check_regular_target(str(tmp_path / "null"))
    with pytest.raises(SatClassifyError, match=r"OUT '.*fifo' is a FIFO \(named pipe\), not a regular file"):
        paths.check_outputs({}, {"OUT": str(tmp_path / "fifo")})


def test_split_layer():
    assert paths.split_layer("/a/b.gpkg") == ("/a/b.gpkg", None)
    assert paths.split_layer("/a/b.gpkg|layername=gen") == ("/a/b.gpkg", "gen")
    assert paths.split_layer("/a/b.gpkg|layerName= my layer ") == ("/a/b.gpkg", "my layer")
    for bad in ("/a/b.gpkg|layerid=0", "/a/b.gpkg|layername=", "/a/b.gpkg|layername=a|layername=b"):
        with pytest.raises(SatClassifyError, match="layername"):
            paths.split_layer(bad)


def test_stale_entries_are_those_of_dead_processes_of_this_host(tmp_path):
    dead, host = dead_pid(), paths.HOST_ID
    names = {
        f".out.{dead}-{host}abcd.part.tif": True,
        f".out.{os.getpid()}-{host}abcd.part.tif": False,  # this process
        f".out.1-{host}abcd.part.tif": False,  # a live process
        f".out.{dead}-{'0000' if host != '0000' else '1111'}abcd.part.tif": False,  # another host
        f".outer.{dead}-{host}abcd.part.tif": False,  # another output
        ".out.1a2b3c4d.part.tif": False,
    }  # no owner in the name
    for n in names:
        (tmp_path / n).write_text("x")
    pattern = paths.temp_pattern("out", r"\.part.*")
    assert [os.path.basename(p) for p in paths.stale_entries(str(tmp_path), pattern)] == [
        n for n, stale in names.items() if stale
    ]
    paths.remove_stale(str(tmp_path), pattern)
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, stale in names.items() if not stale)
    tag = paths.temp_tag()
    assert tag.startswith(f"{os.getpid()}-{host}") and len(tag.split("-")[1]) == 8


def test_dataset_writer_removes_staging_folders_of_dead_runs(tmp_path):
    dead, host = dead_pid(), paths.HOST_ID
    out = tmp_path / "ds"
    out.mkdir()
    stale = out / f".staging-{dead}-{host}abcd"
    (stale / "sub").mkdir(parents=True)
    (stale / "images-train-0.npy").write_bytes(b"x" * 100)
    old = out / f".old-{dead}-{host}abcd"
    old.mkdir()
    live = out / f".staging-1-{host}abcd"
    live.mkdir()
    w = DatasetWriter(str(out), DatasetSpec(["B02"], 4, [{"value": 1, "code": "1", "name": "a", "color": "#000000"}]))
    assert not stale.exists() and live.exists()
    w.add("train", np.ones((1, 4, 4), np.uint16), np.ones((4, 4), np.uint8))
    w.close()
    assert not old.exists() and live.exists()
    assert sorted(n for n in os.listdir(out) if n.startswith(".")) == [live.name]


def test_pure_geopackage_writer_refuses_a_fifo(tmp_path):
    fifo = tmp_path / "p.gpkg"
    os.mkfifo(fifo)
    with pytest.raises(SatClassifyError, match="it is a FIFO"):
        gpkg.write_polygons(str(fifo), "patches", [("name", "str")], [([(0, 0), (1, 0), (1, 1)], "a")])
    assert os.listdir(tmp_path) == ["p.gpkg"]
