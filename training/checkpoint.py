"""Checkpoints: ``torch.save`` of a plain dict (state_dict, config, card info, optimizer, scheduler,
history), loadable with ``torch.load(..., weights_only=True)``."""
import os

import torch

from .errors import TrainingError
from .files import atomic_open

FORMAT = "satclassify-train"


def save(path, payload):
    """Write atomically (a failure leaves the previous file); an OSError becomes 'cannot write ...'."""
    with atomic_open(path, "wb") as f:
        try:
            torch.save(payload, f)
        except RuntimeError as e:  # torch's zip writer hides a failed write (full disk) behind a RuntimeError
            if isinstance(e.__context__, OSError):
                raise e.__context__ from None
            raise


def load(path, what="checkpoint"):
    if not path or not os.path.isfile(path):
        raise TrainingError(f"{what} '{path}' does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, not a torch file, unsafe pickle
        raise TrainingError(f"{what} '{path}' cannot be read as a training checkpoint: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}")
    if not isinstance(ck, dict) or ck.get("format") != FORMAT or "state_dict" not in ck:
        raise TrainingError(f"{what} '{path}' is not a SatClassify training checkpoint "
                            "(made by 'python -m training train')")
    return ck
