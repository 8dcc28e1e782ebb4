#!/usr/bin/env python3
"""Benchmark the Sentinel-2 cloud detectors considered for satclassify:cloudmask (docs/sentinel2.md).

    python benchmarks/cloud_detectors.py                 # 1000 x 1000 px, every detector that imports
    python benchmarks/cloud_detectors.py --size 2000 --threads 2

Each case runs in its own subprocess so its peak memory (VmHWM) is its own; "after import" is the peak
once the detector's package and model are loaded, "peak" the peak after one run on the stack. Cases:

- ``csmask4_10m`` / ``csmask6_10m``: ukis-csmask's 4-band (B02 B03 B04 B08) / 6-band (+ B11 B12) L1C model
  run by the package's own ``CSmask`` on the 10 m stack as it is;
- ``csmask4_30m``: the 4-band model on the stack block-averaged to 30 m (the resolution the package
  recommends), class map repeated back to 10 m: what satclassify:cloudmask does (core/s2/clouds.py);
- ``satclassify_30m``: ``core.s2.clouds.detect`` itself (uint16 DN in, 10 m classes out; the 30 m average,
  windows, nodata handling included);
- ``s2cloudless_10m``: s2cloudless's LightGBM detector on the ten bands it needs (B01 B02 B04 B05 B08 B8A
  B09 B10 B11 B12) at 10 m, with the averaging/dilation its authors give for 10 m;
- ``s2cloudless_160m``: the same at 160 m, the resolution its classifier was trained at.

The stack is synthetic (fields of typical TOA reflectances, a textured bright cloud covering about 12 % and its
shadow): this measures cost, not accuracy. A detector whose package is missing is reported as such.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CASES = ("csmask4_10m", "csmask6_10m", "csmask4_30m", "satclassify_30m", "s2cloudless_10m", "s2cloudless_160m")
BANDS = ("B01", "B02", "B03", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")


def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def scene(size, seed=0):
    """Reflectance (0..1) per band name, float32 (size, size): fields, a cloud and its shadow."""
    rng = np.random.default_rng(seed)
    base = {
        "B01": 0.12,
        "B02": 0.10,
        "B03": 0.09,
        "B04": 0.08,
        "B05": 0.12,
        "B08": 0.28,
        "B8A": 0.30,
        "B09": 0.08,
        "B10": 0.005,
        "B11": 0.20,
        "B12": 0.12,
    }
    cell = max(size // 20, 1)
    fields = rng.uniform(0.6, 1.4, (size // cell + 1, size // cell + 1)).repeat(cell, 0).repeat(cell, 1)[:size, :size]
    from scipy import ndimage

    tex = np.zeros((size, size), np.float32)  # cloud texture: box-filtered noise at several scales
    for i, s in enumerate((96, 48, 24, 12, 6)):
        n = rng.normal(0, 1, (size // s + 2, size // s + 2)).astype(np.float32)
        tex += ndimage.uniform_filter(np.kron(n, np.ones((s, s), np.float32))[:size, :size], s) * 0.5**i
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    yy, xx = np.mgrid[0:size, 0:size]
    alpha = np.clip((1 - np.hypot(yy - 0.35 * size, xx - 0.35 * size) / (0.2 * size)) * 3 + (tex - 0.5) * 1.5, 0, 1)
    salpha = np.clip((1 - np.hypot(yy - 0.65 * size, xx - 0.6 * size) / (0.2 * size)) * 3 + (tex - 0.5) * 1.5, 0, 1)
    salpha *= alpha < 0.5
    out = {}
    for b, v in base.items():
        a = (v * fields + rng.normal(0, 0.005, (size, size))).astype(np.float32) * (1 - 0.7 * salpha)
        a = (1 - alpha) * a + alpha * (0.42 if b != "B10" else 0.03) * (0.8 + 0.4 * tex)
        out[b] = np.clip(a, 0.0001, 1.0).astype(np.float32)
    return out


def run_case(case, size, threads):
    """One case in this process; prints a JSON line."""
    bands = scene(size)
    t0 = time.perf_counter()
    if case == "satclassify_30m":
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import ukis_csmask.mask  # noqa: F401  (import cost counted below)

        from satclassify_plugin.core.s2 import clouds

        dn = {b: np.round(bands[b] * 10000).astype(np.uint16) for b in ("B02", "B03", "B04", "B08")}
        imported = peak_mb()
        t1 = time.perf_counter()
        cls = clouds.detect(dn, "L1C", 10.0, threads=threads)
        cloud_share = float((cls == clouds.CLOUD).mean())
    elif case.startswith("csmask"):
        from ukis_csmask.mask import CSmask  # noqa: F401  (import cost counted below)

        names = ["B02", "B03", "B04", "B08"] + (["B11", "B12"] if case.startswith("csmask6") else [])
        order = ["blue", "green", "red", "nir", "swir16", "swir22"][: len(names)]
        img = np.dstack([bands[b] for b in names])
        factor = 3 if case.endswith("30m") else 1
        if factor > 1:
            h, w = img.shape[0] // factor * factor, img.shape[1] // factor * factor
            img = img[:h, :w].reshape(h // factor, factor, w // factor, factor, -1).mean(axis=(1, 3)).astype(np.float32)
        imported = peak_mb()
        t1 = time.perf_counter()
        # invalid_buffer=1: 0 would make scipy dilate the invalid pixels until nothing changes (slow)
        m = CSmask(
            img,
            band_order=order,
            product_level="l1c",
            nodata_value=0,
            invalid_buffer=1,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
            providers=["CPUExecutionProvider"],
        )
        csm = m.csm[..., 0]
        if factor > 1:
            csm = csm.repeat(factor, 0).repeat(factor, 1)
        cloud_share = float((csm == 1).mean())
    else:
        from s2cloudless import S2PixelCloudDetector

        names = ["B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12"]
        img = np.dstack([bands[b] for b in names])[None]
        factor = 16 if case.endswith("160m") else 1
        if factor > 1:
            h, w = img.shape[1] // factor * factor, img.shape[2] // factor * factor
            img = img[:, :h, :w].reshape(1, h // factor, factor, w // factor, factor, -1).mean(axis=(2, 4))
            det = S2PixelCloudDetector(threshold=0.4, average_over=4, dilation_size=2, all_bands=False)
        else:
            det = S2PixelCloudDetector(threshold=0.4, average_over=22, dilation_size=11, all_bands=False)
        imported = peak_mb()
        t1 = time.perf_counter()
        mask = det.get_cloud_masks(img)[0]
        cloud_share = float(mask.mean())
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "case": case,
                "size": size,
                "threads": threads,
                "load_s": round(t1 - t0, 2),
                "run_s": round(t2 - t1, 2),
                "peak_after_import_mb": round(imported),
                "peak_mb": round(peak_mb()),
                "cloud_share": round(cloud_share, 3),
            }
        )
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    a = ap.parse_args()
    if a.case:
        run_case(a.case, a.size, a.threads)
        return
    for case in a.cases:
        p = subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--case",
                case,
                "--size",
                str(a.size),
                "--threads",
                str(a.threads),
            ],
            capture_output=True,
            text=True,
        )
        line = [x for x in p.stdout.splitlines() if x.startswith("{")]
        if p.returncode != 0 or not line:
            err = (p.stderr.strip().splitlines() or ["?"])[-1]
            print(json.dumps({"case": case, "error": err}))
        else:
            print(line[-1])


if __name__ == "__main__":
    main()
