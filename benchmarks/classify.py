#!/usr/bin/env python3
"""Benchmark satclassify:classify: raw onnxruntime throughput vs the tool's end-to-end throughput, and
peak memory at two raster sizes.

    .venv-qgis/bin/python benchmarks/classify.py            # 4096^2 and 16384^2 (a few minutes on a laptop CPU)
    .venv-qgis/bin/python benchmarks/classify.py --quick    # 1024^2 and 2048^2
    .venv-qgis/bin/python benchmarks/classify.py --size 2048 8192 --tile 512 --batch 4 --device CPU

The model is a small conv net of realistic cost (3x3 convs with 16/32/16 channels + ReLU, a 1x1
classifier over 8 classes, softmax; halo 3). The input is a synthetic 4-band uint16 Sentinel-2-like
stack (tiled GeoTIFF, band names B02 B03 B04 B08) generated in a temp folder.

(a) raw: onnxruntime alone (the plain graph) on in-memory tiles of the same shape and batch (model input
    pixels per second);
(b) tool: gdal_classify.classify end to end (read, scale, infer, argmax, compress, write; output pixels
    per second), each size in its own subprocess so its peak RSS (getrusage ru_maxrss) is its own.
Goals: tool/raw >= 0.9; peak RSS of the large size within 20% of the small size.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def peak_rss_mb():
    """Peak RSS of this process's own address space: VmHWM (Linux). ru_maxrss is not used where VmHWM
    exists because Linux carries a forking parent's high-water mark into the child across exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 if sys.platform != "darwin" else 2**20)


def make_model(path, tile):
    from tests.onnx_models import bench_model

    return bench_model(path, tile=tile)


def make_raster(path, size, block_rows=1024):
    """Synthetic 4-band uint16 stack: smooth 'fields' plus noise, written in row blocks (flat memory)."""
    import numpy as np
    from osgeo import gdal, osr

    gdal.UseExceptions()
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    ds = gdal.GetDriverByName("GTiff").Create(
        path, size, size, 4, gdal.GDT_UInt16, options=["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=YES"]
    )
    ds.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(0)
    xs = np.arange(size, dtype=np.float32)
    for b, name in enumerate(("B02", "B03", "B04", "B08")):
        ds.GetRasterBand(b + 1).SetDescription(name)
    for y0 in range(0, size, block_rows):
        h = min(block_rows, size - y0)
        ys = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
        base = 0.5 + 0.25 * np.sin(xs[None, :] / 97.0) * np.cos(ys / 131.0)
        for b in range(4):
            noise = rng.integers(0, 400, (h, size), dtype=np.uint16)
            arr = (base * (1500 + 700 * b)).astype(np.uint16) + noise + 1
            ds.GetRasterBand(b + 1).WriteArray(arr, 0, y0)
    ds.FlushCache()
    ds = None
    return path


def raw_throughput(model_path, tile, batch, device, seconds=8.0):
    """Model input pixels per second of onnxruntime alone on in-memory tiles."""
    import numpy as np
    import onnxruntime as ort

    from satclassify_plugin.core.classify.inference import load_model

    # the plain graph (the tool's session also computes each head's ArgMax/ReduceMax): providers and thread
    # settings as the tool
    providers = load_model(model_path, device).providers
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if os.environ.get("SATCLASSIFY_ORT_SPIN", "0") != "1":  # the tool's session settings (inference.load_model)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model_path, sess_options=opts, providers=providers)
    names = [o.name for o in sess.get_outputs()]
    x = np.random.default_rng(0).random((batch, 4, tile, tile), dtype=np.float32) * 0.3
    sess.run(names, {"image": x})  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        sess.run(names, {"image": x})
        n += 1
    dt = time.perf_counter() - t0
    return n * batch * tile * tile / 1e6 / dt, sess.get_providers()[0]


def child(args):
    """Run the tool on one raster (inside a subprocess) and print a JSON line."""
    from satclassify_plugin.core.classify.options import ClassifyOptions
    from satclassify_plugin.core.classify.pipeline import classify

    out = os.path.join(os.path.dirname(args.child_input), f"classes_{os.getpid()}.tif")
    res = classify(
        args.child_input,
        args.child_model,
        [out],
        options=ClassifyOptions(device=args.device, tile_size=args.tile, batch_size=args.batch),
    )
    os.remove(out)
    print(
        json.dumps(
            {
                "mpix": res.megapixels,
                "seconds": res.seconds,
                "mpix_s": res.mpix_per_s,
                "provider": res.provider,
                "tiles": res.tiles,
                "tile": res.tile_size,
                "model_mpix_s": res.tiles * res.tile_size**2 / 1e6 / res.seconds,
                "peak_rss_mb": peak_rss_mb(),
                "infer_pct": 100 * res.stats["inference"] / res.seconds,
                "wait_in_pct": 100 * res.stats["wait_input"] / res.seconds,
                "wait_out_pct": 100 * res.stats["wait_writer"] / res.seconds,
                # CPU seconds of the reader and writer threads and of the whole process, % of the wall time
                "reader_cpu_pct": 100 * res.stats.get("reader_cpu", 0.0) / res.seconds,
                "writer_cpu_pct": 100 * res.stats.get("writer_cpu", 0.0) / res.seconds,
                "process_cpu_pct": 100 * res.stats.get("process_cpu", 0.0) / res.seconds,
            }
        )
    )


def raw_child(args):
    """Raw onnxruntime throughput at the tile size the tool will use for a raster of --raw-for pixels."""
    import math

    from satclassify_plugin.core.classify.inference import load_model
    from satclassify_plugin.core.classify.tiling import fit_tile

    model = load_model(args.child_model, args.device)
    size = args.raw_for
    tile = args.tile or model.card.tile_size
    tile = fit_tile(size, size, tile, model.card.halo, None, model.size_multiple or math.gcd(tile, 32))
    mpix_s, _ = raw_throughput(args.child_model, tile, args.batch, args.device, args.raw_seconds)
    print(json.dumps({"raw_tile": tile, "raw_mpix_s": mpix_s}))


def run_raw_child(size, model, args):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--raw-for",
        str(size),
        "--child-model",
        model,
        "--tile",
        str(args.tile),
        "--batch",
        str(args.batch),
        "--device",
        args.device,
        "--raw-seconds",
        str(args.raw_seconds),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(raster, model, args):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child-input",
        raster,
        "--child-model",
        model,
        "--tile",
        str(args.tile),
        "--batch",
        str(args.batch),
        "--device",
        args.device,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs="+", help="raster edge(s) in pixels (default 4096 16384)")
    ap.add_argument("--quick", action="store_true", help="sizes 1024 and 2048")
    ap.add_argument("--tile", type=int, default=256, help="tile edge (default 256, the card default)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="Auto", choices=["Auto", "CPU", "CUDA", "TensorRT"])
    ap.add_argument("--raw-seconds", type=float, default=8.0)
    ap.add_argument("--workdir", help="folder for the synthetic rasters (default: a temp folder, removed)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--child-input", help=argparse.SUPPRESS)
    ap.add_argument("--child-model", help=argparse.SUPPRESS)
    ap.add_argument("--make-raster", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--raw-for", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.raw_for:
        return raw_child(args)
    if args.child_input:
        return child(args)
    if args.make_raster:
        return make_raster(args.make_raster[0], int(args.make_raster[1]))
    sizes = args.size or ([1024, 2048] if args.quick else [4096, 16384])
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        model = make_model(os.path.join(tmp, "bench.onnx"), args.tile)
        raw, provider = raw_throughput(model, args.tile, args.batch, args.device, args.raw_seconds)
        rows = []
        for size in sizes:
            path = os.path.join(tmp, f"s2_{size}.tif")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, os.path.abspath(__file__), "--make-raster", path, str(size)], check=True)
            gen = time.perf_counter() - t0
            # raw onnxruntime just before and just after the tool's run, averaged: on a shared machine the
            # load drifts during a long run, and the ratio should compare like with like
            raw_before = run_raw_child(size, model, args)
            r = run_child(path, model, args)
            raw_after = run_raw_child(size, model, args)
            os.remove(path)
            raw_here = dict(
                raw_before,
                raw_mpix_s=(raw_before["raw_mpix_s"] + raw_after["raw_mpix_s"]) / 2,
                raw_before=raw_before["raw_mpix_s"],
                raw_after=raw_after["raw_mpix_s"],
            )
            r.update(size=size, gen_s=gen, load=os.getloadavg()[0], **raw_here)
            rows.append(r)
            print(
                f"  {size}^2 done: {r['mpix_s']:.2f} MPix/s, peak RSS {r['peak_rss_mb']:.0f} MB "
                f"(raster generated in {gen:.0f} s); inference thread: onnxruntime {r['infer_pct']:.0f}%, "
                f"waiting for input {r['wait_in_pct']:.0f}%, for the writer {r['wait_out_pct']:.0f}%; CPU of the "
                f"reader thread {r['reader_cpu_pct']:.0f}%, writer {r['writer_cpu_pct']:.0f}%, whole process "
                f"{r['process_cpu_pct']:.0f}% of the wall time",
                flush=True,
            )
    import onnxruntime

    print()
    print(
        f"SatClassify classify benchmark: model bench_cnn (3x3 convs 16/32/16, 8 classes, halo 3), "
        f"tile {args.tile}, batch {args.batch}, onnxruntime {onnxruntime.__version__} on {provider}, "
        f"{os.cpu_count()} CPU(s)"
    )
    print(f"(a) raw onnxruntime on in-memory tiles: {raw:.2f} MPix/s")
    print()
    print(
        f"{'raster':>8} {'MPix':>7} {'tiles':>6} {'tile':>5} {'raw@tile':>9} {'time s':>7} {'tool MPix/s':>12} "
        f"{'tool/raw':>9} {'model px/raw':>13} {'peak RSS MB':>12} {'load':>5}"
    )
    for r in rows:
        rr = r["raw_mpix_s"]
        print(
            f"{str(r['size']) + '^2':>8} {r['mpix']:7.1f} {r['tiles']:6d} {r['tile']:5d} {rr:9.2f} "
            f"{r['seconds']:7.1f} "
            f"{r['mpix_s']:12.2f} {r['mpix_s'] / rr:9.2f} {r['model_mpix_s'] / rr:13.2f} {r['peak_rss_mb']:12.0f} "
            f"{r['load']:5.1f}"
        )
    print(
        "raw@tile: onnxruntime alone on in-memory tiles of the size the tool used, the mean of a run just before "
        "and one just after the tool's (MPix/s);\ntool MPix/s: output pixels per second end to end; tool/raw: "
        "their ratio; model px/raw: pixels the tool fed the model\n(tiles incl. halo) per second / raw@tile "
        "(pipeline overlap efficiency); load: 1-min load average after the run"
    )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        growth = b["peak_rss_mb"] / a["peak_rss_mb"] - 1.0
        print()
        print(
            f"peak RSS {b['size']}^2 vs {a['size']}^2: {growth * 100:+.1f}% (goal within 20%: "
            f"{'met' if abs(growth) <= 0.2 else 'NOT met'})"
        )
    worst = min(r["mpix_s"] / r["raw_mpix_s"] for r in rows)
    print(f"end-to-end / raw (worst size): {worst:.2f} (goal >= 0.9: {'met' if worst >= 0.9 else 'NOT met'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "tile": args.tile,
                    "batch": args.batch,
                    "provider": provider,
                    "raw_mpix_s": raw,
                    "onnxruntime": onnxruntime.__version__,
                    "cpus": os.cpu_count(),
                    "worst_tool_over_raw": worst,
                    "sizes": [dict(r, tool_over_raw=r["mpix_s"] / r["raw_mpix_s"]) for r in rows],
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
