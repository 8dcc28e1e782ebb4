"""Checkpoints: ``torch.save`` of a plain dict (state_dict, config, card info, optimizer, scheduler,
history), loadable with ``torch.load(..., weights_only=True)``; the model a checkpoint holds (:func:`load_model`)
and whether a dataset fits it (:func:`check_compatible`). evaluate, export and train use these, so exporting a
model does not import the training loop."""

import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

import torch

from .errors import TrainingError
from .files import atomic_open

if TYPE_CHECKING:
    from .data import DataInfo

FORMAT = "satclassify-train"


def save(path: str, payload: Dict[str, Any]) -> None:
    """Write atomically (a failure leaves the previous file); an OSError becomes 'cannot write ...'."""
    with atomic_open(path, "wb") as f:
        try:
            torch.save(payload, f)
        except RuntimeError as e:  # torch's zip writer hides a failed write (full disk) behind a RuntimeError
            if isinstance(e.__context__, OSError):
                raise e.__context__ from None
            raise


def load(path: Optional[str], what: str = "checkpoint") -> Dict[str, Any]:
    if not path or not os.path.isfile(path):
        raise TrainingError(f"{what} '{path}' does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, not a torch file, unsafe pickle
        raise TrainingError(
            f"{what} '{path}' cannot be read as a training checkpoint: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        )
    if not isinstance(ck, dict) or ck.get("format") != FORMAT or "state_dict" not in ck:
        raise TrainingError(
            f"{what} '{path}' is not a SatClassify training checkpoint (made by 'python -m training train')"
        )
    return ck


def load_model(ck: Dict[str, Any], device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    """The checkpoint's model (built from its config and card, weights loaded) on ``device``, in eval mode."""
    from .models import build_model

    cfg = ck["config"]
    card = ck["card"]
    ts = card.get("timeseries")
    nb = ts["num_dates"] * (len(card["bands"]) + 1) if ts else len(card["bands"])  # input channels
    if ts:
        cfg = {**cfg, "num_dates": ts["num_dates"], "doy": ts["doy"]}
    nk = len(card["heads"][0]["classes"])
    nc = len(card["heads"][1]["classes"]) if len(card["heads"]) > 1 else 0
    model = build_model(cfg["model"], nb, nk, nc, cfg)
    model.load_state_dict(ck["state_dict"])
    return model.to(device).eval()


def check_compatible(card: Dict[str, Any], info: "DataInfo", source: str) -> None:
    """Refuse a dataset (:class:`~.data.DataInfo`) whose bands, dates or class values differ from the checkpoint
    card's; ``source`` names the checkpoint in the message."""
    if list(card["bands"]) != list(info.bands):
        raise TrainingError(
            f"{source} was trained on bands {card['bands']} but the dataset gives "
            f"{info.bands}: use a dataset with the same bands (or set 'bands')"
        )
    ts = card.get("timeseries")
    if (ts["dates"] if ts else []) != info.dates:
        raise TrainingError(
            f"{source} was trained on the dates {ts['dates'] if ts else 'none (single-date)'} but the "
            f"dataset has {info.dates or 'none (single-date)'}: use a dataset with the same dates"
        )
    vals = [c["value"] for c in card["heads"][0]["classes"]]
    if vals != info.values:
        raise TrainingError(f"{source} has class values {vals} but the dataset has {info.values}")
