"""The training loop (``python -m training train``): seeded, resumable, AMP/channels_last on CUDA,
DDP under torchrun, ReduceLROnPlateau, early stopping, best/last checkpoints, CSV log and PNG curves."""

import csv
import functools
import json
import math
import os
import sys
import time
from typing import Any, Collection, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

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
    labelled_classes,
    open_dataset,
    pos_weights,
    sample_pixels,
)
from .engine import amp_dtype, augment, cpu_bf16_native, evaluate_split, resolve_device, standardise, summary
from .errors import TrainingError
from .files import atomic_open, make_dir
from .folds import fold_view
from .models import count_parameters, get_spec
from .models.unet import load_encoder_from
from .progress import PROTOCOL, Cancel, Cancelled, Progress, cpu_name
from .resume import RESUME_OVERRIDABLE, refuse_resume_conflicts, resume_config  # noqa: F401
from .runfolder import RUN_EVIDENCE, RUN_FILES, RunFolder, check_run_folder  # noqa: F401


def seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _log(msg, dist_info):
    if dist_info.is_main:
        print(msg, flush=True)


def card_info(
    cfg: TrainConfig, info: DataInfo, mean: List[float], std: List[float], coarse: Optional[List[dict]] = None
) -> Dict[str, Any]:
    """The card fields a checkpoint stores (``card.card_from_checkpoint`` makes the ModelCard of them)."""
    spec = get_spec(cfg.model)
    heads: List[Dict[str, Any]] = [{"name": cfg.head_name, "classes": info.classes}]
    if spec.patch_labels and info.multilabel:
        heads[0].update({"task": "multilabel", "activation": "sigmoid"})
    if spec.coarse_head:
        heads.append({"name": cfg.coarse_head_name, "classes": coarse})
    geo = spec.card_geometry(cfg, info)
    return {
        "architecture": cfg.model,
        "bands": info.bands,
        "input_scale": info.scale,
        "mean": mean,
        "std": std,
        "resolution_m": info.resolution_m,
        "tile_size": geo["tile_size"],
        "halo": geo["halo"],
        "heads": heads,
        "dataset": os.path.abspath(str(cfg.data)),
        "patch_size": info.patch_size,
        "timeseries": card_entry(info.bands, info.dates, "doy" in spec.input_names) if info.temporal else None,
        "input_clip": info.input_clip,
    }


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
    """``plateau``: ReduceLROnPlateau on the monitored score, stepped once an epoch. ``cosine``: stepped every
    batch, a linear warm-up from lr/20 over ``warmup_epochs`` then a cosine decay to 0 at the last epoch."""
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="max" if cfg.monitor == "miou" else "min",
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
        )
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
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


def make_optimizer(cfg: TrainConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train(
    cfg: TrainConfig,
    explicit: Optional[Dict[str, Any]] = None,
    inputs: Optional[Dict[str, str]] = None,
    overwrite: bool = False,
    progress: Optional[Progress] = None,
    cancel: Optional[Cancel] = None,
    config_keys: Collection[str] = (),
) -> dict:
    """Train; returns a dict with run_dir, best/last checkpoint paths (None for a file this run did not write),
    final metrics, history and warnings. ``inputs``: other files the run reads (label -> path, e.g. {"--config":
    path}) that it must not replace. ``overwrite``: a run folder that already holds a run is replaced (else
    refused; resuming into its own folder needs no overwrite). ``explicit`` options that would change what the
    --resume checkpoint fixes (model, encoder, bands, ...) are refused, the others applied, and a line says which
    (``resume.resume_config``; ``config_keys``: the ``explicit`` options that came from the --config file, named
    so in the messages). ``progress``: a
    :class:`~.progress.Progress` that gets the run's events; ``cancel``: a :class:`~.progress.Cancel` polled
    between batches (set: :class:`~.progress.Cancelled` is raised, the run folder as after the last epoch)."""
    explicit = explicit or {}
    resume, note = None, None
    if cfg.resume:
        resume = ckpt_io.load(cfg.resume, "--resume checkpoint")
        cfg, note = resume_config(cfg.resume, dict(resume["config"]), explicit, config_keys)
    cfg = cfg.resolved()
    device = resolve_device(cfg.device)
    dinfo = ddp.setup(device.type)
    if note:
        _log(note, dinfo)
    folder = RunFolder(overwrite)
    try:
        return _train(cfg, device, dinfo, resume, inputs or {}, folder, progress or Progress(), cancel or Cancel())
    finally:
        folder.release()
        ddp.cleanup(dinfo)


def _warn(msg, dinfo, warnings, progress=None):
    warnings.append(msg)
    if dinfo.is_main:
        print(f"warning: {msg}", file=sys.stderr, flush=True)
        if progress is not None:
            progress.warning(msg)


def one_class_warning(info: DataInfo, split: str = "train") -> Optional[str]:
    """The warning for a split whose labelled pixels are all one class (None when there are several)."""
    present = labelled_classes(info, split)
    if len(present) != 1:
        return None
    ((c, n),) = present
    return (
        f"the dataset has only one class in its '{split}' split (value {c['value']} '{c['name']}', code "
        f"{c['code']}, {n} labelled pixels; the class table lists {info.num_classes}): the model cannot learn to "
        "separate classes and will give this class everywhere. Check the labels: the CLC field and level "
        "given to satclassify:rasterizeclc, the area covered, the patch split; or build the dataset over an "
        "area with at least two classes"
    )


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
        raise TrainingError(
            f"--model {spec.name} needs a multi-date dataset: build it with satclassify:buildpatches "
            "from a multi-date stack (satclassify:fetchsentinel2 INTERVAL); this dataset has the "
            f"single-date bands {', '.join(info.bands)}"
        )
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
    model = spec.build(
        info.num_inputs, info.num_classes, len(coarse) if coarse else 0, info.model_config(cfg.to_dict())
    )
    nparams = count_parameters(model)
    frozen_until = 0
    if cfg.encoder_from:
        src = ckpt_io.load(cfg.encoder_from, "--encoder-from checkpoint")
        if list(src["card"]["bands"]) != info.bands:
            raise TrainingError(
                f"--encoder-from checkpoint was trained on bands {src['card']['bands']} but the "
                f"dataset gives {info.bands}"
            )
        n = load_encoder_from(model, src["state_dict"], f"--encoder-from '{cfg.encoder_from}'")
        frozen_until = cfg.freeze_epochs
        _log(f"encoder initialised from {cfg.encoder_from} ({n} tensors); frozen for {frozen_until} epoch(s)", dinfo)
    model.to(device)
    if _channels_last(cfg, spec, device):
        model = model.to(memory_format=torch.channels_last)
    return model, nparams, frozen_until


def _train(
    cfg: TrainConfig,
    device: torch.device,
    dinfo: ddp.DistInfo,
    resume: Optional[dict],
    inputs: Dict[str, str],
    folder: Optional["RunFolder"] = None,
    progress: Optional[Progress] = None,
    cancel: Optional[Cancel] = None,
) -> dict:
    """The run in its steps: setup (:meth:`_Run.setup`), then per epoch training (:meth:`_Run.train_epoch`),
    validation (:meth:`_Run.validate`) and saving (:meth:`_Run.save`), then the run's summary files
    (:meth:`_Run.finish`)."""
    run = _Run(cfg, device, dinfo, progress or Progress(), cancel or Cancel())
    run.setup(resume, inputs, folder or RunFolder())
    for epoch in range(run.start_epoch, run.cfg.epochs):
        run.epoch = epoch
        if run.run_epoch(epoch):
            break
        ddp.barrier(dinfo)
    return run.finish()


class _Run:
    """The state of one training run, shared by the steps of :func:`_train`."""

    def __init__(
        self, cfg: TrainConfig, device: torch.device, dinfo: ddp.DistInfo, progress: Progress, cancel: Cancel
    ) -> None:
        self.cfg, self.device, self.dinfo = cfg, device, dinfo
        self.progress, self.cancel = progress, cancel
        self.spec = get_spec(cfg.model)
        self.warnings: List[str] = []
        self.best: Optional[float] = None
        self.stale = 0
        self.history: List[dict] = []
        self.start_epoch = 0
        self.epoch = -1
        self.early = False
        self.net = self.net_frozen = None

    def warn(self, msg: str) -> None:
        _warn(msg, self.dinfo, self.warnings, self.progress)

    # --- setup ---------------------------------------------------------------------------------------------
    def setup(self, resume: Optional[dict], inputs: Dict[str, str], folder: "RunFolder") -> None:
        self._setup_device()
        cfg = self.cfg
        self.run_dir = cfg.out or os.path.join("runs", f"{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}")
        check_run_folder(self.run_dir, cfg, inputs)
        if self.dinfo.is_main:  # the other processes start with it, before any run file exists
            folder.check(self.run_dir, cfg)
        seed_all(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        self._setup_model(resume)
        self._setup_inputs()
        self._open_run_folder(folder)

    def _setup_device(self) -> None:
        cfg, dinfo = self.cfg, self.dinfo
        if dinfo.active and self.device.type == "cuda":
            self.device = torch.device("cuda", dinfo.local_rank)
        if (
            cfg.amp
            and self.device.type == "cpu"
            and amp_dtype(cfg, self.device) == torch.bfloat16
            and not cpu_bf16_native()
        ):
            self.warn(
                "--amp on this CPU: it has no native bfloat16 (AVX512-BF16 or AMX), and emulated bf16 trains "
                "about 20x slower than float32, so this run trains in float32 (--no-amp says so without this "
                "warning)"
            )
            cfg.amp = False

    def _setup_model(self, resume: Optional[dict]) -> None:
        """Data, model, optimizer and schedule (their state from the --resume checkpoint)."""
        cfg, spec, dinfo = self.cfg, self.spec, self.dinfo
        info, self.val_split, mean, std, self.coarse, self.f2c = _prepare_data(
            cfg, spec, resume, dinfo, self.warnings, self.progress
        )
        self.info, self.mean, self.std = info, mean, std
        self.card = card_info(cfg, info, mean, std, self.coarse)
        self.model, self.nparams, self.frozen_until = _build_model(cfg, spec, info, self.coarse, self.device, dinfo)
        self.opt = make_optimizer(cfg, self.model.parameters())
        self.steps_per_epoch = _steps_per_epoch(cfg, spec, info, dinfo)
        self.sched = make_scheduler(cfg, self.opt, self.steps_per_epoch)
        if resume is not None:
            self.model.load_state_dict(resume["state_dict"])
            self.opt.load_state_dict(resume["optimizer"])
            self.sched.load_state_dict(resume["scheduler"])
            self.start_epoch = int(resume["epoch"]) + 1
            self.best, self.stale = resume.get("best"), int(resume.get("stale", 0))
            self.history = list(resume.get("history", []))
            self.frozen_until = int(resume.get("frozen_until", 0))
            _log(f"resuming from {cfg.resume} at epoch {self.start_epoch + 1}", dinfo)
        self.epoch = self.start_epoch - 1

    def _setup_inputs(self) -> None:
        """Standardisation tensors, class weights, the monitored score, mixed precision."""
        cfg, info, device = self.cfg, self.info, self.device
        in_mean, in_std = info.input_stats(self.mean, self.std)  # per input channel (multi-date: per date + validity)
        self.mean_t = torch.tensor(in_mean, dtype=torch.float32, device=device)
        self.std_t = torch.tensor(in_std, dtype=torch.float32, device=device)
        self.multilabel = self.spec.patch_labels and info.multilabel
        self.weight = None
        if cfg.class_weights:
            self.weight = (pos_weights(info, "train") if self.multilabel else class_weights(info, "train")).to(device)
        self.score_key = "val_map" if self.multilabel else "val_miou"  # multi-label: mAP (needs no threshold)
        self.use_amp = bool(cfg.amp)
        self.adt = amp_dtype(cfg, device) if self.use_amp else None
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.use_amp and self.adt == torch.float16 and device.type == "cuda"
        )
        self.f2c_dev = self.f2c.to(device) if self.f2c is not None else None
        self.channels_last = _channels_last(cfg, self.spec, device)

    def _open_run_folder(self, folder: "RunFolder") -> None:
        """The run folder taken and its config.yaml written (main process), the start line and event, the
        training patches."""
        cfg, dinfo, info, run_dir = self.cfg, self.dinfo, self.info, self.run_dir
        if dinfo.is_main:
            make_dir(run_dir)
            folder.take(run_dir, cfg)
            import yaml

            with atomic_open(os.path.join(run_dir, "config.yaml"), "w") as f:
                yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
        _log(
            f"model {cfg.model}: {self.nparams:,} parameters; device {self.device}"
            f"{' x' + str(dinfo.world) + ' processes' if dinfo.active else ''}; amp "
            f"{str(self.adt).replace('torch.', '') if self.use_amp else 'off'}; train {info.ds.count('train')} "
            f"patches, {'val' if self.val_split == 'val' else 'no val split: monitoring on train'}; run folder "
            f"{run_dir}",
            dinfo,
        )
        if dinfo.is_main:
            self.progress.emit(
                "start",
                protocol=PROTOCOL,
                command="train",
                epochs=cfg.epochs,
                start_epoch=self.start_epoch + 1,
                steps_per_epoch=self.steps_per_epoch,
                device=str(self.device),
                device_name=device_name(self.device),
                amp=_amp_name(self.adt) if self.use_amp else None,
                run_dir=run_dir,
                num_parameters=self.nparams,
                model=cfg.model,
                world_size=dinfo.world,
            )
        self.train_patches = None
        if not self.spec.pixel_samples:
            self.train_patches = PatchDataset(info, "train", patch_labels=self.spec.patch_labels)
            if len(self.train_patches) == 0:
                raise TrainingError("no training patch has a label (all pixels are 0 / masked)")
        self.best_path = os.path.join(run_dir, "best.pt")
        self.last_path = os.path.join(run_dir, "last.pt")

    # --- one epoch -----------------------------------------------------------------------------------------
    def run_epoch(self, epoch: int) -> bool:
        """Train, validate and save epoch ``epoch`` (0-based); True when early stopping ends the run."""
        self.cancel.check(epoch + 1)
        t0 = time.time()
        frozen = self._freeze(epoch)
        train_loss = self.train_epoch(epoch, frozen)
        row, fine = self.validate(epoch, train_loss)
        row["seconds"] = round(time.time() - t0, 3)
        self.history.append(row)
        improved = self._track(row, frozen)
        self.save(epoch, row, improved, fine)
        self._report(epoch, row, improved)
        if self.cfg.early_stopping and self.stale >= self.cfg.early_stopping:
            _log(f"early stopping: no improvement of val {self.cfg.monitor} for {self.stale} epochs", self.dinfo)
            self.early = True
        return self.early

    def _freeze(self, epoch: int) -> bool:
        """Whether the encoder is frozen this epoch (--encoder-from warm-up); (re)wraps the model for DDP."""
        frozen = epoch < self.frozen_until
        if self.frozen_until:
            for p in self.model.encoder.parameters():
                p.requires_grad_(not frozen)
        if self.net is None or frozen != self.net_frozen:
            self.net, self.net_frozen = ddp.wrap(self.model, self.dinfo, self.device), frozen
        return frozen

    def train_epoch(self, epoch: int, frozen: bool) -> float:
        """One pass over the training batches (seeded from (seed, epoch)); the mean training loss."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 100003 + epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        rng = np.random.default_rng([cfg.seed, epoch])
        self.model.train()
        if frozen:
            self.model.encoder.eval()
        loss_sum, nsum = 0.0, 0
        batches = _batches(cfg, self.spec, self.info, self.train_patches, rng, gen, self.dinfo, self.device)
        bar = _progress(batches, cfg, self.dinfo, f"epoch {epoch + 1}/{cfg.epochs}")
        nsteps = min(len(batches), cfg.max_steps) if cfg.max_steps else len(batches)
        for step, (x, y) in enumerate(_polled(bar, self.cancel, epoch + 1)):
            if cfg.max_steps and step >= cfg.max_steps:
                break
            loss = self._step(x, y, gen, epoch)
            if loss is None:
                continue  # a batch without labelled pixels
            n = int(x.shape[0])
            loss_sum += loss * n
            nsum += n
            if hasattr(bar, "set_postfix") and step % 10 == 0:
                bar.set_postfix(loss=f"{loss_sum / max(nsum, 1):.4f}")
            if self.dinfo.is_main:
                self.progress.step(epoch + 1, step + 1, nsteps)
        return loss_sum / max(nsum, 1)

    def _step(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, epoch: int) -> Optional[float]:
        """One optimizer step on batch (x, y); its loss, or None for a batch without a labelled pixel."""
        cfg, device = self.cfg, self.device
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if cfg.augment:
            x, y = augment(x, y, gen)
        x = standardise(x, self.mean_t, self.std_t)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=self.adt or torch.bfloat16, enabled=self.use_amp):
            loss = self.spec.train_loss(self.net, x, y, self.weight, self.f2c_dev, cfg.label_smoothing)
        if not torch.isfinite(loss):
            if (y >= 0).any():
                raise TrainingError(f"the loss became {float(loss)} at epoch {epoch + 1}: lower --lr")
            return None
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if cfg.schedule == "cosine":
            self.sched.step()
        return float(loss.detach())

    def validate(self, epoch: int, train_loss: float) -> Tuple[dict, dict]:
        """The epoch's log row (train loss, lr, the validation figures of each head) and the fine head's
        metrics."""
        coarse = self.coarse
        heads = evaluate_split(
            self.model,
            self.spec,
            self.info,
            self.val_split,
            self.mean_t,
            self.std_t,
            self.device,
            self.f2c,
            [c["value"] for c in coarse] if coarse else None,
            batch_size=self.spec.eval_batch_size or max(1, min(int(self.cfg.batch_size or 1), 64)),
            amp=self.adt,
            weight=self.weight,
            check=functools.partial(self.cancel.check, epoch + 1),
        )
        row = {"epoch": epoch + 1, "train_loss": train_loss, "lr": self.opt.param_groups[0]["lr"]}
        fine = heads["fine"].result()
        row.update(summary(fine, "val_"))
        if "coarse" in heads:
            row.update(summary(heads["coarse"].result(), "val_coarse_"))
        return row, fine

    def _track(self, row: dict, frozen: bool) -> bool:
        """The plateau schedule stepped on the monitored score; whether it improved on the best."""
        cfg = self.cfg
        maximise = cfg.monitor == "miou"
        score = row[self.score_key] if maximise else row["val_loss"]
        score = score if score is not None else (-math.inf if maximise else math.inf)
        if not frozen and cfg.schedule == "plateau":
            self.sched.step(score)
        improved = self.best is None or (score > self.best if maximise else score < self.best)
        if improved:
            self.best, self.stale = score, 0
        elif not frozen:
            self.stale += 1
        return improved

    def save(self, epoch: int, row: dict, improved: bool, fine: dict) -> None:
        """last.pt (and best.pt when ``improved``) and log.csv, by the main process."""
        if not self.dinfo.is_main:
            return
        cfg, f2c = self.cfg, self.f2c
        payload = {
            "format": ckpt_io.FORMAT,
            "version": 1,
            "model": cfg.model,
            "config": cfg.to_dict(),
            "card": self.card,
            "state_dict": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "epoch": epoch,
            "best": self.best,
            "stale": self.stale,
            "history": self.history,
            "metrics": row,
            "frozen_until": self.frozen_until,
            "f2c": f2c.tolist() if f2c is not None else None,
            "num_parameters": self.nparams,
            "thresholds": fine.get("thresholds"),
        }
        ckpt_io.save(self.last_path, payload)
        if improved:
            ckpt_io.save(self.best_path, payload)
        _write_log(self.run_dir, self.history)

    def _report(self, epoch: int, row: dict, improved: bool) -> None:
        """The epoch's log line and event."""
        cfg = self.cfg
        _log(
            f"epoch {epoch + 1}/{cfg.epochs}: train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
            + (
                f"micro_f1 {_f(row['val_micro_f1'])} macro_f1 {_f(row['val_macro_f1'])} mAP {_f(row['val_map'])}"
                if self.multilabel
                else f"val_oa {_f(row['val_oa'])} val_miou {_f(row['val_miou'])}"
            )
            + (f" coarse_oa {_f(row['val_coarse_oa'])}" if "val_coarse_oa" in row else "")
            + f" lr {row['lr']:.3g} ({row['seconds']:.1f}s){' *' if improved else ''}",
            self.dinfo,
        )
        if self.dinfo.is_main:
            self.progress.emit(
                "epoch",
                epoch=epoch + 1,
                epochs=cfg.epochs,
                metrics=row,
                improved=bool(improved),
                seconds=row["seconds"],
            )

    # --- the end -------------------------------------------------------------------------------------------
    def finish(self) -> dict:
        """curves.png and metrics.json (main process), the done event; the result of :func:`train`."""
        cfg, dinfo, run_dir, history = self.cfg, self.dinfo, self.run_dir, self.history
        if dinfo.is_main and history and not os.path.isfile(self.best_path):
            self.warn(
                f"no epoch of this run improved on the best val {cfg.monitor} of the resumed checkpoint, so "
                f"no best.pt was written in '{run_dir}': the best model is still the one of the run "
                f"'{cfg.resume}' continues"
            )
        result = {
            "run_dir": run_dir,
            "best": self.best_path if os.path.isfile(self.best_path) else None,
            "last": self.last_path if os.path.isfile(self.last_path) else None,
            "history": history,
            "num_parameters": self.nparams,
            "epochs_run": self.epoch + 1,
            "world_size": dinfo.world,
            "is_main": dinfo.is_main,
            "warnings": self.warnings,
        }
        if dinfo.is_main:
            if history:
                _plot(run_dir, history)
                with atomic_open(os.path.join(run_dir, "metrics.json"), "w") as f:
                    json.dump(
                        {
                            "last": history[-1],
                            "best_score": self.best,
                            "monitor": cfg.monitor,
                            "num_parameters": self.nparams,
                        },
                        f,
                        indent=1,
                    )
            self.progress.emit(
                "done",
                best=result["best"],
                last=result["last"],
                run_dir=run_dir,
                epochs_run=self.epoch + 1,
                early_stopped=self.early,
            )
        return result


def _amp_name(dtype):
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype).replace("torch.", ""))


def device_name(device: torch.device) -> str:
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
            perm = perm[dinfo.rank :: dinfo.world]
        return _TensorBatches(x, y, perm, cfg.batch_size)
    if dinfo.active:
        sampler = torch.utils.data.DistributedSampler(
            patches, num_replicas=dinfo.world, rank=dinfo.rank, shuffle=True, seed=cfg.seed
        )
        sampler.set_epoch(int(rng.integers(1 << 30)))
    else:
        sampler = torch.utils.data.RandomSampler(
            patches, generator=torch.Generator().manual_seed(int(rng.integers(1 << 62)))
        )
    return torch.utils.data.DataLoader(
        patches,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        drop_last=len(patches) > cfg.batch_size * max(dinfo.world, 1),
        persistent_workers=False,
    )


class _TensorBatches:
    def __init__(self, x, y, perm, bs):
        self.x, self.y, self.perm, self.bs = x, y, perm, bs

    def __len__(self):
        return (len(self.perm) + self.bs - 1) // self.bs

    def __iter__(self):
        for i in range(0, len(self.perm), self.bs):
            idx = self.perm[i : i + self.bs]
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
