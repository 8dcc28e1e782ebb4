"""``satclassify batch classify``: many scenes, one Dask task per scene, a run manifest with checksums.

The work is handed to dask.distributed (a LocalCluster by default, any running scheduler with ``--scheduler``:
dask-kubernetes, dask-jobqueue, ``dask scheduler`` + ``dask worker``; docs/headless.md), never to a home-made
scheduler. Each task runs the same core call as ``satclassify classify`` / the Processing tool on one scene
(:func:`classify_scene`); its outputs are written atomically by the core (temporary name, renamed when complete)
and their SHA-256 recorded in the run manifest ``<out>/satclassify-run.json``, rewritten (atomically) after every
finished scene. A rerun skips a scene whose outputs are all there with the recorded checksums (same model, same
settings, same input file), and redoes the others. A user error of one scene (a corrupt file, missing bands)
fails that scene alone, with the tool's message in the report; an unexpected error is retried by Dask
(``--retries``), and a task whose worker dies is rescheduled on another worker by the scheduler. Memory per task
is the tile plan's (the core streams tiles in bounded queues), not the scene's size.

Imports dask lazily (only here, only when a batch runs): ``pip install "satclassify[batch]"``.
"""

import argparse
import csv
import datetime
import glob
import io
import json
import os
import socket
import sys
import time

from ..core.contract.errors import SatClassifyError, io_error_message, is_gdal_error
from ..core.contract.paths import file_digest
from .cli import PROG, Console, add_classify_params, classify_options

MANIFEST = "satclassify-run.json"
REPORT = "satclassify-run-report.csv"
MANIFEST_VERSION = 1
REPORT_FIELDS = ("scene", "status", "seconds", "pixels", "pixels_per_s", "device", "worker", "outputs", "error")

#: models loaded in this worker process: (path, sha256, device, threads) -> core Model (one load per worker)
_MODELS = {}


# ------------------------------------------------------------------------------------------------ the task
def _model(path, digest, opts, monitor):
    from ..core.classify.pipeline import open_model

    key = (path, digest, opts.device, opts.threads)
    if key not in _MODELS:
        _MODELS.clear()  # one model per worker process at a time
        _MODELS[key] = open_model(path, opts, monitor)
    return _MODELS[key]


def scene_outputs(scene, out_dir, heads, confidence=False):
    """The files one scene writes in ``out_dir``: ``<stem>.tif`` (first head), ``<stem>_<head>.tif`` for the other
    heads (as WRITE_ALL_HEADS), ``<stem>_confidence.tif`` with ``confidence``."""
    from ..core.classify.pipeline import head_output_path

    first = os.path.join(out_dir, os.path.splitext(os.path.basename(scene))[0] + ".tif")
    paths = [first] + [head_output_path(first, h.name, k) for k, h in enumerate(heads) if k > 0]
    conf = os.path.splitext(first)[0] + "_confidence.tif" if confidence else None
    return paths, conf


def classify_scene(scene, model_path, model_digest, out_dir, options, confidence=False):
    """One scene through ``core.classify.pipeline.classify`` (the task a worker runs). Returns the scene's record;
    a user error (SatClassifyError) is the record's ``error`` (status "failed"), other errors raise so that Dask
    retries the task."""
    from ..core.classify.options import ClassifyOptions
    from ..core.classify.pipeline import classify
    from ..core.contract.feedback import Monitor

    opts = ClassifyOptions(**options)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    t0 = time.perf_counter()
    lines = []
    monitor = Monitor(info=lines.append)
    rec = {"scene": scene, "worker": worker, "outputs": {}, "error": None}
    try:
        model = _model(model_path, model_digest, opts, monitor)
        heads, conf = scene_outputs(scene, out_dir, model.card.heads, confidence)
        result = classify(scene, model, heads, confidence=conf, options=opts, monitor=monitor)
    except SatClassifyError as e:
        return dict(rec, status="failed", seconds=round(time.perf_counter() - t0, 3), error=str(e))
    written = [p for p in result.outputs if p] + ([result.confidence] if result.confidence else [])
    seconds = time.perf_counter() - t0
    pixels = int(round(result.megapixels * 1e6))
    return dict(
        rec,
        status="done",
        seconds=round(seconds, 3),
        pixels=pixels,
        pixels_per_s=round(pixels / seconds, 1) if seconds > 0 else None,
        device=result.provider,
        outputs={os.path.basename(p): file_digest(p) for p in written},
    )


# ------------------------------------------------------------------------------------------------ the manifest
def input_stamp(path):
    """What tells a changed input apart without reading it: size and modification time."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_manifest(path):
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
        if m.get("version") != MANIFEST_VERSION or not isinstance(m.get("scenes"), dict):
            raise ValueError("unknown layout")
        return m
    except (OSError, ValueError) as e:
        raise SatClassifyError(
            f"the run manifest '{path}' cannot be read ({e}): move it away to start the run "
            "afresh (every scene is then classified again)"
        )


def write_atomic(path, text):
    from ..core.raster import AtomicOutput

    with AtomicOutput(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def finished(rec, out_dir, stamp):
    """A scene of an earlier run counts as finished when it is 'done' on the same input and every output it
    recorded is there with its checksum. Returns (finished, why not)."""
    if not rec or rec.get("status") != "done":
        return False, None
    if rec.get("input") != stamp:
        return False, "its input file changed"
    for name, digest in rec.get("outputs", {}).items():
        p = os.path.join(out_dir, name)
        if not os.path.isfile(p):
            return False, f"{name} is missing"
        if file_digest(p) != digest:
            return False, f"{name} does not match its checksum"
    return bool(rec.get("outputs")), None


# ------------------------------------------------------------------------------------------------ the run
def scene_list(items):
    """Raster paths from ``--scenes``: paths, glob patterns, and text files listing one path a line (# comments;
    relative paths are relative to the list file)."""
    scenes = []
    for item in items:
        if item.lower().endswith((".txt", ".lst", ".list")) and os.path.isfile(item):
            base = os.path.dirname(os.path.abspath(item))
            with open(item, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        scenes.append(os.path.join(base, line))
        elif glob.has_magic(item):
            found = sorted(glob.glob(item))
            if not found:
                raise SatClassifyError(f"--scenes '{item}' matches no file")
            scenes.extend(found)
        else:
            scenes.append(item)
    scenes = [os.path.abspath(s) for s in scenes]
    if not scenes:
        raise SatClassifyError("no scenes given (--scenes): list raster files, a glob pattern or a text file")
    seen = {}
    for s in scenes:
        stem = os.path.splitext(os.path.basename(s))[0]
        if stem in seen and seen[stem] != s:
            raise SatClassifyError(
                f"two scenes would write the same output {stem}.tif: '{seen[stem]}' and '{s}': "
                "rename one, or run them into different --out folders"
            )
        seen[stem] = s
    return list(dict.fromkeys(scenes))


def dask_client(scheduler, workers, con):
    """A dask.distributed Client: on the scheduler at ``scheduler``, else on a LocalCluster of ``workers``
    single-threaded worker processes. Returns (client, cluster or None, dashboard address or None)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SatClassifyError(
            "satclassify batch needs dask.distributed, which this Python cannot import: "
            'pip install "satclassify[batch]" (or: pip install "dask[distributed]")'
        )
    import importlib.util

    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as e:
            raise SatClassifyError(
                f"cannot reach the Dask scheduler at '{scheduler}' ({e}): check the address "
                "(tcp://host:8786) and that the scheduler runs"
            )
        return client, None, client.dashboard_link
    # any free port (8787 may be another run's); the dashboard needs bokeh: without it none is announced
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster), cluster, (cluster.dashboard_link if importlib.util.find_spec("bokeh") else None)


def run_batch(
    scenes, model, out_dir, opts, scheduler=None, workers=None, retries=2, confidence=False, con=None, client=None
):
    """Classify ``scenes`` into ``out_dir`` on Dask; returns the records of this run (one per scene, skipped ones
    included). ``client``: a dask Client to use (tests, notebooks) instead of making one."""
    from dataclasses import asdict

    from ..core.classify.options import ClassifyOptions
    from ..core.classify.pipeline import open_model

    con = con or Console()
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, MANIFEST)
    model = os.path.abspath(model)
    heads = open_model(model, ClassifyOptions(device="CPU")).card.heads  # the card, checked before any task
    digest = file_digest(model)
    settings = {k: v for k, v in asdict(opts).items() if k not in ("threads", "decode_threads")}
    settings["confidence"] = bool(confidence)
    old = load_manifest(manifest_path)
    old_scenes = {}
    if old is not None:
        if old.get("model_sha256") == digest and old.get("options") == settings:
            old_scenes = old["scenes"]
        else:
            con.info(
                "the model or the settings differ from the last run in this folder: every scene is classified again"
            )
    manifest = {
        "version": MANIFEST_VERSION,
        "model": model,
        "model_sha256": digest,
        "options": settings,
        "scenes": dict(old_scenes),
    }
    for s in scenes:  # the outputs of two scenes never collide with the manifest or the report
        for p in scene_outputs(s, out_dir, heads, confidence)[0]:
            if os.path.basename(p) in (MANIFEST, REPORT):
                raise SatClassifyError(f"scene '{s}' would write over the run's own {os.path.basename(p)}")
    records, todo = {}, []
    for s in scenes:
        stamp = input_stamp(s) if os.path.exists(s) else None
        done, why = finished(old_scenes.get(s), out_dir, stamp)
        if done:
            records[s] = dict(old_scenes[s], status="skipped")
            con.info(f"skip {os.path.basename(s)}: finished in an earlier run (outputs match their checksums)")
        else:
            if why:
                con.info(f"redo {os.path.basename(s)}: {why}")
            todo.append((s, stamp))
    t0 = time.perf_counter()
    if todo:
        own = client is None
        cluster = link = None
        if own:
            client, cluster, link = dask_client(scheduler, workers, con)
        try:
            nworkers = len(client.scheduler_info().get("workers", {}))
            con.info(
                f"dask: {len(todo)} scene(s) on {nworkers} worker(s) at {client.scheduler.address}"
                + (f"; dashboard {link}" if link else "")
            )
            threads = opts.threads
            if not threads and cluster is not None:  # share this machine's cores between the local workers
                threads = max(1, (os.cpu_count() or 1) // max(1, nworkers))
            options = dict(asdict(opts), threads=threads)
            futures = {}
            for i, (s, stamp) in enumerate(todo):
                f = client.submit(
                    classify_scene,
                    s,
                    model,
                    digest,
                    out_dir,
                    options,
                    confidence,
                    key=f"classify-{i}-{os.path.basename(s)}-{digest[:8]}-{time.time_ns()}",
                    retries=retries,
                    pure=False,
                )
                futures[f] = (s, stamp)
            from distributed import as_completed

            for n, f in enumerate(as_completed(list(futures)), 1):
                s, stamp = futures.pop(f)
                try:
                    rec = f.result()
                except Exception as e:  # retries used up, or the worker died too often (KilledWorker)
                    rec = {"scene": s, "status": "failed", "outputs": {}, "error": task_error(e, retries)}
                # forget the task's result at once: a worker lost later would otherwise make the scheduler
                # recompute (classify again) the finished scenes whose results it held
                f.release()
                del f
                rec["input"] = stamp
                rec["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                records[s] = rec
                manifest["scenes"][s] = rec
                write_atomic(manifest_path, json.dumps(manifest, indent=1))
                con.info(progress_line(n, len(todo), rec))
        finally:
            if own:
                client.close()
                if cluster is not None:
                    cluster.close()
    ordered = [records[s] for s in scenes]
    write_atomic(os.path.join(out_dir, REPORT), report_csv(ordered))
    done = sum(r["status"] in ("done", "skipped") for r in ordered)
    con.info(
        f"{done} of {len(ordered)} scene(s) finished ({sum(r['status'] == 'skipped' for r in ordered)} "
        f"skipped as done before), {len(ordered) - done} failed, in {time.perf_counter() - t0:.1f} s; "
        f"manifest {manifest_path}, report {os.path.join(out_dir, REPORT)}"
    )
    return ordered


def task_error(e, retries):
    """The report's message for a task that raised on its last try."""
    name = type(e).__name__
    if name == "KilledWorker":
        return (
            f"the worker running this scene died several times (KilledWorker: {e}): the scene may need more "
            "memory than a worker has (use a smaller --tile-size or --batch-size, or workers with more memory)"
        )
    if isinstance(e, SatClassifyError):
        return str(e)
    if isinstance(e, MemoryError):
        return "ran out of memory: use a smaller --tile-size or --batch-size"
    if isinstance(e, OSError) or (isinstance(e, RuntimeError) and is_gdal_error(e)):
        return io_error_message(e) + f" (after {retries} retries)"
    return f"{name}: {e} (after {retries} retries)"


def progress_line(n, total, rec):
    name = os.path.basename(rec["scene"])
    if rec["status"] == "done":
        return (
            f"[{n}/{total}] {name}: done in {rec['seconds']:.1f} s ({rec['pixels_per_s'] / 1e6:.2f} MPix/s, "
            f"{rec['device']} on {rec['worker']})"
        )
    return f"[{n}/{total}] {name}: FAILED: {rec['error']}"


def report_csv(records):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REPORT_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        row = dict(r)
        row["outputs"] = " ".join(sorted(r.get("outputs", {})))
        w.writerow(row)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ command line
def build_parser():
    parser = argparse.ArgumentParser(prog=f"{PROG} batch", description="Many scenes on a Dask cluster.")
    sub = parser.add_subparsers(dest="tool", metavar="TOOL")
    sub.required = True
    p = sub.add_parser(
        "classify",
        help="classify every scene with one model, one Dask task per scene",
        description="Classify every scene (as satclassify classify / satclassify:classify) into "
        "--out: <scene>.tif per scene (and <scene>_<head>.tif for more heads), a run manifest "
        f"{MANIFEST} with checksums (a rerun skips finished scenes) and a report {REPORT}.",
    )
    p.add_argument(
        "--scenes",
        nargs="+",
        required=True,
        metavar="LIST",
        help="raster files, glob patterns (quoted) or text files listing one raster a line",
    )
    p.add_argument("--model", dest="MODEL", required=True, help="ONNX model [MODEL]")
    p.add_argument("--out", required=True, help="output folder (shared by every worker)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        help="address of a running Dask scheduler (tcp://host:8786); default: a LocalCluster on this machine",
    )
    where.add_argument(
        "--workers", type=int, default=None, help="worker processes of the LocalCluster (default: one per CPU core)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="onnxruntime threads per task (0 = the cores of this "
        "machine shared between the local workers; onnxruntime's default on a remote scheduler)",
    )
    p.add_argument("--retries", type=int, default=2, help="retries of a task that fails unexpectedly (default 2)")
    p.add_argument("--confidence", action="store_true", help="also write <scene>_confidence.tif [CONFIDENCE]")
    p.add_argument("--quiet", action="store_true", help="no log lines, only errors and the result")
    add_classify_params(p, outputs=False)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .cli import gdal_available

    if not gdal_available():
        return 2
    con = Console(args.quiet)
    try:
        if args.workers is not None and args.workers < 1:
            raise SatClassifyError(f"--workers {args.workers}: give 1 or more worker processes")
        opts = classify_options(args, threads=max(0, args.threads))
        records = run_batch(
            scene_list(args.scenes),
            args.MODEL,
            args.out,
            opts,
            scheduler=args.scheduler,
            workers=args.workers or (os.cpu_count() or 1),
            retries=args.retries,
            confidence=args.confidence,
            con=con,
        )
    except KeyboardInterrupt:
        con.warn("interrupted: finished scenes are in the manifest, the others are redone by the next run")
        return 130
    except SatClassifyError as e:
        print(f"{PROG} batch classify: error: {e}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "scenes": len(records),
                "failed": [r["scene"] for r in records if r["status"] == "failed"],
                "manifest": os.path.join(os.path.abspath(args.out), MANIFEST),
            },
            indent=1,
        )
    )
    return 1 if any(r["status"] == "failed" for r in records) else 0
