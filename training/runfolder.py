"""A training run folder (``train --out``): which files make a run (:data:`RUN_FILES`), refusing a folder that
holds a run or is in use (:class:`RunFolder`, the lock of ``files.RunLock``) and an --out whose files would replace
an input (:func:`check_run_folder`). docs/training.md: "A run folder is never replaced by accident"."""

import os
from typing import Dict

from satclassify_plugin.core.contract.paths import inside, same_file

from .config import TrainConfig
from .data import dataset_files
from .errors import TrainingError
from .files import RunLock, busy_error, check_folder, lock_owner, refuse_inputs

#: the files of a run folder
RUN_FILES = ("config.yaml", "best.pt", "last.pt", "log.csv", "curves.png", "metrics.json")


#: files whose presence means a run folder holds a run (config.yaml alone: a run stopped before its first epoch)
RUN_EVIDENCE = ("best.pt", "last.pt", "log.csv", "metrics.json")


class RunFolder:
    """A run folder is written by one training at a time and never replaced by accident: :meth:`check` (the main
    process, before the work; under torchrun its refusal ends the other ranks too) refuses a folder that holds a
    run (unless ``overwrite``, or --resume of a checkpoint in that folder) or that another training holds;
    :meth:`take` (the main process, before its first write) takes the folder's lock (``files.RunLock``), checks
    again under it and, with ``overwrite``, removes the old run's files so the folder never mixes two runs."""

    def __init__(self, overwrite: bool = False) -> None:
        self.overwrite = bool(overwrite)
        self.lock = RunLock()

    @staticmethod
    def resumes_own(run_dir: str, cfg: TrainConfig) -> bool:
        return bool(cfg.resume) and inside(str(cfg.resume), run_dir)

    def check(self, run_dir: str, cfg: TrainConfig) -> None:  # in RunFolder
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
                f"{os.path.join(run_dir, 'last.pt')}, or give --overwrite to replace it"
            )

    def take(self, run_dir: str, cfg: TrainConfig) -> None:  # in RunFolder
        self.lock.take(run_dir)
        self.check(run_dir, cfg)
        if self.overwrite and not self.resumes_own(run_dir, cfg):
            for name in RUN_FILES:
                p = os.path.join(run_dir, name)
                if os.path.isfile(p) and not (cfg.resume and same_file(p, cfg.resume)):
                    os.remove(p)

    def release(self) -> None:  # in RunFolder
        self.lock.release()


def check_run_folder(run_dir: str, cfg: TrainConfig, inputs: Dict[str, str]) -> None:
    """Refuse a run folder whose files would replace an input (--resume may: it continues its own run)."""
    if cfg.data and same_file(run_dir, cfg.data):
        raise TrainingError(
            f"--out '{run_dir}' is the dataset folder --data: the run's files would go in among "
            "the dataset's (and rebuilding the dataset would delete them). Give --out another folder"
        )
    check_folder(run_dir)
    ins = {"--encoder-from": cfg.encoder_from, "--coarse-map": cfg.coarse_map, **inputs, **dataset_files(cfg.data)}
    ins.pop("dataset folder --data", None)
    for name in RUN_FILES:
        refuse_inputs(
            "the run file",
            os.path.join(run_dir, name),
            {k: v for k, v in ins.items() if v},
            fix="Choose another --out folder",
        )
