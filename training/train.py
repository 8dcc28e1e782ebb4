"""The training loop (``python -m training train``): seeded, resumable, AMP/channels_last on CUDA,
DDP under torchrun, ReduceLROnPlateau, early stopping, best/last checkpoints, CSV log and PNG curves."""
import csv
import functools
import json
import math
import os
import sys
import time

import numpy as np
import torch

from satclassify_plugin.core.contract.paths import inside, same_file
from satclassify_plugin.core.contract.timeseries import card_entry

from . import checkpoint as ckpt_io
from . import ddp
from .checkpoint import check_compatible
from .config import TrainConfig
from .data import (
    DataInfo,
    PatchDataset,
    band_stats,
    class_weights,
    coarse_classes,
    dataset_files,
    labelled_classes,
    open_dataset,
    pos_weights,
    sample_pixels,
)
from .engine import amp_dtype, augment, cpu_bf16_native, evaluate_split, resolve_device, standardise, summary
from .errors import TrainingError
from .files import RunLock, atomic_open, busy_error, check_folder, lock_owner, make_dir, refuse_inputs
from .folds import fold_view
from .models import count_parameters, get_spec
from .models.unet import load_encoder_from
from .progress import Cancel, Cancelled, Progress, cpu_name

#: options that may change when resuming (everything else comes from the checkpoint)
RESUME_OVERRIDABLE = ("epochs", "out", "device", "amp", "amp_dtype", "progress", "num_workers", "early_stopping",
                      "max_steps", "data", "channels_last")


def seed_all(seed):
    import random
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _log(msg, dist_info):
    if dist_info.is_main:
        print(msg, flush=True)


def card_info(cfg, info, mean, std, coarse=None):
    """The card fields a checkpoint stores (``card.card_from_checkpoint`` makes the ModelCard of them)."""
    spec = get_spec(cfg.model)
    heads = [{"name": cfg.head_name, "classes": info.classes}]
    if spec.patch_labels and info.multilabel:
        heads[0].update({"task": "multilabel", "activation": "sigmoid"})
    if spec.coarse_head:
        heads.append({"name": cfg.coarse_head_name, "classes": coarse})
    geo = spec.card_geometry(cfg, info)
    return {"architecture": cfg.model, "bands": info.bands, "input_scale": info.scale, "mean": mean, "std": std,
            "resolution_m": info.resolution_m, "tile_size": geo["tile_size"], "halo": geo["halo"], "heads": heads,
            "dataset": os.path.abspath(cfg.data), "patch_size": info.patch_size,
            "timeseries": card_entry(info.bands, info.dates, "doy" in spec.input_names) if info.temporal else None,
            "input_clip": info.input_clip}


def make_scheduler(cfg, opt, steps_per_epoch):
    """``plateau``: ReduceLROnPlateau on the monitored score, stepped once an epoch. ``cosine``: stepped every
    batch, a linear warm-up from lr/20 over ``warmup_epochs`` then a cosine decay to 0 at the last epoch."""
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max" if cfg.monitor == "miou" else "min", factor=cfg.plateau_factor,
            patience=cfg.plateau_patience)
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))

    def factor(step):
        if step < warm:
            return 0.05 + 0.95 * step / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1.0 + math.cos(math.pi * t))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _steps_per_epoch(cfg, spec, info, dinfo):
    """Optimizer steps in one epoch (the cosine schedule's unit); --max-steps caps it."""
    if spec.pixel_samples:
        n = info.ds.count("train") * cfg.pixels_per_patch
    else:
        n = info.ds.count("train")
    n = max(1, n // max(dinfo.world, 1))
    steps = max(1, n // cfg.batch_size)
    return min(steps, cfg.max_steps) if cfg.max_steps else steps


def make_optimizer(cfg, params):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


#: the files of a run folder
RUN_FILES = ("config.yaml", "best.pt", "last.pt", "log.csv", "curves.png", "metrics.json")


def train(cfg: TrainConfig, explicit=None, inputs=None, overwrite=False, progress=None, cancel=None):
    """Train; returns a dict with run_dir, best/last checkpoint paths (None for a file this run did not write),
    final metrics, history and warnings. ``inputs``: other files the run reads (label -> path, e.g. {"--config":
    path}) that it must not replace. ``overwrite``: a run folder that already holds a run is replaced (else
    refused; resuming into its own folder needs no overwrite). ``explicit`` options that would change what the
    --resume checkpoint fixes (model, encoder, bands, ...) are refused. ``progress``: a
    :class:`~.progress.Progress` that gets the run's events; ``cancel``: a :class:`~.progress.Cancel` polled
    between batches (set: :class:`~.progress.Cancelled` is raised, the run folder as after the last epoch)."""
    explicit = explicit or {}
    resume = None
    if cfg.resume:
        resume = ckpt_io.load(cfg.resume, "--resume checkpoint")
        base = dict(resume["config"])
        refuse_resume_conflicts(cfg.resume, base, explicit)
        for k in RESUME_OVERRIDABLE:
            if k in explicit and explicit[k] is not None:
                base[k] = explicit[k]
        base["resume"] = cfg.resume
        base["encoder_from"] = None
        cfg = TrainConfig(**base)
    cfg = cfg.resolved()
    device = resolve_device(cfg.device)
    dinfo = ddp.setup(device.type)
    folder = RunFolder(overwrite)
    try:
        return _train(cfg, device, dinfo, resume, inputs or {}, folder, progress or Progress(), cancel or Cancel())
    finally:
        folder.release()
        ddp.cleanup(dinfo)


def _flag(k):
    return "--" + k.replace("_", "-")


def refuse_resume_conflicts(checkpoint, base, explicit):
    """Refuse options given with --resume that the checkpoint fixes (not in :data:`RESUME_OVERRIDABLE`) and that
    differ from its run's: the model, encoder, bands... come from the checkpoint, so they would be ignored."""
    bad = [k for k, v in explicit.items()
           if v is not None and k not in RESUME_OVERRIDABLE and k not in ("resume", "config")
           and k in base and v != base[k]]
    if bad:
        given = ", ".join(f"{_flag(k)} {_show(explicit[k])} (the checkpoint's run has {_show(base[k])})" for k in bad)
        raise TrainingError(
            f"--resume '{checkpoint}' continues a {base.get('model')} run whose options it fixes: {given}. Drop "
            f"{'this option' if len(bad) == 1 else 'these options'} to resume, or train a new run without --resume "
            f"(only {', '.join(_flag(k) for k in RESUME_OVERRIDABLE)} may change when resuming)")


def _show(v):
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


#: files whose presence means a run folder holds a run (config.yaml alone: a run stopped before its first epoch)
RUN_EVIDENCE = ("best.pt", "last.pt", "log.csv", "metrics.json")


class RunFolder:
    """A run folder is written by one training at a time and never replaced by accident: :meth:`check` (the main
    process, before the work; under torchrun its refusal ends the other ranks too) refuses a folder that holds a
    run (unless ``overwrite``, or --resume of a checkpoint in that folder) or that another training holds;
    :meth:`take` (the main process, before its first write) takes the folder's lock (``files.RunLock``), checks
    again under it and, with ``overwrite``, removes the old run's files so the folder never mixes two runs."""

    def __init__(self, overwrite=False):
        self.overwrite = bool(overwrite)
        self.lock = RunLock()

    @staticmethod
    def resumes_own(run_dir, cfg):
        return bool(cfg.resume) and inside(cfg.resume, run_dir)

    def check(self, run_dir, cfg):
        owner = lock_owner(run_dir) if os.path.isdir(run_dir) else None
        if owner is not None and self.lock.fd is None:
            raise busy_error(run_dir, owner)
        if self.overwrite or self.resumes_own(run_dir, cfg) or not os.path.isdir(run_dir):
            return
        held = [n for n in RUN_EVIDENCE if os.path.exists(os.path.join(run_dir, n))]
        if held:
            raise TrainingError(
                f"--out '{run_dir}' already holds a training run ({', '.join(held)}): a new run would replace its "
                f"checkpoints. Choose another --out folder, continue that run with --resume "
                f"{os.path.join(run_dir, 'last.pt')}, or give --overwrite to replace it")

    def take(self, run_dir, cfg):
        self.lock.take(run_dir)
        self.check(run_dir, cfg)
        if self.overwrite and not self.resumes_own(run_dir, cfg):
            for name in RUN_FILES:
                p = os.path.join(run_dir, name)
                if os.path.isfile(p) and not (cfg.resume and same_file(p, cfg.resume)):
                    os.remove(p)

    def release(self):
        self.lock.release()


def _warn(msg, dinfo, warnings, progress=None):
    warnings.append(msg)
    if dinfo.is_main:
        print(f"warning: {msg}", file=sys.stderr, flush=True)
        if progress is not None:
            progress.warning(msg)


def check_run_folder(run_dir, cfg, inputs):
    """Refuse a run folder whose files would replace an input (--resume may: it continues its own run)."""
    if cfg.data and same_file(run_dir, cfg.data):
        raise TrainingError(f"--out '{run_dir}' is the dataset folder --data: the run's files would go in among "
                            "the dataset's (and rebuilding the dataset would delete them). Give --out another folder")
    check_folder(run_dir)
    ins = {"--encoder-from": cfg.encoder_from, "--coarse-map": cfg.coarse_map, **inputs, **dataset_files(cfg.data)}
    ins.pop("dataset folder --data", None)
    for name in RUN_FILES:
        refuse_inputs("the run file", os.path.join(run_dir, name), {k: v for k, v in ins.items() if v},
                      fix="Choose another --out folder")


def one_class_warning(info, split="train"):
    """The warning for a split whose labelled pixels are all one class (None when there are several)."""
    present = labelled_classes(info, split)
    if len(present) != 1:
        return None
    (c, n), = present
    return (f"the dataset has only one class in its '{split}' split (value {c['value']} '{c['name']}', code "
            f"{c['code']}, {n} labelled pixels; the class table lists {info.num_classes}): the model cannot learn to "
            "separate classes and will give this class everywhere. Check the labels: the CLC field and level "
            "given to satclassify:rasterizeclc, the area covered, the patch split; or build the dataset over an "
            "area with at least two classes")


def _prepare_data(cfg, spec, resume, dinfo, warnings, progress=None):
    """The dataset's DataInfo, the validation split, the band stats and (coarse head) the coarse classes with
    the fine -> coarse index table; from the checkpoint when resuming."""
    info = DataInfo(fold_view(open_dataset(cfg.data), cfg.fold), cfg.bands)  # --fold K: folds.py
    info.check_task(spec)
    info.check_split("train")
    val_split = "val" if info.check_split("val", required=False) > 0 else "train"
    one_class = one_class_warning(info, "train")
    if one_class:
        _warn(one_class, dinfo, warnings, progress)
    spec.check_tile(cfg.tile_size)
    if spec.temporal and not info.temporal:
        raise TrainingError(f"--model {spec.name} needs a multi-date dataset: build it with satclassify:buildpatches "
                            "from a multi-date stack (satclassify:fetchsentinel2 INTERVAL); this dataset has the "
                            f"single-date bands {', '.join(info.bands)}")
    coarse, f2c = (None, None)
    if spec.coarse_head:
        coarse, f2c = coarse_classes(info, cfg.coarse_map)
    if resume is not None:
        check_compatible(resume["card"], info, "--resume checkpoint")
        mean, std = resume["card"]["mean"], resume["card"]["std"]
        if spec.coarse_head:
            coarse = resume["card"]["heads"][1]["classes"]
            f2c = torch.tensor(resume["f2c"], dtype=torch.long)
    else:
        mean, std = band_stats(info, "train")
    return info, val_split, mean, std, coarse, f2c


def _channels_last(cfg, spec, device):
    """NHWC memory on CUDA, and on CPU with mixed precision (oneDNN's bf16 convolutions run faster in NHWC:
    35 s instead of 49 s an epoch of the EuroSAT recipe on 2 cores, docs/performance.md)."""
    return cfg.channels_last and spec.channels_last and (device.type == "cuda" or bool(cfg.amp))


def _build_model(cfg, spec, info, coarse, device, dinfo):
    """The model on ``device`` (encoder from --encoder-from), its parameter count and frozen epochs."""
    model = spec.build(info.num_inputs, info.num_classes, len(coarse) if coarse else 0,
                       info.model_config(cfg.to_dict()))
    nparams = count_parameters(model)
    frozen_until = 0
    if cfg.encoder_from:
        src = ckpt_io.load(cfg.encoder_from, "--encoder-from checkpoint")
        if list(src["card"]["bands"]) != info.bands:
            raise TrainingError(f"--encoder-from checkpoint was trained on bands {src['card']['bands']} but the "
                                f"dataset gives {info.bands}")
        n = load_encoder_from(model, src["state_dict"], f"--encoder-from '{cfg.encoder_from}'")
        frozen_until = cfg.freeze_epochs
        _log(f"encoder initialised from {cfg.encoder_from} ({n} tensors); frozen for {frozen_until} epoch(s)", dinfo)
    model.to(device)
    if _channels_last(cfg, spec, device):
        model = model.to(memory_format=torch.channels_last)
    return model, nparams, frozen_until


def _train(cfg, device, dinfo, resume, inputs, folder=None, progress=None, cancel=None):
    progress, cancel = progress or Progress(), cancel or Cancel()
    spec = get_spec(cfg.model)
    if dinfo.active and device.type == "cuda":
        device = torch.device("cuda", dinfo.local_rank)
    warnings = []
    if cfg.amp and device.type == "cpu" and amp_dtype(cfg, device) == torch.bfloat16 and not cpu_bf16_native():
        _warn("--amp on this CPU: it has no native bfloat16 (AVX512-BF16 or AMX), and emulated bf16 trains about 20x "
              "slower than float32, so this run trains in float32 (--no-amp says so without this warning)", dinfo,
              warnings, progress)
        cfg.amp = False
    run_dir = cfg.out or os.path.join("runs", f"{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_run_folder(run_dir, cfg, inputs)
    folder = folder or RunFolder()
    if dinfo.is_main:  # the other processes start with it, before any run file exists
        folder.check(run_dir, cfg)
    seed_all(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    info, val_split, mean, std, coarse, f2c = _prepare_data(cfg, spec, resume, dinfo, warnings, progress)
    card = card_info(cfg, info, mean, std, coarse)
    model, nparams, frozen_until = _build_model(cfg, spec, info, coarse, device, dinfo)
    opt = make_optimizer(cfg, model.parameters())
    steps_per_epoch = _steps_per_epoch(cfg, spec, info, dinfo)
    sched = make_scheduler(cfg, opt, steps_per_epoch)
    start_epoch, best, stale, history = 0, None, 0, []
    if resume is not None:
        model.load_state_dict(resume["state_dict"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        start_epoch = int(resume["epoch"]) + 1
        best, stale = resume.get("best"), int(resume.get("stale", 0))
        history = list(resume.get("history", []))
        frozen_until = int(resume.get("frozen_until", 0))
        _log(f"resuming from {cfg.resume} at epoch {start_epoch + 1}", dinfo)

    in_mean, in_std = info.input_stats(mean, std)  # per input channel (a multi-date dataset: per date + validity)
    mean_t = torch.tensor(in_mean, dtype=torch.float32, device=device)
    std_t = torch.tensor(in_std, dtype=torch.float32, device=device)
    multilabel = spec.patch_labels and info.multilabel
    weight = None
    if cfg.class_weights:
        weight = (pos_weights(info, "train") if multilabel else class_weights(info, "train")).to(device)
    score_key = "val_map" if multilabel else "val_miou"  # multi-label: mAP (needs no threshold)
    use_amp = bool(cfg.amp)
    adt = amp_dtype(cfg, device) if use_amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and adt == torch.float16 and device.type == "cuda")
    f2c_dev = f2c.to(device) if f2c is not None else None

    if dinfo.is_main:
        make_dir(run_dir)
        folder.take(run_dir, cfg)
        import yaml
        with atomic_open(os.path.join(run_dir, "config.yaml"), "w") as f:
            yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
    _log(f"model {cfg.model}: {nparams:,} parameters; device {device}"
         f"{' x' + str(dinfo.world) + ' processes' if dinfo.active else ''}; amp "
         f"{str(adt).replace('torch.', '') if use_amp else 'off'}; train {info.ds.count('train')} patches, "
         f"{'val' if val_split == 'val' else 'no val split: monitoring on train'}; run folder {run_dir}", dinfo)
    if dinfo.is_main:
        progress.emit("start", protocol=1, command="train", epochs=cfg.epochs, start_epoch=start_epoch + 1,
                      steps_per_epoch=steps_per_epoch, device=str(device), device_name=device_name(device),
                      amp=_amp_name(adt) if use_amp else None, run_dir=run_dir, num_parameters=nparams,
                      model=cfg.model, world_size=dinfo.world)

    train_patches = None
    if not spec.pixel_samples:
        train_patches = PatchDataset(info, "train", patch_labels=spec.patch_labels)
        if len(train_patches) == 0:
            raise TrainingError("no training patch has a label (all pixels are 0 / masked)")

    best_path = os.path.join(run_dir, "best.pt")
    last_path = os.path.join(run_dir, "last.pt")
    net, net_frozen = None, None
    epoch = start_epoch - 1
    early = False
    for epoch in range(start_epoch, cfg.epochs):
        cancel.check(epoch + 1)
        t0 = time.time()
        frozen = epoch < frozen_until
        if frozen_until:
            for p in model.encoder.parameters():
                p.requires_grad_(not frozen)
        if net is None or frozen != net_frozen:
            net, net_frozen = ddp.wrap(model, dinfo, device), frozen
        torch.manual_seed(cfg.seed * 100003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        rng = np.random.default_rng([cfg.seed, epoch])
        model.train()
        if frozen:
            model.encoder.eval()
        loss_sum, nsum = 0.0, 0
        batches = _batches(cfg, spec, info, train_patches, rng, gen, dinfo, device)
        bar = _progress(batches, cfg, dinfo, f"epoch {epoch + 1}/{cfg.epochs}")
        nsteps = min(len(batches), cfg.max_steps) if cfg.max_steps else len(batches)
        for step, (x, y) in enumerate(_polled(bar, cancel, epoch + 1)):
            if cfg.max_steps and step >= cfg.max_steps:
                break
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if cfg.augment:
                x, y = augment(x, y, gen)
            x = standardise(x, mean_t, std_t)
            if _channels_last(cfg, spec, device):
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=adt or torch.bfloat16, enabled=use_amp):
                loss = spec.train_loss(net, x, y, weight, f2c_dev, cfg.label_smoothing)
            if not torch.isfinite(loss):
                if (y >= 0).any():
                    raise TrainingError(f"the loss became {float(loss)} at epoch {epoch + 1}: lower --lr")
                continue  # a batch without labelled pixels
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if cfg.schedule == "cosine":
                sched.step()
            n = int(x.shape[0])
            loss_sum += float(loss.detach()) * n
            nsum += n
            if hasattr(bar, "set_postfix") and step % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum / max(nsum, 1):.4f}")
            if dinfo.is_main:
                progress.step(epoch + 1, step + 1, nsteps)
        train_loss = loss_sum / max(nsum, 1)
        heads = evaluate_split(model, spec, info, val_split, mean_t, std_t, device, f2c,
                               [c["value"] for c in coarse] if coarse else None,
                               batch_size=spec.eval_batch_size or max(1, min(cfg.batch_size, 64)),
                               amp=adt, weight=weight, check=functools.partial(cancel.check, epoch + 1))
        row = {"epoch": epoch + 1, "train_loss": train_loss, "lr": opt.param_groups[0]["lr"]}
        fine = heads["fine"].result()
        row.update(summary(fine, "val_"))
        if "coarse" in heads:
            row.update(summary(heads["coarse"].result(), "val_coarse_"))
        row["seconds"] = round(time.time() - t0, 3)
        history.append(row)
        score = row[score_key] if cfg.monitor == "miou" else row["val_loss"]
        score = score if score is not None else (-math.inf if cfg.monitor == "miou" else math.inf)
        if not frozen and cfg.schedule == "plateau":
            sched.step(score)
        improved = best is None or (score > best if cfg.monitor == "miou" else score < best)
        if improved:
            best, stale = score, 0
        elif not frozen:
            stale += 1
        payload = {"format": ckpt_io.FORMAT, "version": 1, "model": cfg.model, "config": cfg.to_dict(),
                   "card": card, "state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                   "scheduler": sched.state_dict(), "epoch": epoch, "best": best, "stale": stale,
                   "history": history, "metrics": row, "frozen_until": frozen_until,
                   "f2c": f2c.tolist() if f2c is not None else None, "num_parameters": nparams,
                   "thresholds": fine.get("thresholds")}
        if dinfo.is_main:
            ckpt_io.save(last_path, payload)
            if improved:
                ckpt_io.save(best_path, payload)
            _write_log(run_dir, history)
        _log(f"epoch {epoch + 1}/{cfg.epochs}: train_loss {train_loss:.4f} val_loss {row['val_loss']:.4f} "
             + (f"micro_f1 {_f(row['val_micro_f1'])} macro_f1 {_f(row['val_macro_f1'])} mAP {_f(row['val_map'])}"
                if multilabel else f"val_oa {_f(row['val_oa'])} val_miou {_f(row['val_miou'])}")
             + (f" coarse_oa {_f(row['val_coarse_oa'])}" if "val_coarse_oa" in row else "")
             + f" lr {row['lr']:.3g} ({row['seconds']:.1f}s){' *' if improved else ''}", dinfo)
        if dinfo.is_main:
            progress.emit("epoch", epoch=epoch + 1, epochs=cfg.epochs, metrics=row, improved=bool(improved),
                          seconds=row["seconds"])
        if cfg.early_stopping and stale >= cfg.early_stopping:
            _log(f"early stopping: no improvement of val {cfg.monitor} for {stale} epochs", dinfo)
            early = True
            break
        ddp.barrier(dinfo)
    if dinfo.is_main and history and not os.path.isfile(best_path):
        _warn(f"no epoch of this run improved on the best val {cfg.monitor} of the resumed checkpoint, so no "
              f"best.pt was written in '{run_dir}': the best model is still the one of the run '{cfg.resume}' "
              "continues", dinfo, warnings, progress)
    result = {"run_dir": run_dir, "best": best_path if os.path.isfile(best_path) else None,
              "last": last_path if os.path.isfile(last_path) else None, "history": history,
              "num_parameters": nparams, "epochs_run": epoch + 1, "world_size": dinfo.world,
              "is_main": dinfo.is_main, "warnings": warnings}
    if dinfo.is_main:
        if history:
            _plot(run_dir, history)
            with atomic_open(os.path.join(run_dir, "metrics.json"), "w") as f:
                json.dump({"last": history[-1], "best_score": best, "monitor": cfg.monitor,
                           "num_parameters": nparams}, f, indent=1)
        progress.emit("done", best=result["best"], last=result["last"], run_dir=run_dir, epochs_run=epoch + 1,
                      early_stopped=early)
    return result


def _amp_name(dtype):
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype).replace("torch.", ""))


def device_name(device):
    """The CUDA GPU's name, or 'cpu (<CPU model>)'."""
    if device.type == "cuda":
        try:
            return torch.cuda.get_device_name(device)
        except (RuntimeError, AssertionError):
            return "cuda"
    return cpu_name()


def _polled(batches, cancel, epoch):
    """``batches`` with the cancel flag checked before each one; a DataLoader worker killed by the same signal
    (a process-group SIGTERM) is the cancellation too, not an error."""
    it = iter(batches)
    while True:
        cancel.check(epoch)
        try:
            item = next(it)
        except StopIteration:
            return
        except RuntimeError:
            if cancel.settle():
                raise Cancelled("training", epoch) from None
            raise
        yield item


def _f(v):
    return "n/a" if v is None else f"{v:.4f}"


def _progress(it, cfg, dinfo, desc):
    if not cfg.progress or not dinfo.is_main:
        return it
    from tqdm import tqdm
    return tqdm(it, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def _batches(cfg, spec, info, patches, rng, gen, dinfo, device):
    if spec.pixel_samples:
        x, y = sample_pixels(info, "train", cfg.pixels_per_patch, rng, spec.halo)
        perm = torch.randperm(len(y), generator=gen)
        if dinfo.active:
            perm = perm[dinfo.rank::dinfo.world]
        return _TensorBatches(x, y, perm, cfg.batch_size)
    if dinfo.active:
        sampler = torch.utils.data.DistributedSampler(patches, num_replicas=dinfo.world, rank=dinfo.rank,
                                                      shuffle=True, seed=cfg.seed)
        sampler.set_epoch(int(rng.integers(1 << 30)))
    else:
        sampler = torch.utils.data.RandomSampler(patches, generator=torch.Generator().manual_seed(
            int(rng.integers(1 << 62))))
    return torch.utils.data.DataLoader(patches, batch_size=cfg.batch_size, sampler=sampler,
                                       num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                                       drop_last=len(patches) > cfg.batch_size * max(dinfo.world, 1),
                                       persistent_workers=False)


class _TensorBatches:
    def __init__(self, x, y, perm, bs):
        self.x, self.y, self.perm, self.bs = x, y, perm, bs

    def __len__(self):
        return (len(self.perm) + self.bs - 1) // self.bs

    def __iter__(self):
        for i in range(0, len(self.perm), self.bs):
            idx = self.perm[i:i + self.bs]
            if len(idx) < 2 and len(self.perm) > 1:
                continue  # BatchNorm needs more than one sample
            yield self.x[idx], self.y[idx]


def _write_log(run_dir, history):
    keys = []
    for r in history:
        keys += [k for k in r if k not in keys]
    with atomic_open(os.path.join(run_dir, "log.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in history:
            w.writerow(r)


def _plot(run_dir, history):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [r["train_loss"] for r in history], label="train loss")
    a.plot(ep, [r["val_loss"] for r in history], label="val loss")
    a.set_xlabel("epoch")
    a.legend()
    for key in ("val_oa", "val_miou", "val_coarse_oa", "val_coarse_miou", "val_micro_f1", "val_map"):
        if key in history[0]:
            b.plot(ep, [r[key] if r[key] is not None else float("nan") for r in history], label=key)
    b.set_xlabel("epoch")
    b.set_ylim(0, 1)
    b.legend()
    fig.tight_layout()
    try:
        with atomic_open(os.path.join(run_dir, "curves.png"), "wb") as f:
            fig.savefig(f, format="png", dpi=80)
    finally:
        plt.close(fig)
