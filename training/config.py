"""Training configuration: defaults < YAML file (``--config``) < command-line flags."""

import math
import os
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional

from .errors import TrainingError
from .models.specs import SPECS, get_spec


@dataclass
class TrainConfig:
    data: Optional[str] = None
    model: str = "unet"  # unet | cnn_dual | cnn_class | utae (multi-date datasets)
    encoder: str = "resnet34"  # smp encoder for unet / cnn_class
    decoder_channels: Optional[List[int]] = None  # U-Net decoder widths (default smp's 256..16)
    widths: Optional[dict] = None  # CNN-dual stage widths (see models/cnn_dual.py)
    dropout: float = 0.1
    light_widths: Optional[List[int]] = None  # CNN-class encoder 'satimnet': stage widths (default 32, 64, 128, 256)
    utae_widths: Optional[List[int]] = None  # U-TAE encoder widths per level (default 16, 32, 64)
    utae_heads: int = 4  # U-TAE temporal attention heads (the widths must be multiples)
    doy_jitter: int = 0  # U-TAE: shift all dates by up to +-N days per batch in training
    bands: Optional[List[str]] = None  # subset of the dataset's bands (default: all)
    epochs: int = 20
    batch_size: Optional[int] = None  # default: unet/cnn_class 16, cnn_dual 256
    lr: Optional[float] = None  # default: unet 1e-3 (AdamW), cnn_dual 0.01 (SGD), cnn_class 1e-3 (Adam)
    optimizer: str = "auto"  # auto | adamw | adam | sgd
    momentum: float = 0.9
    weight_decay: float = 1e-4
    class_weights: bool = False  # inverse-frequency weights from the manifest's training counts
    augment: bool = True  # random flips and 90-degree rotations
    pixels_per_patch: int = 32  # CNN-dual: labelled pixels sampled per patch and epoch
    schedule: str = "plateau"  # plateau (ReduceLROnPlateau on the monitor) | cosine (per batch, to 0)
    warmup_epochs: float = 0.0  # cosine: linear warm-up from lr/20 over this many epochs
    label_smoothing: float = 0.0  # single-label cross-entropy label smoothing (0 = none)
    plateau_patience: int = 3  # ReduceLROnPlateau patience (epochs)
    plateau_factor: float = 0.5
    early_stopping: int = 8  # stop after this many epochs without improvement (0 = never)
    monitor: str = "miou"  # miou | loss
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = False
    amp_dtype: str = "auto"  # auto (bf16 when supported, else fp16) | bf16 | fp16
    channels_last: bool = True  # on CUDA
    num_workers: int = 0
    seed: int = 0
    fold: Optional[int] = None  # cross-validation: validate on this fold, train on the others
    out: Optional[str] = None  # run folder (default runs/<model>-<time>)
    resume: Optional[str] = None
    encoder_from: Optional[str] = None  # CNN-class / U-Net checkpoint whose encoder initialises the U-Net
    freeze_epochs: int = 2  # frozen-encoder warm-up epochs with --encoder-from
    coarse_map: Optional[str] = None  # CNN-dual: CSV fine_value,coarse_value,coarse_name[,color]
    head_name: str = "class"  # name of the (fine) head in the model card
    coarse_head_name: str = "coarse"
    tile_size: int = 256  # exported card tile size
    max_steps: int = 0  # stop each epoch after this many batches (0 = all); for smoke runs
    progress: bool = True  # tqdm bars

    def resolved(self) -> "TrainConfig":
        """Fill the model-dependent defaults (from the architecture's spec)."""
        c = TrainConfig(**asdict(self))
        spec = get_spec(c.model)
        if c.batch_size is None:
            c.batch_size = spec.batch_size
        if c.lr is None:
            c.lr = spec.lr
        if c.optimizer == "auto":
            c.optimizer = spec.optimizer
        if c.optimizer not in ("adamw", "adam", "sgd"):
            raise TrainingError(f"optimizer '{c.optimizer}' is not one of adamw, adam, sgd")
        if c.amp_dtype not in ("auto", "bf16", "fp16"):
            raise TrainingError(f"amp_dtype '{c.amp_dtype}' is not one of auto, bf16, fp16")
        if c.schedule not in ("plateau", "cosine"):
            raise TrainingError(f"schedule '{c.schedule}' is not one of plateau, cosine")
        if not 0 <= c.label_smoothing < 1:
            raise TrainingError(f"label_smoothing must be in [0, 1), got {c.label_smoothing}")
        if c.warmup_epochs < 0:
            raise TrainingError(f"warmup_epochs must be >= 0, got {c.warmup_epochs}")
        if c.monitor not in ("miou", "loss"):
            raise TrainingError(f"monitor '{c.monitor}' is not one of miou, loss")
        for k in ("epochs", "batch_size"):
            if getattr(c, k) < 1:
                raise TrainingError(f"{k.replace('_', '-')} must be >= 1, got {getattr(c, k)}")
        if c.lr <= 0:
            raise TrainingError(f"lr must be > 0, got {c.lr}")
        if c.encoder_from and not spec.encoder_transfer:
            raise TrainingError(
                "--encoder-from only applies to --model "
                + " or ".join(s.name for s in SPECS.values() if s.encoder_transfer)
            )
        return c

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


FIELD_NAMES = {f.name for f in fields(TrainConfig)}


def load_yaml(path: str) -> Dict[str, Any]:
    import yaml

    if not os.path.isfile(path):
        raise TrainingError(f"config file '{path}' does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise TrainingError(f"config file '{path}' is not valid YAML: {str(e).splitlines()[0]}")
    if not isinstance(data, dict):
        raise TrainingError(f"config file '{path}' must hold a mapping of option: value")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - FIELD_NAMES)
    if unknown:
        raise TrainingError(f"config file '{path}': unknown option(s) {', '.join(unknown)}")
    return data


_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a text", dict: "a mapping"}


def _expected(tp):
    """(Optional allowed, base type, item type of a list or None) of a TrainConfig field annotation."""
    if isinstance(tp, str):
        tp = eval(tp, vars(typing), {"List": List, "Optional": Optional})  # noqa: S307 - our own annotations
    optional = False
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional, tp = True, args[0]
    if typing.get_origin(tp) in (list, List):
        return optional, list, typing.get_args(tp)[0]
    return optional, tp, None


def _coerce(value, tp, what: str):
    """``value`` as type ``tp`` (int, float, bool, str, dict), or a TrainingError naming the option, the value
    and the type expected. An int field takes a whole float (10.0); a float field takes an int and a number
    written as text (YAML 1.1 reads ``1e-3`` as text)."""
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str):
            try:
                v = float(value.strip())
            except ValueError:
                v = None
            if v is not None and math.isfinite(v):
                return v
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict:
        if isinstance(value, dict):
            return value
    else:
        return value
    raise TrainingError(f"{what} must be {_TYPE_WORDS.get(tp, tp.__name__)}, got {value!r}")


def check_types(values: dict, where: str = "configuration") -> dict:
    """The options in ``values`` with the types TrainConfig declares (ints, floats, booleans, texts, lists of
    them; None where the option is optional), or a TrainingError naming the first wrong one: checked before
    anything is written (a run folder, config.yaml)."""
    hints = {f.name: f.type for f in fields(TrainConfig)}
    out = {}
    for key, value in values.items():
        if key not in hints:
            out[key] = value
            continue
        optional, tp, item = _expected(hints[key])
        what = f"{where}: option '{key}'"
        if value is None:
            if not optional:
                raise TrainingError(f"{what} needs a value ({_TYPE_WORDS.get(tp, 'a list')}), got nothing")
            out[key] = None
        elif tp is list:
            if isinstance(value, str) and item is str:  # "B02, B08" as on the command line
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                raise TrainingError(f"{what} must be a list of {_TYPE_WORDS[item].split(' ', 1)[1]}s, got {value!r}")
            out[key] = [_coerce(v, item, what + " (each item)") for v in value]
        else:
            out[key] = _coerce(value, tp, what)
    return out


def make_config(yaml_path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> TrainConfig:
    values = {}
    if yaml_path:
        values.update(check_types(load_yaml(yaml_path), f"config file '{yaml_path}'"))
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k] = v
    values = check_types(values)
    try:
        return TrainConfig(**values)
    except TypeError as e:
        raise TrainingError(f"bad configuration: {e}")
