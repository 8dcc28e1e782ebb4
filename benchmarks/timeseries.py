"""Temporal vs single-date models on the profile-only scene (tests/timeseries_scene.py).

    .venv-train/bin/python benchmarks/timeseries.py [--size 192] [--seed 3] [--epochs 15] [--device auto]

Builds the multi-date dataset of a scene (classes differ only in their seasonal profile: on every date two
classes look the same), trains U-TAE and the U-Net baseline (dates stacked as channels) on it, and, for each
date alone, a single-date pixel model (CNN-dual on that date's four bands): the single-date runs show the
~2/3 bound (printed next to them, computed from the scene) that no single date can pass. Prints one line per
model: best validation OA, epochs, seconds, parameters. On a GPU, --device cuda gives the time per epoch.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from satclassify_plugin.core.contract.dataset import DatasetSpec, DatasetWriter  # noqa: E402
from tests import timeseries_scene as tss  # noqa: E402
from tests.training.test_timeseries import write_scene_dataset  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.train import train  # noqa: E402


def single_date_dataset(folder, scene, k, p=32):
    """The scene's date ``k`` alone (its four bands; cloudy pixels unlabelled), same patches and split."""
    lab = scene["labels"]
    h, w = lab.shape
    with DatasetWriter(
        folder, DatasetSpec(scene["bands"], p, scene["classes"], splits=("train", "val")), overwrite=True
    ) as wr:
        i = 0
        for r in range(0, h - p + 1, p):
            for c in range(0, w - p + 1, p):
                v = scene["valid"][k, r : r + p, c : c + p] > 0
                wr.add(
                    "val" if i % 4 == 3 else "train",
                    np.maximum(scene["dn"][k, :, r : r + p, c : c + p], 1),
                    np.where(v, lab[r : r + p, c : c + p], 0),
                )
                i += 1
        wr.close({"resolution_m": 10.0})
    return folder


def run(label, data, out, **kw):
    t0 = time.time()
    res = train(TrainConfig(data=data, out=out, progress=False, early_stopping=0, **kw))
    best = max(r["val_oa"] for r in res["history"])
    print(
        f"{label:42s} best val OA {best:.3f}  epochs {len(res['history']):3d}  {time.time() - t0:7.1f} s  "
        f"{res['num_parameters']:>9,} parameters",
        flush=True,
    )
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--single-dates", action="store_true", help="also train one single-date model per date")
    a = ap.parse_args(argv)
    scene = tss.profile_scene(size=a.size, seed=a.seed, cloud=0.15)
    base = tempfile.mkdtemp(prefix="satclassify-ts-bench-")
    ds = write_scene_dataset(os.path.join(base, "ds"), scene)
    common = {"device": a.device, "epochs": a.epochs, "batch_size": 4, "lr": 3e-3}
    run("U-TAE [16, 32]", ds, os.path.join(base, "utae"), model="utae", utae_widths=[16, 32], tile_size=64, **common)
    run(
        "U-Net resnet18, dates as channels",
        ds,
        os.path.join(base, "unet"),
        model="unet",
        encoder="resnet18",
        decoder_channels=[32, 16, 16, 8, 8],
        tile_size=128,
        **common,
    )
    if a.single_dates:
        for k, d in enumerate(scene["dates"]):
            sd = single_date_dataset(os.path.join(base, f"d{k}"), scene, k)
            run(
                f"single date {d} CNN-dual (bound {tss.single_date_bound(scene['labels'], k):.3f})",
                sd,
                os.path.join(base, f"r{k}"),
                model="cnn_dual",
                widths={"s1": 16, "s2": 32, "s3": 32, "head": 32},
                device=a.device,
                epochs=3,
            )


if __name__ == "__main__":
    main()
