"""Disk and file faults give a message that names the file and the fix, never a traceback, and leave nothing
behind: truncated inputs, a full disk, a read-only disk, an immutable folder (real tmpfs mounts and chattr
where this machine allows them; CI runs as root)."""

import os
import re
import subprocess

import numpy as np
import pytest
from qgis.core import QgsProcessingException

from tests import onnx_models as om
from tests.rasters import make_raster


def _mount(path, options):
    path.mkdir(exist_ok=True)
    try:
        ok = (
            subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode
            == 0
        )
    except FileNotFoundError:
        ok = False
    if not ok:
        pytest.skip("cannot mount a tmpfs here (not root, or no mount command)")
    return path


@pytest.fixture
def mounts(tmp_path):
    made = []

    def mount(name, options):
        made.append(_mount(tmp_path / name, options))
        return made[-1]

    yield mount
    for m in made:
        subprocess.run(["umount", str(m)], check=False)


@pytest.fixture
def data(tmp_path):
    raw = np.random.default_rng(0).integers(10, 4000, (4, 300, 300)).astype(np.uint16)
    s2 = make_raster(tmp_path / "s2.tif", raw, band_names=om.S2_BANDS4)
    cls = make_raster(
        tmp_path / "cls.tif", np.random.default_rng(1).integers(1, 4, (300, 300)).astype(np.uint8), nodata=0
    )
    with open(s2, "rb") as f:
        head = f.read()
    trunc = tmp_path / "trunc.tif"
    trunc.write_bytes(head[: len(head) // 2])
    return {
        "tmp": tmp_path,
        "s2": s2,
        "cls": cls,
        "trunc": str(trunc),
        "model": om.linear_model(tmp_path / "lin.onnx", np.eye(3, 4), card_kw={"tile_size": 64}),
    }


def failing(run_alg, alg, params, match):
    with pytest.raises(QgsProcessingException) as e:
        run_alg(alg, params)
    msg = str(e.value)
    assert "Traceback" not in msg
    assert re.search(match, msg, re.S), msg
    return msg


def no_leftovers(folder):
    return [f for f in os.listdir(folder) if ".part" in f or "staging" in f or f.endswith(".tmp.npy")]


def test_truncated_geotiff_input(run_alg, data):
    out = str(data["tmp"] / "o.tif")
    failing(
        run_alg,
        "satclassify:classify",
        {"INPUT": data["trunc"], "MODEL": data["model"], "OUTPUT": out},
        r"GDAL could not read .*trunc\.tif.*The file is truncated or damaged: copy or download it again",
    )
    assert not os.path.exists(out) and no_leftovers(data["tmp"]) == []
    failing(
        run_alg,
        "satclassify:buildpatches",
        {
            "IMAGE": data["trunc"],
            "LABELS": data["cls"],
            "PATCH_SIZE": 32,
            "CLASSES": 1,
            "OUTPUT_FOLDER": str(data["tmp"] / "ds"),
        },
        r"trunc\.tif.*truncated or damaged",
    )
    assert not os.path.exists(data["tmp"] / "ds" / "manifest.json") and no_leftovers(data["tmp"] / "ds") == []


def test_full_disk(run_alg, data, mounts):
    full = mounts("full", "size=64k")
    failing(
        run_alg,
        "satclassify:classify",
        {
            "INPUT": data["s2"],
            "MODEL": data["model"],
            "OUTPUT": str(full / "o.tif"),
            "PROBABILITIES": str(full / "p.tif"),
        },
        r"cannot write '.*full/[op]\.tif': the disk is full: free space or choose another folder",
    )
    assert os.listdir(full) == []


def test_read_only_disk(run_alg, data, mounts):
    ro = mounts("ro", "ro,size=1m")
    failing(
        run_alg,
        "satclassify:assessaccuracy",
        {
            "CLASSIFIED": data["cls"],
            "REFERENCE": data["cls"],
            "OUTPUT_MATRIX": str(ro / "m.csv"),
            "OUTPUT_METRICS": str(ro / "m.json"),
            "OUTPUT_REPORT": str(ro / "r.html"),
        },
        r"cannot write '.*ro/m\.(csv|json)': the disk is read-only: choose a folder you can write to",
    )
    failing(
        run_alg,
        "satclassify:classify",
        {"INPUT": data["s2"], "MODEL": data["model"], "OUTPUT": str(ro / "o.tif")},
        r"cannot write '.*ro/o\.tif': the disk is read-only",
    )


def test_immutable_folder(run_alg, data):
    imm = data["tmp"] / "imm"
    imm.mkdir()
    try:
        ok = subprocess.run(["chattr", "+i", str(imm)], capture_output=True).returncode == 0
    except FileNotFoundError:
        ok = False
    if not ok:
        pytest.skip("chattr +i is not available here")
    try:
        failing(
            run_alg,
            "satclassify:buildpatches",
            {"IMAGE": data["s2"], "LABELS": data["cls"], "PATCH_SIZE": 32, "CLASSES": 1, "OUTPUT_FOLDER": str(imm)},
            r"cannot write the dataset into '.*imm': operation not permitted \(an immutable file or folder\?\)",
        )
        failing(
            run_alg,
            "satclassify:classify",
            {"INPUT": data["s2"], "MODEL": data["model"], "OUTPUT": str(imm / "o.tif")},
            r"cannot write '.*imm/o\.tif': operation not permitted",
        )
        assert os.listdir(imm) == []
    finally:
        subprocess.run(["chattr", "-i", str(imm)], check=False)


def test_io_error_messages_core():
    import errno

    from satclassify_plugin.core.contract.errors import io_error_message

    assert io_error_message(OSError(errno.ENOSPC, "No space left on device"), "/x/o.tif") == (
        "cannot write '/x/o.tif': the disk is full: free space or choose another folder"
    )
    assert io_error_message(RuntimeError("_tiffWriteProc:No space left on device"), "/x/o.tif").endswith(
        "the disk is full: free space or choose another folder"
    )
    assert "truncated or damaged" in io_error_message(RuntimeError("a.tif, band 1: IReadBlock failed at X offset 0"))
