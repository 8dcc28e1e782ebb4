#!/usr/bin/env python3
"""Benchmark satclassify batch classify (Dask, issue 28 item 4) on this machine.

    .venv-qgis/bin/python benchmarks/batch.py                       # 8 scenes of 1024^2 px
    .venv-qgis/bin/python benchmarks/batch.py --scenes 6 --size 768 --out benchmarks/results/X.json

N synthetic 4-band uint16 Sentinel-2-like stacks (tiled GeoTIFF) and the benchmark conv net of
benchmarks/classify.py (3x3 convs 16/32/16 + ReLU, 8 classes, tile 256), then, in one run:

(a) plain loop: the core's classify over the scenes one after another in this process (model loaded once),
    onnxruntime on every core: the baseline (run before and after the batches, the mean counts); Dask's own
    cost per task from 200 no-op tasks;
(b) batch, 1 worker: the same scenes through satclassify.headless.batch.run_batch on a LocalCluster of one worker
    process (onnxruntime on every core): overhead per task = (b - a) / N; the cluster's start-up apart;
(c) batch, 2 workers (onnxruntime on cores / 2 each): speed-up = b / c;
(d) a worker SIGKILLed while the run goes (after its first finished scene): the run still completes (Dask
    reschedules the lost task); then the whole batch command SIGKILLed mid-run: every output under its final
    name matches its manifest checksum (nothing half-written), and the rerun skips the finished scenes and
    completes the rest.
The CPU is shared with other users: the ratios within one run are what docs/performance.md records.
"""

import argparse
import datetime
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_scene(path, size, seed):
    import numpy as np
    from osgeo import gdal

    rng = np.random.default_rng(seed)
    ds = gdal.GetDriverByName("GTiff").Create(
        path,
        size,
        size,
        4,
        gdal.GDT_UInt16,
        options=["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE"],
    )
    ds.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    from tests.rasters import wkt

    ds.SetProjection(wkt(32632))
    for b, name in enumerate(("B02", "B03", "B04", "B08"), 1):
        band = ds.GetRasterBand(b)
        band.SetDescription(name)
        band.SetNoDataValue(0)
        band.WriteArray(rng.integers(100, 4000, (size, size)).astype(np.uint16))
    ds = None
    return path


def client_of(workers):
    import distributed

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    client.wait_for_workers(workers)
    return client, cluster, time.perf_counter() - t0


class Quiet:
    def info(self, m):
        pass

    def warn(self, m):
        print("warning:", m)


def timed_batch(scenes, model, out, workers, threads, client=None):
    from satclassify_plugin.core.classify.options import ClassifyOptions
    from satclassify_plugin.headless.batch import run_batch

    own = client is None
    if own:
        client, cluster, start = client_of(workers)
    t0 = time.perf_counter()
    recs = run_batch(scenes, model, out, ClassifyOptions(threads=threads), con=Quiet(), client=client)
    wall = time.perf_counter() - t0
    if own:
        client.close()
        cluster.close()
    assert all(r["status"] == "done" for r in recs), [r.get("error") for r in recs]
    return wall, recs, (start if own else None)


def noop_task_seconds(n=200):
    """Dask's own cost per task on this machine: n no-op tasks submitted and gathered on a 1-worker LocalCluster."""
    client, cluster, _ = client_of(1)
    client.gather(client.map(abs, range(10), pure=False))  # warm-up
    t0 = time.perf_counter()
    client.gather(client.map(abs, range(n), pure=False))
    per = (time.perf_counter() - t0) / n
    client.close()
    cluster.close()
    return per


def verify_outputs(out):
    """Every output the manifest lists is there with its checksum; returns (ok, outputs checked, .part files,
    .tif files the manifest does not list)."""
    from satclassify_plugin.core.contract.paths import file_digest
    from satclassify_plugin.headless.batch import MANIFEST

    path = os.path.join(out, MANIFEST)
    if not os.path.exists(path):
        return True, 0, len(glob.glob(os.path.join(out, "*.part*"))), []
    with open(path) as f:
        m = json.load(f)
    n, ok = 0, True
    for rec in m["scenes"].values():
        for name, digest in rec.get("outputs", {}).items():
            n += 1
            ok &= file_digest(os.path.join(out, name)) == digest
    listed = {name for rec in m["scenes"].values() for name in rec.get("outputs", {})}
    stray = [f for f in os.listdir(out) if f.endswith(".tif") and ".part" not in f and f not in listed]
    # a .tif not in the manifest would be an output renamed after the last manifest write: complete by design
    return ok, n, len([f for f in os.listdir(out) if ".part" in f]), stray


def kill_worker_mid_run(scenes, model, out, threads):
    """2 workers; one SIGKILLed as soon as the first scene is finished: the run must still complete."""
    import threading

    from satclassify_plugin.core.classify.options import ClassifyOptions
    from satclassify_plugin.headless.batch import MANIFEST, run_batch

    client, cluster, _ = client_of(2)
    pids = list(client.run(os.getpid).values())

    killed = {}

    def killer():
        path = os.path.join(out, MANIFEST)
        while not os.path.exists(path):
            time.sleep(0.05)
        os.kill(pids[0], signal.SIGKILL)
        killed["pid"], killed["t"] = pids[0], time.perf_counter()

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    t0 = time.perf_counter()
    recs = run_batch(scenes, model, out, ClassifyOptions(threads=threads), con=Quiet(), client=client)
    wall = time.perf_counter() - t0
    th.join(5)
    client.close()
    cluster.close()
    return {
        "seconds": round(wall, 2),
        "killed_worker_pid": killed.get("pid"),
        "scenes_done": sum(r["status"] == "done" for r in recs),
        "scenes": len(recs),
        "done_on": sorted({r["worker"] for r in recs}),
    }


def kill_run_and_rerun(scenes, model, out, listing):
    """The batch command (2 workers) SIGKILLed with its cluster after its second finished scene; outputs checked;
    then the same command again."""
    from satclassify_plugin.headless.batch import MANIFEST

    cmd = [
        sys.executable,
        "-m",
        "satclassify_plugin.headless",
        "batch",
        "classify",
        "--scenes",
        listing,
        "--model",
        model,
        "--out",
        out,
        "--workers",
        "2",
        "--quiet",
    ]
    env = dict(os.environ, PYTHONPATH=ROOT)
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    path = os.path.join(out, MANIFEST)
    while p.poll() is None:
        try:
            with open(path) as f:
                if sum(r["status"] == "done" for r in json.load(f)["scenes"].values()) >= 2:
                    break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the client, the scheduler and every worker at once
    p.wait()
    killed_after = time.perf_counter() - t0
    ok, n, parts, stray = verify_outputs(out)
    with open(path) as f:
        before = sum(r["status"] == "done" for r in json.load(f)["scenes"].values())
    t1 = time.perf_counter()
    r = subprocess.run(cmd[:-1], env=env, cwd=ROOT, capture_output=True, text=True)
    rerun = time.perf_counter() - t1
    skipped = r.stderr.count("skip ")
    ok2, n2, parts2, _ = verify_outputs(out)
    with open(path) as f:
        after = sum(r2["status"] == "done" for r2 in json.load(f)["scenes"].values())
    return {
        "killed_after_s": round(killed_after, 2),
        "finished_before_kill": before,
        "outputs_checked_after_kill": n,
        "outputs_match_checksums_after_kill": bool(ok),
        "part_files_left_by_the_kill": parts,
        "tif_not_in_manifest_after_kill": stray,
        "rerun_exit": r.returncode,
        "rerun_seconds": round(rerun, 2),
        "rerun_skipped": skipped,
        "finished_after_rerun": after,
        "outputs_match_after_rerun": bool(ok2),
        "part_files_after_rerun": parts2,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--out", default=None, help="JSON of the figures (default: print only)")
    args = ap.parse_args()

    from satclassify_plugin.core.classify.options import ClassifyOptions
    from satclassify_plugin.core.classify.pipeline import classify, open_model
    from tests.onnx_models import bench_model

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="satclassify-batch-bench-") as tmp:
        model = bench_model(os.path.join(tmp, "bench.onnx"), tile=256)
        scenes = [make_scene(os.path.join(tmp, f"scene{i:02d}.tif"), args.size, i) for i in range(args.scenes)]
        pixels = args.scenes * args.size * args.size
        # (a) plain loop, before and after the batches (the shared machine drifts: their mean is the baseline)
        options = ClassifyOptions()  # as the batch's tasks (onnxruntime's default threads: every core)
        loaded = open_model(model, options)

        def plain_loop(name):
            t0 = time.perf_counter()
            for s in scenes:
                classify(s, loaded, [os.path.join(tmp, name, os.path.basename(s))], options=options)
            return time.perf_counter() - t0

        loops = [plain_loop("loop1")]
        # (b) one worker, (c) two workers
        one, _, start1 = timed_batch(scenes, model, os.path.join(tmp, "w1"), 1, cores)
        two, recs2, start2 = timed_batch(scenes, model, os.path.join(tmp, "w2"), 2, max(1, cores // 2))
        loops.append(plain_loop("loop2"))
        loop = sum(loops) / 2
        noop = noop_task_seconds()
        per_scene = [r["seconds"] for r in recs2]
        # (d) faults
        kill1 = kill_worker_mid_run(scenes, model, os.path.join(tmp, "kill1"), max(1, cores // 2))
        listing = os.path.join(tmp, "scenes.txt")
        with open(listing, "w") as f:
            f.write("\n".join(scenes) + "\n")
        kill2 = kill_run_and_rerun(scenes, model, os.path.join(tmp, "kill2"), listing)
    figures = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "benchmarks/batch.py " + " ".join(sys.argv[1:]),
        "cores": cores,
        "scenes": args.scenes,
        "size_px": args.size,
        "megapixels": round(pixels / 1e6, 2),
        "plain_loop_s": round(loop, 2),
        "plain_loop_runs_s": [round(x, 2) for x in loops],
        "dask_noop_task_roundtrip_s": round(noop, 4),
        "batch_1_worker_s": round(one, 2),
        "batch_2_workers_s": round(two, 2),
        "cluster_start_1_worker_s": round(start1, 2),
        "cluster_start_2_workers_s": round(start2, 2),
        "overhead_per_task_s": round((one - loop) / args.scenes, 3),
        "speedup_2_over_1": round(one / two, 2),
        "mpix_per_s": {
            "plain_loop": round(pixels / 1e6 / loop, 2),
            "batch_1": round(pixels / 1e6 / one, 2),
            "batch_2": round(pixels / 1e6 / two, 2),
        },
        "task_seconds_2_workers": {
            "min": min(per_scene),
            "max": max(per_scene),
            "mean": round(sum(per_scene) / len(per_scene), 3),
        },
        "worker_killed_mid_run": kill1,
        "run_killed_then_rerun": kill2,
    }
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
