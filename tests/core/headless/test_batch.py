"""satclassify batch classify on a Dask LocalCluster (issue 28 item 2): every scene classified as the core's
classify would, a corrupt scene failing alone with its message, a worker killed mid-run (its task rescheduled), a
rerun skipping what is done and redoing a damaged output; the run manifest's checksums."""

import csv
import json
import os

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from satclassify_plugin.core.classify.options import ClassifyOptions  # noqa: E402
from satclassify_plugin.core.classify.pipeline import classify  # noqa: E402
from satclassify_plugin.core.contract.paths import file_digest  # noqa: E402
from satclassify_plugin.headless import batch  # noqa: E402
from satclassify_plugin.headless.cli import Console  # noqa: E402
from tests import onnx_models as om  # noqa: E402
from tests.rasters import make_raster  # noqa: E402

from .dask_helpers import KillOnStart  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture
def scenes(tmp_path):
    rng = np.random.default_rng(11)
    (tmp_path / "in").mkdir()
    paths = []
    for i, (h, w) in enumerate([(40, 50), (64, 64), (33, 70), (80, 45)]):
        raw = rng.integers(10, 4000, (4, h, w)).astype(np.uint16)
        paths.append(make_raster(tmp_path / "in" / f"s{i}.tif", raw, band_names=om.S2_BANDS4, nodata=0))
    bad = tmp_path / "in" / "corrupt.tif"
    bad.write_bytes(b"II*\x00" + b"\x17" * 300)  # a TIFF header and garbage
    model = om.dual_model(tmp_path / "dual.onnx", card_kw={"tile_size": 16})
    return paths, str(bad), model


class Log(Console):
    def __init__(self):
        super().__init__()
        self.lines = []

    def info(self, message):
        self.lines.append(message)


def expected(scene, model, tmp_path):
    """The scene's class rasters from the core's classify in this process (what satclassify classify writes)."""
    ref = tmp_path / "ref"
    ref.mkdir(exist_ok=True)
    stem = os.path.splitext(os.path.basename(scene))[0]
    classify(scene, model, [str(ref / f"{stem}.tif"), str(ref / f"{stem}_clc_level1.tif")])
    return {
        f"{stem}.tif": file_digest(str(ref / f"{stem}.tif")),
        f"{stem}_clc_level1.tif": file_digest(str(ref / f"{stem}_clc_level1.tif")),
    }


def test_scenes_on_two_workers_a_corrupt_one_fails_alone_and_a_rerun_skips(client, scenes, tmp_path):
    paths, bad, model = scenes
    out = tmp_path / "out"
    log = Log()
    recs = batch.run_batch(paths + [bad], model, str(out), ClassifyOptions(), con=log, client=client)
    by = {os.path.basename(r["scene"]): r for r in recs}
    assert [by[f"s{i}.tif"]["status"] for i in range(4)] == ["done"] * 4
    assert by["corrupt.tif"]["status"] == "failed" and "corrupt.tif" in by["corrupt.tif"]["error"]
    workers = {r["worker"] for r in recs if r["status"] == "done"}
    assert len(workers) == 2  # both workers took scenes
    for p in paths:  # byte for byte what classify writes, checksums recorded
        assert by[os.path.basename(p)]["outputs"] == expected(p, model, tmp_path)
        r = by[os.path.basename(p)]
        assert r["device"] == "CPUExecutionProvider" and r["pixels"] > 0 and r["pixels_per_s"] > 0
    with open(out / batch.MANIFEST) as f:
        manifest = json.load(f)
    assert manifest["model_sha256"] == file_digest(model)
    assert manifest["scenes"][bad]["status"] == "failed"
    with open(out / batch.REPORT) as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["done"] * 4 + ["failed"] and "corrupt.tif" in rows[-1]["error"]
    assert any(line.startswith("[5/5]") for line in log.lines)
    # rerun: finished scenes skipped; a damaged output and the failed scene redone
    with open(out / "s2.tif", "r+b") as f:
        f.seek(200)
        f.write(b"\xff\xff")
    log = Log()
    recs = batch.run_batch(paths + [bad], model, str(out), ClassifyOptions(), con=log, client=client)
    status = {os.path.basename(r["scene"]): r["status"] for r in recs}
    assert status == {
        "s0.tif": "skipped",
        "s1.tif": "skipped",
        "s2.tif": "done",
        "s3.tif": "skipped",
        "corrupt.tif": "failed",
    }
    assert "redo s2.tif: s2.tif does not match its checksum" in log.lines
    assert file_digest(str(out / "s2.tif")) == expected(paths[2], model, tmp_path)["s2.tif"]
    # another model setting: nothing is skipped
    log = Log()
    recs = batch.run_batch(paths, model, str(out), ClassifyOptions(tile_size=24), con=log, client=client)
    assert [r["status"] for r in recs] == ["done"] * 4
    assert any("differ from the last run" in line for line in log.lines)


def test_a_worker_killed_mid_run_is_replaced_and_its_scene_finished(client, scenes, tmp_path):
    paths, _, model = scenes
    marker = tmp_path / "killed"
    client.register_plugin(KillOnStart("-s1.tif-", str(marker)), name=f"kill-{tmp_path.name}")
    try:
        out = tmp_path / "out"
        recs = batch.run_batch(paths, model, str(out), ClassifyOptions(), con=Log(), client=client)
    finally:
        client.unregister_worker_plugin(f"kill-{tmp_path.name}")
    assert marker.exists()  # a worker did die while running s1's task
    killed_pid = marker.read_text()
    r1 = next(r for r in recs if r["scene"].endswith("s1.tif"))
    assert r1["status"] == "done" and not r1["worker"].endswith(":" + killed_pid)
    assert [r["status"] for r in recs] == ["done"] * 4
    assert r1["outputs"] == expected(paths[1], model, tmp_path)
    assert not [n for n in os.listdir(out) if ".part" in n]  # nothing half-written left
    recs = batch.run_batch(paths, model, str(out), ClassifyOptions(), con=Log(), client=client)
    assert [r["status"] for r in recs] == ["skipped"] * 4


def test_the_command_line_on_its_own_local_cluster(scenes, tmp_path, capsys):
    paths, bad, model = scenes
    listing = tmp_path / "scenes.txt"
    listing.write_text("# two scenes\nin/s0.tif\nin/s3.tif\n")
    rc = batch.main(
        [
            "classify",
            "--scenes",
            str(listing),
            "--model",
            model,
            "--out",
            str(tmp_path / "o"),
            "--workers",
            "2",
            "--confidence",
            "--device",
            "CPU",
        ]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert sorted(n for n in os.listdir(tmp_path / "o") if n.endswith(".tif")) == [
        "s0.tif",
        "s0_clc_level1.tif",
        "s0_confidence.tif",
        "s3.tif",
        "s3_clc_level1.tif",
        "s3_confidence.tif",
    ]
    assert json.loads(cap.out)["failed"] == []
    assert "[2/2]" in cap.err and "dask: 2 scene(s) on 2 worker(s)" in cap.err


def test_command_line_errors(tmp_path, scenes, capsys):
    paths, _, model = scenes
    twin = tmp_path / "other"
    twin.mkdir()
    dup = make_raster(twin / "s0.tif", np.ones((4, 5, 5), np.uint16), band_names=om.S2_BANDS4)
    assert batch.main(["classify", "--scenes", paths[0], dup, "--model", model, "--out", str(tmp_path / "o")]) == 1
    assert "two scenes would write the same output s0.tif" in capsys.readouterr().err
    assert (
        batch.main(
            ["classify", "--scenes", str(tmp_path / "none*.tif"), "--model", model, "--out", str(tmp_path / "o")]
        )
        == 1
    )
    assert "matches no file" in capsys.readouterr().err
    assert (
        batch.main(
            ["classify", "--scenes", paths[0], "--model", model, "--out", str(tmp_path / "o"), "--tile-size", "-3"]
        )
        == 1
    )
    assert "tile size must be >= 1" in capsys.readouterr().err
