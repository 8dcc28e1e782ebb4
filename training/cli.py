"""Command line: ``python -m training train|evaluate|export|import ...`` (see docs/training.md).

User errors (missing manifest, band mismatch, empty split, bad device, bad config, an output that would
replace an input, an output that cannot be written...) print one line ``error: ...`` on stderr and exit with
code 2, without a traceback. Warnings (e.g. a single-class dataset) print ``warning: ...`` on stderr.
``train`` and ``export`` stop on SIGTERM / SIGINT with one line ``<command> cancelled ...`` on stderr and exit
code 130; ``--progress jsonl`` streams machine-readable events on stdout (``progress.py`` documents both)."""

import argparse
import json
import sys
from typing import List, Optional

from satclassify_plugin.core.contract.errors import SatClassifyError

from .models.specs import ARCHITECTURES
from .progress import Cancel, Cancelled, Progress, make_progress


def _bool_flag(p, name, help):
    p.add_argument(
        f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction, default=None, help=help
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m training",
        description="SatClassify training: train, evaluate and export land-cover models (U-Net, CNN-dual, CNN-class).",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    t = _train_parser(sub)
    _evaluate_parser(sub)
    _export_parser(sub)
    _import_parser(sub)
    _crossval_parser(sub, t)
    sub.add_parser("diagnose", help="this environment's Python, torch, CUDA and GPUs (one JSON line)")
    return ap


def _train_parser(sub):
    t = sub.add_parser("train", help="train a model on a dataset folder")
    t.add_argument("--data", help="dataset folder (manifest.json + shards, from satclassify:buildpatches)")
    t.add_argument("--model", choices=ARCHITECTURES)
    t.add_argument("--encoder", help="segmentation-models-pytorch encoder (unet, cnn_class), default resnet34")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer", choices=["auto", "adamw", "adam", "sgd"])
    t.add_argument("--schedule", choices=["plateau", "cosine"], help="learning-rate schedule (plateau)")
    t.add_argument("--label-smoothing", type=float, help="label smoothing of the cross-entropy (0)")
    t.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    _bool_flag(t, "amp", "mixed precision (bf16 when supported, else fp16 on CUDA; bf16 on CPU)")
    t.add_argument("--amp-dtype", choices=["auto", "bf16", "fp16"])
    t.add_argument("--out", help="run folder (checkpoints, log.csv, curves.png); default runs/<model>-<time>")
    t.add_argument("--seed", type=int)
    t.add_argument(
        "--fold",
        type=int,
        help="cross-validation: validate on fold K of the train split, train on the "
        "other folds (the dataset's k_folds: buildpatches K_FOLDS, import --k-folds)",
    )
    t.add_argument("--config", help="YAML file with options (command-line flags override it)")
    t.add_argument("--resume", help="checkpoint (last.pt) to continue from")
    t.add_argument("--encoder-from", help="CNN-class/U-Net checkpoint whose encoder initialises the U-Net")
    t.add_argument("--freeze-epochs", type=int, help="frozen-encoder warm-up epochs with --encoder-from (2)")
    t.add_argument(
        "--coarse-map",
        help="CNN-dual coarse head: CSV fine_value,coarse_value,coarse_name[,color] "
        "(default: CLC level 1 of the class codes)",
    )
    t.add_argument("--bands", help="comma-separated subset of the dataset's bands")
    _bool_flag(t, "class-weights", "inverse-frequency class weights from the manifest counts")
    _bool_flag(t, "augment", "random flips and 90-degree rotations (on by default)")
    t.add_argument("--early-stopping", type=int, help="epochs without improvement before stopping (0 = never)")
    t.add_argument("--num-workers", type=int)
    t.add_argument("--tile-size", type=int, help="tile size written to the model card (256)")
    t.add_argument("--max-steps", type=int, help="batches per epoch at most (smoke runs)")
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in --out (else refused; "
        "--resume of a checkpoint in --out continues it without this)",
    )
    t.add_argument(
        "--progress",
        nargs="?",
        const="bar",
        choices=("bar", "jsonl", "none"),
        help="bar: tqdm progress bars on stderr (the default); jsonl: one 'SATCLASSIFY_PROGRESS {json}' "
        "line per event on stdout, for programs (training/progress.py); none: neither",
    )
    t.add_argument(
        "--no-progress", dest="progress", action="store_const", const="none", help="no progress bars (--progress none)"
    )
    return t


def _evaluate_parser(sub):
    e = sub.add_parser("evaluate", help="metrics of a checkpoint or an exported ONNX model on a split (JSON)")
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="training checkpoint (best.pt)")
    which.add_argument(
        "--model", help="exported .onnx model, run with onnxruntime and the card's preprocessing as the plugin runs it"
    )
    e.add_argument("--data", required=True)
    e.add_argument("--split", default="test", help="train, val, test or all (every patch of the dataset)")
    e.add_argument("--device", default="auto")
    e.add_argument(
        "--out",
        help="metrics JSON (default: metrics-<split>.json next to the checkpoint, "
        "<model>-metrics-<split>.json next to the model)",
    )
    e.add_argument(
        "--predictions", help="--model: CSV with one row per patch (split, shard, index, reference, predicted, top_p)"
    )


def _export_parser(sub):
    x = sub.add_parser("export", help="checkpoint -> ONNX with the model card, parity-checked")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", required=True, help="ONNX file to write")
    x.add_argument("--tile-size", type=int, help="override the card's tile_size")
    x.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    x.add_argument(
        "--quantize",
        choices=["int8"],
        help="static int8 quantization (QDQ, per-channel weights) for "
        "CPUs, calibrated on --calibration-data; checked against float32 on its validation patches",
    )
    x.add_argument("--calibration-data", help="dataset folder whose patches calibrate --quantize int8")
    x.add_argument("--calibration-split", default="train", help="split of the calibration patches (train)")
    x.add_argument("--calibration-patches", type=int, help="calibration patches at most (64)")
    x.add_argument(
        "--card-info",
        help="JSON object merged into the card's training block (dataset name, licence, "
        "citation, url, description, cross-validation figures) for a published model",
    )
    x.add_argument(
        "--half", action="store_true", help="float16 model for NVIDIA GPUs (DEVICE CUDA; float32 input/outputs)"
    )
    x.add_argument(
        "--progress",
        choices=("jsonl", "none"),
        default="none",
        help="jsonl: 'SATCLASSIFY_PROGRESS {json}' start/done lines on stdout (training/progress.py)",
    )


def _import_parser(sub):
    i = sub.add_parser("import", help="a public patch dataset (BigEarthNet-S2, EuroSAT MS) -> dataset folder")
    isub = i.add_subparsers(dest="source", required=True)
    for name, helptext in (
        ("bigearthnet", "BigEarthNet-S2 v1.0 patch folders -> multi-label dataset"),
        ("eurosat", "EuroSAT class folders (MS: 13-band GeoTIFFs; RGB: 8-bit JPEG/PNG) -> single-label dataset"),
    ):
        s = isub.add_parser(name, help=helptext)
        s.add_argument("src", help="the extracted archive's folder (patch folders / class folders)")
        s.add_argument("--out", required=True, help="dataset folder to write")
        s.add_argument("--bands", help="comma-separated bands to keep (default: all of the archive's)")
        if name == "bigearthnet":
            s.add_argument(
                "--nomenclature",
                type=int,
                choices=(43, 19),
                default=43,
                help="43 CLC level-3 labels (default) or the 19 classes of BigEarthNet-19",
            )
            s.add_argument(
                "--exclude",
                help="file listing patch names to leave out (one per line or first CSV "
                "column), e.g. BigEarthNet's snow / cloud-and-shadow lists",
            )
        s.add_argument("--val-fraction", type=float, default=0.15)
        s.add_argument("--test-fraction", type=float, default=0.15)
        s.add_argument("--block-size", type=int, default=8, help="spatial split blocks of N x N patches (8)")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--shard-size", type=int, default=256, help="patches per shard file (256)")
        s.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
        s.add_argument("--workers", type=int, default=1, help="processes reading the patches (1)")
        s.add_argument(
            "--k-folds",
            type=int,
            default=0,
            help="cross-validation fold ids over the train split's "
            "blocks (seeded), for train --fold / crossval; 0 = none (default)",
        )


def _crossval_parser(sub, train_parser):
    """``crossval``: --data, --folds, --out and every option of ``train`` but --fold and --resume."""
    c = sub.add_parser("crossval", help="train on each fold in turn (train --fold K) and report mean +- std")
    c.add_argument("--data", help="dataset folder with cross-validation folds (k_folds in its manifest)")
    c.add_argument("--folds", default="all", help="all (default), a number N (folds 0..N-1) or fold ids 0,2,...")
    c.add_argument(
        "--out", help="folder of the fold runs (<out>/fold-K) and crossval.json; default runs/crossval-<model>-<time>"
    )
    for action in train_parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in ("data", "out", "fold", "resume"):
            continue
        c._add_action(action)


def _import(args):
    from .importers.common import ImportOptions

    bands = [b.strip() for b in args.bands.split(",") if b.strip()] if args.bands else None
    options = ImportOptions(
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        block_size=args.block_size,
        shard_size=args.shard_size,
        overwrite=args.overwrite,
        workers=args.workers,
        k_folds=args.k_folds,
    )
    if args.source == "bigearthnet":
        from .importers.bigearthnet import import_bigearthnet

        m = import_bigearthnet(
            args.src, args.out, nomenclature_n=args.nomenclature, bands=bands, exclude=args.exclude, options=options
        )
    else:
        from .importers.eurosat import import_eurosat

        m = import_eurosat(args.src, args.out, bands=bands, options=options)
    print(
        json.dumps(
            {
                "out": args.out,
                "task": m["task"],
                "classes": len(m["classes"]),
                "patches": {s: v["patches"] for s, v in m["splits"].items()},
            }
        )
    )


def _export(args, progress=None):
    """``export``; on SIGTERM / SIGINT (:class:`Cancelled` raised by the signal handler) no --out is left that
    looks complete: the writes are atomic, and a finished file still missing its --card-info is removed."""
    import os

    from .errors import TrainingError

    progress = progress or Progress()
    extra = None
    if args.card_info:
        from .card import load_card_info

        extra = load_card_info(args.card_info)
    if args.half and args.quantize:
        raise TrainingError("--half and --quantize exclude each other: float16 is for GPUs, int8 for CPUs")
    if args.quantize and not args.calibration_data:
        raise TrainingError(
            "--quantize int8 needs --calibration-data DATASET (a dataset folder, e.g. the training "
            "data): its patches calibrate the int8 ranges"
        )
    if args.calibration_data and not args.quantize:
        raise TrainingError("--calibration-data is only used with --quantize int8")
    progress.emit(
        "start",
        protocol=1,
        command="export",
        checkpoint=os.path.abspath(args.checkpoint),
        out=os.path.abspath(args.out),
        format="int8" if args.quantize else "float16" if args.half else "float32",
    )
    if args.quantize:
        from .quantize import export_int8

        res = export_int8(
            args.checkpoint,
            args.out,
            args.calibration_data,
            args.calibration_split,
            args.calibration_patches,
            tile_size=args.tile_size,
            check=not args.no_check,
        )
    elif args.half:
        from .quantize import export_half

        res = export_half(args.checkpoint, args.out, tile_size=args.tile_size, check=not args.no_check)
    else:
        from .export import export

        res = export(args.checkpoint, args.out, check=not args.no_check, tile_size=args.tile_size)
    card = res["card"]
    if extra is not None:
        from .card import merge_training_info

        try:
            card = merge_training_info(args.out, extra)
        except (Cancelled, KeyboardInterrupt):
            if os.path.isfile(res["path"]):
                os.remove(res["path"])  # a model without its --card-info must not look finished
            raise
    progress.emit("done", onnx=res["path"], card=card.to_dict())


TRAIN_KEYS = (
    "data",
    "model",
    "encoder",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "schedule",
    "label_smoothing",
    "device",
    "amp",
    "amp_dtype",
    "out",
    "seed",
    "resume",
    "encoder_from",
    "freeze_epochs",
    "coarse_map",
    "bands",
    "class_weights",
    "augment",
    "early_stopping",
    "num_workers",
    "tile_size",
    "max_steps",
    "progress",
    "fold",
)


def _progress_mode(args):
    """(the config's ``progress`` (tqdm bars) or None when not given, the ``--progress`` mode)."""
    mode = getattr(args, "progress", None)
    return (None if mode is None else mode == "bar"), mode


def _crossval(args, cancel=None):
    from .config import make_config
    from .crossval import crossval

    over = {k: getattr(args, k, None) for k in TRAIN_KEYS if k not in ("fold", "resume")}
    over["data"], over["out"] = args.data, args.out
    over["progress"], mode = _progress_mode(args)
    bands = over.get("bands")
    if bands:
        over["bands"] = [b.strip() for b in bands.split(",") if b.strip()]
    over = {k: v for k, v in over.items() if v is not None}
    cfg = make_config(args.config, over)
    res = crossval(
        cfg,
        args.folds,
        explicit=over,
        inputs={"--config": args.config} if args.config else None,
        overwrite=bool(getattr(args, "overwrite", False)),
        progress=make_progress(mode),
        cancel=cancel,
    )
    print(json.dumps({k: res[k] for k in ("output", "k_folds", "folds", "mean", "std", "per_fold")}))


def _train(args, cancel):
    from .config import make_config
    from .train import train

    over = {k: getattr(args, k) for k in TRAIN_KEYS}
    over["progress"], mode = _progress_mode(args)
    if over["bands"]:
        over["bands"] = [b.strip() for b in over["bands"].split(",") if b.strip()]
    over = {k: v for k, v in over.items() if v is not None}
    cfg = make_config(args.config, over)
    explicit, from_config = over, []
    if args.resume and args.config:  # the file's options are given too: applied or refused, never dropped
        from .config import check_types, load_yaml

        file_values = check_types(load_yaml(args.config), f"config file '{args.config}'")
        from_config = [k for k in file_values if k not in over]
        explicit = {**file_values, **over}
    res = train(
        cfg,
        explicit=explicit,
        inputs={"--config": args.config} if args.config else None,
        overwrite=args.overwrite,
        progress=make_progress(mode),
        cancel=cancel,
        config_keys=from_config,
    )
    if res["history"] and res.get("is_main", True):
        print(
            json.dumps(
                {
                    "run_dir": res["run_dir"],
                    "best": res["best"],
                    "last": res["last"],
                    "epochs_run": res["epochs_run"],
                    "num_parameters": res["num_parameters"],
                    "final": res["history"][-1],
                }
            )
        )


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    cancel = Cancel("export" if args.command == "export" else "training")
    if args.command not in ("train", "crossval", "export"):
        return _run(args, cancel)  # Ctrl+C interrupts at once (exit code 130)
    try:
        with cancel.installed(immediate=args.command == "export"):
            return _run(args, cancel)
    except Cancelled as e:
        make_progress(getattr(args, "progress", None)).emit("cancelled", command=args.command, epoch=e.epoch)
        print(str(e), file=sys.stderr, flush=True)
        return 130


def _run(args, cancel):
    try:
        if args.command == "train":
            _train(args, cancel)
        elif args.command == "evaluate":
            if args.model:
                from .evaluate_onnx import evaluate_onnx

                res = evaluate_onnx(
                    args.model, args.data, args.split, args.device, args.out, predictions=args.predictions
                )
            else:
                if args.predictions:
                    from .errors import TrainingError

                    raise TrainingError("--predictions is written with --model (an exported .onnx)")
                from .evaluate import evaluate

                res = evaluate(args.checkpoint, args.data, args.split, args.device, args.out)
            print(json.dumps(res, indent=1))
        elif args.command == "crossval":
            _crossval(args, cancel)
        elif args.command == "export":
            _export(args, make_progress(args.progress))
        elif args.command == "import":
            _import(args)
        elif args.command == "diagnose":
            from .diagnose import diagnose

            print(json.dumps(diagnose()))
        return 0
    except SatClassifyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a write goes through training.files (one line there); this catches the rest
        print(f"error: {str(e.filename) + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
