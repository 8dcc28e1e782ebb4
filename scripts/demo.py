#!/usr/bin/env python3
"""SatClassify main job: the whole chain, headless, on the embedded sample (or your own scene).

  1. input      sample scene (scripts/make_sample.py), or --image/--clc; with --fetch, satclassify:fetchsentinel2
                is tried first and the sample is used when no network is reachable
  2. labels     satclassify:rasterizeclc  (CLC polygons -> CLC level-2 class raster on the image grid)
  3. dataset    satclassify:buildpatches  (image + labels -> training dataset folder, spatial split)
  4. training   python -m training train  (CNN-dual, CPU, training env)
  5. export     python -m training export (ONNX + model card, parity-checked)
  6. classify   satclassify:classify      (fine + coarse class rasters, confidence)
  7. accuracy   satclassify:assessaccuracy (confusion matrix, metrics JSON, HTML report)
  8. quick-look PNG: input RGB | reference | prediction
  9. the prediction as a QGIS map with its legend (print layout, PNG)

Each QGIS step runs through qgis_process (scripts/qgis_process.sh), as a scheduler would run it.
Run with the QGIS env: .venv-qgis/bin/python scripts/demo.py [--out output/demo] [--epochs N]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from osgeo import gdal

gdal.UseExceptions()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
TRAIN_PY = os.environ.get("SATCLASSIFY_TRAIN_PYTHON", os.path.join(ROOT, ".venv-train", "bin", "python"))
STAC_URL = "https://earth-search.aws.element84.com/v1"

TIMES = []


def step(name):
    def deco(fn):
        def wrapper(*a, **kw):
            print(f"\n== {name}", flush=True)
            t0 = time.time()
            r = fn(*a, **kw)
            dt = time.time() - t0
            TIMES.append((name, dt))
            print(f"   done in {dt:.1f} s", flush=True)
            return r

        return wrapper

    return deco


def qgis_process(alg, params):
    """Run one tool through qgis_process; return its JSON results."""
    args = ["bash", os.path.join(ROOT, "scripts", "qgis_process.sh"), "run", alg, "--json", "--"]
    args += [f"{k}={v}" for k, v in params.items() if v is not None]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-4000:] + "\n" + out.stderr[-4000:] + "\n")
        raise SystemExit(f"{alg} failed (exit {out.returncode})")
    text = out.stdout
    return json.loads(text[text.index("{") :])["results"]


def network_reachable(url, timeout=3.0):
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout)
        return True
    except Exception:
        return False


@step("1. input scene")
def get_input(args):
    if args.image and args.clc:
        print(f"   image {args.image}\n   CLC   {args.clc}")
        return args.image, args.clc
    from make_sample import make_sample

    img, clc = make_sample(os.path.join(ROOT, "sample"))
    if args.fetch:
        if network_reachable(STAC_URL):
            try:
                res = qgis_process(
                    "satclassify:fetchsentinel2",
                    {
                        "EXTENT": args.fetch,
                        "START": args.fetch_start,
                        "END": args.fetch_end,
                        "MAX_CLOUD": 20,
                        "OUTPUT": os.path.join(args.out, "s2_fetched.tif"),
                        "MASK": os.path.join(args.out, "s2_fetched_mask.tif"),
                    },
                )
                print(f"   fetched {res['OUTPUT']}")
                return res["OUTPUT"], args.clc
            except SystemExit as e:
                print(f"   fetch failed ({e}); using the embedded sample")
        else:
            print("   no network reachable: using the embedded sample")
    print(f"   sample image {img}\n   sample CLC   {clc}  (synthetic, see scripts/make_sample.py)")
    return img, clc


@step("2. rasterize CLC (satclassify:rasterizeclc)")
def rasterize(args, image, clc):
    out = os.path.join(args.out, "labels_clc_level2.tif")
    qgis_process(
        "satclassify:rasterizeclc",
        {"INPUT": clc, "REFERENCE": image, "LEVEL": args.level_enum, "RULE": 2, "OUTPUT": out},
    )
    print(f"   {out}")
    return out


@step("3. build patches (satclassify:buildpatches)")
def patches(args, image, labels):
    folder = os.path.join(args.out, "dataset")
    if os.path.exists(folder):
        shutil.rmtree(folder)
    res = qgis_process(
        "satclassify:buildpatches",
        {
            "IMAGE": image,
            "LABELS": labels,
            "PATCH_SIZE": args.patch,
            "STRIDE": args.patch,
            "MIN_LABELLED": 0.5,
            "BLOCK_SIZE": 2,
            "VAL_FRACTION": 0.2,
            "TEST_FRACTION": 0.2,
            "SEED": 1,
            "OVERWRITE": True,
            "OUTPUT_FOLDER": folder,
        },
    )
    print(f"   {folder}: train {res.get('TRAIN_COUNT')}, val {res.get('VAL_COUNT')}, test {res.get('TEST_COUNT')}")
    return folder


def train_env(cmd):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([TRAIN_PY, "-m", "training", *cmd], cwd=ROOT, env=env)
    if out.returncode != 0:
        raise SystemExit(f"training {cmd[0]} failed (exit {out.returncode})")


@step("4. train CNN-dual on CPU (python -m training train)")
def train(args, dataset):
    run_dir = os.path.join(args.out, "run")
    train_env(
        [
            "train",
            "--data",
            dataset,
            "--model",
            "cnn_dual",
            "--epochs",
            str(args.epochs),
            "--device",
            args.device,
            "--out",
            run_dir,
            "--seed",
            "0",
            "--no-progress",
            # the run folder is the demo's own output, made again on every run like the dataset above (the
            # training CLI refuses to replace a run without it)
            "--overwrite",
        ]
    )
    return run_dir


@step("5. export ONNX (python -m training export)")
def export(args, run_dir):
    onnx_path = os.path.join(args.out, "model_cnn_dual.onnx")
    train_env(["export", "--checkpoint", os.path.join(run_dir, "best.pt"), "--out", onnx_path])
    return onnx_path


@step("6. classify (satclassify:classify)")
def classify(args, image, model):
    outs = {
        "OUTPUT": os.path.join(args.out, "prediction_level2.tif"),
        "OUTPUT_2": os.path.join(args.out, "prediction_level1.tif"),
        "CONFIDENCE": os.path.join(args.out, "confidence.tif"),
    }
    qgis_process("satclassify:classify", {"INPUT": image, "MODEL": model, **outs})
    for v in outs.values():
        print(f"   {v}")
    return outs["OUTPUT"]


@step("7. assess accuracy (satclassify:assessaccuracy)")
def assess(args, prediction, labels):
    outs = {
        "OUTPUT_MATRIX": os.path.join(args.out, "confusion_matrix.csv"),
        "OUTPUT_METRICS": os.path.join(args.out, "metrics.json"),
        "OUTPUT_REPORT": os.path.join(args.out, "accuracy_report.html"),
    }
    res = qgis_process("satclassify:assessaccuracy", {"CLASSIFIED": prediction, "REFERENCE": labels, **outs})
    print(
        f"   OA {res.get('OA'):.3f}  kappa {res.get('KAPPA'):.3f}  mIoU {res.get('MIOU'):.3f}  "
        f"macro F1 {res.get('MACRO_F1'):.3f}"
    )
    return outs, res


def _rgb_of_class_raster(path):
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    a = band.ReadAsArray()
    ct = band.GetColorTable()
    lut = np.zeros((256, 3), np.uint8)
    if ct is not None:
        for i in range(min(256, ct.GetCount())):
            lut[i] = ct.GetColorEntry(i)[:3]
    rgb = lut[a]
    rgb[a == 0] = 255
    return rgb


@step("8. quick-look PNG")
def quicklook(args, image, labels, prediction):
    ds = gdal.Open(image)
    names = [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
    idx = [names.index(b) + 1 if b in names else i for i, b in zip((3, 2, 1), ("B04", "B03", "B02"))]
    rgb = np.stack([ds.GetRasterBand(i).ReadAsArray().astype(np.float32) for i in idx], axis=-1)
    rgb = np.clip(rgb / 2000.0 * 255, 0, 255).astype(np.uint8)
    gap = np.full((rgb.shape[0], 8, 3), 255, np.uint8)
    panel = np.concatenate([rgb, gap, _rgb_of_class_raster(labels), gap, _rgb_of_class_raster(prediction)], axis=1)
    out = os.path.join(args.out, "quicklook.png")
    mem = gdal.GetDriverByName("MEM").Create("", panel.shape[1], panel.shape[0], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(panel[..., i])
    gdal.GetDriverByName("PNG").CreateCopy(out, mem)
    for ext in (".aux.xml",):
        if os.path.exists(out + ext):
            os.remove(out + ext)
    print(f"   {out}  (input RGB | reference CLC | prediction)")
    return out


@step("9. QGIS map with legend (print layout)")
def qgis_map(args, prediction):
    out = os.path.join(args.out, "prediction_map.png")
    r = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "scripts", "render_map.py"),
            prediction,
            out,
            "--title",
            "SatClassify prediction (CLC level 2)",
            "--scheme",
            "CLC level 2 classes",
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:  # a picture is not worth failing the main job for
        print("   could not render the map: " + (r.stderr.strip().splitlines() or ["?"])[-1])
        return None
    print(f"   {out}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="SatClassify full chain on the embedded sample")
    ap.add_argument("--out", default=os.path.join(ROOT, "output", "demo"))
    ap.add_argument("--image", help="your own 4-band S2 stack (B02 B03 B04 B08 band descriptions)")
    ap.add_argument("--clc", help="your own CLC polygons (code_18 field)")
    ap.add_argument(
        "--fetch",
        metavar="XMIN,XMAX,YMIN,YMAX [EPSG:4326]",
        help="try satclassify:fetchsentinel2 for this extent first",
    )
    ap.add_argument("--fetch-start", default="2024-06-01")
    ap.add_argument("--fetch-end", default="2024-08-31")
    ap.add_argument("--epochs", type=int, default=int(os.environ.get("SATCLASSIFY_DEMO_EPOCHS", "6")))
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    if args.fetch and not args.clc:
        ap.error(
            "--fetch needs --clc: real Sentinel-2 imagery needs the real CORINE Land Cover of the same area "
            "(the sample's CLC is synthetic)"
        )
    args.level_enum = 1  # CLC level 2 (enum index: 0 = level 1, 1 = level 2, 2 = level 3)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    image, clc = get_input(args)
    labels = rasterize(args, image, clc)
    dataset = patches(args, image, labels)
    run_dir = train(args, dataset)
    model = export(args, run_dir)
    prediction = classify(args, image, model)
    outs, res = assess(args, prediction, labels)
    ql = quicklook(args, image, labels, prediction)
    qgis_map(args, prediction)
    print("\n== Summary (wall time per step)")
    for name, dt in TIMES:
        print(f"   {dt:7.1f} s  {name}")
    print(f"   {time.time() - t0:7.1f} s  total")
    print(f"\nOutputs in {args.out}\n   report:     {outs['OUTPUT_REPORT']}\n   quick-look: {ql}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
