"""EuroSAT RGB benchmark: the shipped recipe (training/recipes/eurosat_rgb.yaml) trained from scratch on the real
patches of ``../shared/data/eurosat_rgb``: seconds per epoch and validation accuracy against epochs.

    .venv-train/bin/python benchmarks/eurosat.py                       # timing of both precisions + full recipe
    .venv-train/bin/python benchmarks/eurosat.py --epochs 0            # timing only (a few minutes)
    .venv-train/bin/python benchmarks/eurosat.py --device cuda         # the same on a GPU (fp32 and AMP)

Two parts:

* **timing**: training batches of the recipe with mixed precision (bf16 + NHWC on CPU, AMP on CUDA) and in
  float32, in the same run (one epoch cut at ``--timing-steps // 3`` batches and one at ``--timing-steps``: their
  difference is the time of a batch, without validation and start-up); seconds per epoch estimated for the
  training split, and the ratio AMP / float32 (the baseline measured beside it).
* **recipe**: the whole recipe for ``--epochs`` (default: the recipe's own), one line per epoch with its seconds,
  validation OA, macro F1 and kappa, the best epoch's figures and the total time.

The split is the importer's seeded random 80/20 of the shared folder (``--val-fraction 0.2 --test-fraction 0``); the
held-out EuroSAT images are never seen. Without the shared data the benchmark says so and exits 0.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "eurosat_rgb")
RECIPE = os.path.join(ROOT, "training", "recipes", "eurosat_rgb.yaml")


def _run(args, log_path=None):
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "training", *args]
    if log_path:
        with open(log_path, "w") as log:
            p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    else:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode:
        tail = open(log_path).read()[-2000:] if log_path else (p.stderr or p.stdout)[-2000:]
        raise SystemExit(f"python -m training {' '.join(args)} failed:\n{tail}")
    return p


def _log_rows(run_dir):
    with open(os.path.join(run_dir, "log.csv")) as f:
        return list(csv.DictReader(f))


def _train_patches(data):
    with open(os.path.join(data, "manifest.json")) as f:
        return json.load(f)["splits"]["train"]["patches"]


def _one_epoch_seconds(data, work, device, steps, amp, name):
    run = os.path.join(work, name)
    _run(
        [
            "train",
            "--config",
            RECIPE,
            "--data",
            data,
            "--out",
            run,
            "--epochs",
            "1",
            "--max-steps",
            str(steps),
            "--device",
            device,
            "--amp" if amp else "--no-amp",
            "--no-progress",
            "--overwrite",
        ]
    )
    return float(_log_rows(run)[-1]["seconds"])


def timing(data, work, device, steps):
    """Seconds per epoch of the recipe with and without mixed precision (same run, same machine). Each precision
    runs one epoch cut at ``steps // 3`` and one at ``steps`` batches: the difference gives the time of a batch
    (the validation pass and start-up cancel out), and the short run's remainder the validation's time."""
    n = _train_patches(data)
    batches = max(1, n // 64)
    short = max(1, steps // 3)
    out = {}
    for amp in (True, False):
        name = "amp" if amp else "fp32"
        t_short = _one_epoch_seconds(data, work, device, short, amp, f"timing-{name}-short")
        t_long = _one_epoch_seconds(data, work, device, steps, amp, f"timing-{name}")
        per_batch = max(t_long - t_short, 1e-9) / (steps - short)
        validation = max(t_short - per_batch * short, 0.0)
        out[name] = {
            "batches": [short, steps],
            "seconds": [t_short, t_long],
            "seconds_per_batch": round(per_batch, 4),
            "validation_seconds": round(validation, 1),
            "seconds_per_epoch_estimate": round(per_batch * batches + validation, 1),
        }
        print(
            f"timing {name:5s}: {per_batch:.3f} s per batch of 64, validation {validation:.1f} s -> about "
            f"{out[name]['seconds_per_epoch_estimate']:.0f} s per epoch of {n} patches",
            flush=True,
        )
    out["ratio_amp_over_fp32"] = round(out["amp"]["seconds_per_batch"] / out["fp32"]["seconds_per_batch"], 3)
    print(f"AMP / float32 time per batch: {out['ratio_amp_over_fp32']:.2f}", flush=True)
    return out


def recipe(data, work, device, epochs):
    run = os.path.join(work, "recipe")
    args = ["train", "--config", RECIPE, "--data", data, "--out", run, "--device", device, "--no-progress"]
    if epochs:
        args += ["--epochs", str(epochs)]
    t0 = time.time()
    _run(args, log_path=os.path.join(work, "recipe.log"))
    total = time.time() - t0
    rows = _log_rows(run)
    print("epoch  seconds  val_oa  val_macro_f1  val_kappa")
    for r in rows:
        print(
            f"{int(r['epoch']):5d}  {float(r['seconds']):7.1f}  {float(r['val_oa']):.4f}  "
            f"{float(r['val_macro_f1']):.4f}        {float(r['val_kappa']):.4f}"
        )
    best = max(rows, key=lambda r: float(r["val_miou"]))
    res = {
        "epochs": len(rows),
        "total_seconds": round(total, 1),
        "mean_epoch_seconds": round(sum(float(r["seconds"]) for r in rows) / len(rows), 1),
        "best_epoch": int(best["epoch"]),
        "best": {k: float(best[k]) for k in ("val_oa", "val_macro_f1", "val_kappa", "val_miou")},
        "curve": [{k: float(r[k]) for k in ("epoch", "seconds", "val_oa", "val_macro_f1")} for r in rows],
    }
    print(
        f"recipe: {len(rows)} epochs in {total / 60:.1f} min; best epoch {res['best_epoch']}: OA "
        f"{res['best']['val_oa']:.4f}, macro F1 {res['best']['val_macro_f1']:.4f}, kappa "
        f"{res['best']['val_kappa']:.4f}",
        flush=True,
    )
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=SHARED, help="EuroSAT RGB class folders (default ../shared/data/eurosat_rgb)")
    ap.add_argument("--data", help="an imported dataset folder (skips the import)")
    ap.add_argument("--workdir", help="folder for the dataset and runs (default: a temporary one)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, help="recipe epochs (default the recipe's; 0 = timing only)")
    ap.add_argument("--timing-steps", type=int, default=60, help="batches per precision in the timing part (60)")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv)
    if not a.data and not os.path.isdir(a.src):
        print(f"skipped: the EuroSAT RGB folder '{a.src}' is absent (give --src or --data)")
        return 0
    work = a.workdir or tempfile.mkdtemp(prefix="eurosat-bench-")
    os.makedirs(work, exist_ok=True)
    data = a.data
    if not data:
        data = os.path.join(work, "eurosat_rgb")
        t0 = time.time()
        _run(
            [
                "import",
                "eurosat",
                a.src,
                "--out",
                data,
                "--val-fraction",
                "0.2",
                "--test-fraction",
                "0",
                "--workers",
                "2",
                "--overwrite",
            ]
        )
        print(f"import: {time.time() - t0:.1f} s", flush=True)
    res = {
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "device": a.device,
        "cpus": os.cpu_count(),
        "timing": timing(data, work, a.device, a.timing_steps) if a.timing_steps else None,
    }
    if a.epochs != 0:
        res["recipe"] = recipe(data, work, a.device, a.epochs)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
