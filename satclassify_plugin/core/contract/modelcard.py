"""The SatClassify model card: the JSON stored in an ONNX file's ``metadata_props["satclassify"]``.

Pure Python (shared with the training package). See DESIGN.md "Model contract (ONNX)".
:func:`parse_card` validates and normalises a card; :func:`card_from_deepness` builds one
from the metadata keys that Deepness models carry, for models made by other tools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from .classes import ClassRecord
from .errors import SatClassifyError

SCHEMA_VERSION = 1
METADATA_KEY = "satclassify"
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12", "SCL")
DEEPNESS_KEYS = (
    "model_type",
    "class_names",
    "resolution",
    "tiles_size",
    "tile_size",
    "tiles_overlap",
    "standardization_mean",
    "standardization_std",
)


class ModelCardError(SatClassifyError):
    """The model card is missing or invalid."""


#: a class of a model head: the project's one class record
HeadClass = ClassRecord


#: a head's task: "multiclass" (one class per pixel or patch, softmax) or "multilabel" (any number, sigmoid)
HEAD_TASKS = ("multiclass", "multilabel")
ACTIVATIONS = ("softmax", "sigmoid")


@dataclass
class Head:
    name: str
    output: str
    classes: List[HeadClass]
    task: str = "multiclass"
    activation: str = "softmax"
    #: multilabel heads: per-class probability thresholds (class order), tuned on validation; None = 0.5 each
    thresholds: Optional[List[float]] = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    def class_thresholds(self) -> List[float]:
        return list(self.thresholds) if self.thresholds is not None else [0.5] * self.num_classes

    def to_dict(self):
        d: Dict[str, Any] = {"name": self.name, "output": self.output, "classes": [c.to_dict() for c in self.classes]}
        if self.task != "multiclass" or self.activation != "softmax":  # cards of softmax heads stay as before
            d.update({"task": self.task, "activation": self.activation})
        if self.thresholds is not None:
            d["thresholds"] = list(self.thresholds)
        return d


@dataclass
class ModelCard:
    architecture: str
    bands: List[str]
    heads: List[Head]
    resolution_m: Optional[float] = None
    input_scale: float = 1e-4
    mean: Optional[List[float]] = None
    std: Optional[List[float]] = None
    tile_size: int = 256
    halo: int = 32
    training: Dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    source: str = METADATA_KEY  # "satclassify" or "deepness"
    #: multi-date models: core.contract.timeseries.card_entry (dates, doy, bands per date, doy input); else None
    timeseries: Optional[Dict[str, Any]] = None
    #: per band [lo, hi]: raw values are clipped to this range before input_scale (None: no clip). A model
    #: trained on saturated 8-bit imagery (EuroSAT RGB: DN 0..2750 -> 0..255) sees the same saturation on a stack
    input_clip: Optional[List[List[float]]] = None

    def to_dict(self) -> dict:
        d = {
            "schema_version": self.schema_version,
            "architecture": self.architecture,
            "bands": list(self.bands),
            "resolution_m": self.resolution_m,
            "input_scale": self.input_scale,
            "mean": self.mean,
            "std": self.std,
            "tile_size": self.tile_size,
            "halo": self.halo,
            "heads": [h.to_dict() for h in self.heads],
            "training": self.training,
        }
        if self.timeseries:
            d["timeseries"] = dict(self.timeseries)
        if self.input_clip is not None:
            d["input_clip"] = [list(p) for p in self.input_clip]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    @property
    def sentinel2_dn(self) -> bool:
        """A SatClassify model of Sentinel-2 bands: its inputs are digital numbers, where 0 is no data (used when a
        stack gives no nodata value) and a negative value is no valid DN."""
        return self.source == "satclassify" and all(b.upper() in S2_BANDS for b in self.bands)

    @property
    def num_bands(self) -> int:
        return len(self.bands)

    @property
    def num_dates(self) -> int:
        """Dates the model needs (1 for a single-date model)."""
        return int(self.timeseries["num_dates"]) if self.timeseries else 1

    @property
    def input_channels(self) -> int:
        """Channels of the ``image`` input: the bands, or T * (bands + 1) for a multi-date model (per date its
        bands then its validity, core.contract.timeseries.LAYOUT)."""
        return self.num_dates * (self.num_bands + 1) if self.timeseries else self.num_bands


def _req(d: Mapping, key: str, where: str):
    if key not in d:
        raise ModelCardError(f"model card: '{key}' is missing in {where}")
    return d[key]


def _num_list(v, key, n) -> Optional[List[float]]:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise ModelCardError(f"model card: '{key}' must be a list of numbers, got {v!r}")
    if len(v) != n:
        raise ModelCardError(f"model card: '{key}' has {len(v)} values but the model has {n} bands")
    return [float(x) for x in v]


def parse_card(data) -> ModelCard:
    """Validate a card (JSON text or dict) and return a :class:`ModelCard`."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as e:
            raise ModelCardError(f"model card is not valid JSON: {e}")
    if not isinstance(data, Mapping):
        raise ModelCardError("model card must be a JSON object")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ModelCardError(
            f"model card schema_version {version!r} is not supported (this plugin reads {SCHEMA_VERSION}); "
            "update the plugin or re-export the model"
        )
    arch = _req(data, "architecture", "the card")
    if not isinstance(arch, str) or not arch:
        raise ModelCardError("model card: 'architecture' must be a non-empty string")
    bands = _req(data, "bands", "the card")
    if not isinstance(bands, list) or not bands or not all(isinstance(b, str) and b for b in bands):
        raise ModelCardError(f"model card: 'bands' must be a non-empty list of band names, got {bands!r}")
    if len(set(bands)) != len(bands):
        raise ModelCardError(f"model card: 'bands' has duplicates: {bands}")
    n = len(bands)
    scale = data.get("input_scale", 1e-4)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
        raise ModelCardError(f"model card: 'input_scale' must be a positive number, got {scale!r}")
    mean = _num_list(data.get("mean"), "mean", n)
    std = _num_list(data.get("std"), "std", n)
    if (mean is None) != (std is None):
        raise ModelCardError("model card: give both 'mean' and 'std' or neither")
    _check_standardization(mean, std, "model card: 'mean' / 'std'")
    tile = data.get("tile_size", 256)
    halo = data.get("halo", 0)
    for key, v, lo in (("tile_size", tile, 1), ("halo", halo, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ModelCardError(f"model card: '{key}' must be an integer >= {lo}, got {v!r}")
    if tile <= 2 * halo:
        raise ModelCardError(f"model card: tile_size {tile} must be larger than twice the halo {halo}")
    res = data.get("resolution_m")
    if res is not None and (not isinstance(res, (int, float)) or res <= 0):
        raise ModelCardError(f"model card: 'resolution_m' must be a positive number, got {res!r}")
    heads_raw = _req(data, "heads", "the card")
    if not isinstance(heads_raw, list) or not heads_raw:
        raise ModelCardError("model card: 'heads' must be a non-empty list")
    heads = []
    for i, h in enumerate(heads_raw):
        if not isinstance(h, Mapping):
            raise ModelCardError(f"model card: head {i} must be an object")
        name = _req(h, "name", f"head {i}")
        output = _req(h, "output", f"head {i}")
        classes_raw = _req(h, "classes", f"head '{name}'")
        if not isinstance(classes_raw, list) or not classes_raw:
            raise ModelCardError(f"model card: head '{name}' needs a non-empty 'classes' list")
        classes = []
        for j, c in enumerate(classes_raw):
            if not isinstance(c, Mapping):
                raise ModelCardError(f"model card: class {j} of head '{name}' must be an object")
            value = _req(c, "value", f"class {j} of head '{name}'")
            if not isinstance(value, int) or isinstance(value, bool):
                raise ModelCardError(
                    f"model card: class {j} of head '{name}' has value {value!r}; values are 1..255 (0 = no label)"
                )
            classes.append(ClassRecord.from_dict(c, f"model card: head '{name}'", ModelCardError))
        if len({c.value for c in classes}) != len(classes):
            raise ModelCardError(f"model card: head '{name}' has duplicate class values")
        heads.append(Head(str(name), str(output), classes, *_head_task(h, name, len(classes))))
    if len({h.name for h in heads}) != len(heads):
        raise ModelCardError("model card: head names must be unique")
    training = data.get("training") or {}
    if not isinstance(training, Mapping):
        raise ModelCardError("model card: 'training' must be an object")
    card = ModelCard(
        arch,
        list(bands),
        heads,
        float(res) if res is not None else None,
        float(scale),
        mean,
        std,
        tile,
        halo,
        dict(training),
        version,
    )
    if data.get("timeseries") is not None:
        from .timeseries import check_card_entry

        card.timeseries = check_card_entry(data["timeseries"], card.bands, ModelCardError)
    card.input_clip = _clip_list(data.get("input_clip"), n)
    if card.input_clip is not None and card.timeseries:
        raise ModelCardError("model card: 'input_clip' is not supported for multi-date models")
    return card


def _check_standardization(mean, std, where: str) -> None:
    """A card's (mean, std): finite numbers, every std > 0 (a std of 0 divides by zero: the model would see
    infinite inputs and give NaN, i.e. no class)."""
    import math

    if mean is not None and not all(math.isfinite(m) for m in mean):
        raise ModelCardError(f"{where}: the mean values must be finite numbers, got {mean}")
    if std is not None and not all(math.isfinite(s) and s > 0 for s in std):
        bad = [i + 1 for i, s in enumerate(std) if not (math.isfinite(s) and s > 0)]
        raise ModelCardError(
            f"{where}: every std value must be a finite number > 0, got {std} (band(s) {', '.join(map(str, bad))}): "
            "a std of 0 divides by zero and the model gives no class. Fix the model's metadata: the std of each "
            "band's training values (e.g. 1.0 for a band that needs no standardisation)"
        )


def _clip_list(v, n) -> Optional[List[List[float]]]:
    """``input_clip``: None, or one [lo, hi] pair of raw values per band with lo < hi."""
    if v is None:
        return None
    ok = (
        isinstance(v, (list, tuple))
        and len(v) == n
        and all(
            isinstance(p, (list, tuple))
            and len(p) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in p)
            and p[0] < p[1]
            for p in v
        )
    )
    if not ok:
        raise ModelCardError(
            f"model card: 'input_clip' must list one [low, high] pair (low < high) of raw values "
            f"per band ({n} bands), got {v!r}"
        )
    return [[float(p[0]), float(p[1])] for p in v]


def input_transform(card: ModelCard):
    """Per band (a, b, lo, hi) as float64 arrays: model input = clip(raw, lo, hi) * a + b, i.e. the card's
    input_clip, input_scale, then (x - mean) / std. Without a clip lo = -inf, hi = +inf. The one definition of
    the card's preprocessing: classify, classifypatches, the training package's evaluate and export use it."""
    import numpy as np

    n = card.num_bands
    a = np.full(n, card.input_scale, dtype=np.float64)
    b = np.zeros(n, dtype=np.float64)
    if card.mean is not None and card.std is not None:
        std = np.asarray(card.std, dtype=np.float64)
        a = a / std
        b = -np.asarray(card.mean, dtype=np.float64) / std
    if card.input_clip is None:
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    else:
        lo, hi = (np.array([p[i] for p in card.input_clip], dtype=np.float64) for i in (0, 1))
    return a, b, lo, hi


def preprocess(card: ModelCard, raw):
    """(N, C, H, W) or (C, H, W) raw band values -> the model's float32 input, as the plugin feeds it."""
    import numpy as np

    a, b, lo, hi = input_transform(card)
    shape = (-1, 1, 1)
    x = np.clip(np.asarray(raw, dtype=np.float64), lo.reshape(shape), hi.reshape(shape))
    return (x * a.reshape(shape) + b.reshape(shape)).astype(np.float32)


def _head_task(h: Mapping, name, k: int):
    """(task, activation, thresholds) of a head (a card without them: multiclass softmax, as before)."""
    task = h.get("task", "multilabel" if h.get("activation") == "sigmoid" else "multiclass")
    if task not in HEAD_TASKS:
        raise ModelCardError(f"model card: head '{name}' has task {task!r}; expected one of {', '.join(HEAD_TASKS)}")
    activation = h.get("activation", "sigmoid" if task == "multilabel" else "softmax")
    if activation not in ACTIVATIONS or (activation == "sigmoid") != (task == "multilabel"):
        raise ModelCardError(
            f"model card: head '{name}' has task {task!r} with activation {activation!r}; a "
            "multiclass head uses softmax, a multilabel head sigmoid"
        )
    th = h.get("thresholds")
    if th is not None:
        if task != "multilabel":
            raise ModelCardError(f"model card: head '{name}' has thresholds but is not a multilabel head")
        if (
            not isinstance(th, list)
            or len(th) != k
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in th)
        ):
            raise ModelCardError(
                f"model card: head '{name}' thresholds must be {k} numbers in 0..1 (one per class), got {th!r}"
            )
        th = [float(v) for v in th]
    return task, activation, th


def card_from_metadata(
    props: Mapping[str, str],
    output_names: List[str],
    num_inputs: int,
    output_channels: Optional[List[Optional[int]]] = None,
) -> ModelCard:
    """The card of a model from its ONNX metadata_props.

    Reads the ``satclassify`` key; falls back to Deepness keys; otherwise raises
    :class:`ModelCardError` naming the keys that are missing.
    """
    if METADATA_KEY in props:
        card = parse_card(props[METADATA_KEY])
        for h in card.heads:
            if h.output not in output_names:
                raise ModelCardError(
                    f"model card names output '{h.output}' for head '{h.name}' but the model's outputs are "
                    f"{output_names}"
                )
        return card
    if any(k in props for k in DEEPNESS_KEYS):
        return card_from_deepness(props, output_names, num_inputs, output_channels)
    raise ModelCardError(
        "the model has no SatClassify model card: metadata key 'satclassify' is missing "
        f"(and no Deepness keys {', '.join(DEEPNESS_KEYS[:3])}...). Export it with "
        "'python -m training export', or add the card with training.card.write_card"
    )


def _json_or_literal(text):
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        import ast

        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


def _deepness_number(props: Mapping[str, str], key: str, lo=None, hi=None, whole: bool = False):
    """A number from a Deepness metadata key (None when absent or empty), refused with the key named when it is
    not a number (or not whole, or out of range)."""
    raw = props.get(key)
    if raw in (None, ""):
        return None
    v = _json_or_literal(raw)
    import math

    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and whole:
        ok = float(v).is_integer()
    if ok and ((lo is not None and v < lo) or (hi is not None and v > hi) or (key == "resolution" and v <= 0)):
        ok = False
    if not ok:
        rng = " in 0..100" if hi == 100.0 else " > 0" if key == "resolution" else ""
        raise ModelCardError(f"Deepness model: '{key}' must be a{' whole' if whole else ''} number{rng}, got {raw!r}")
    return float(v)


def card_from_deepness(
    props: Mapping[str, str],
    output_names: List[str],
    num_inputs: int,
    output_channels: Optional[List[Optional[int]]] = None,
) -> ModelCard:
    """A card for a Deepness-style model (inputs scaled 0..255, i.e. value/255 of 8-bit data).

    Deepness models see RGB(A) imagery; band names are taken as positional ("1", "2", ...) so the
    plugin maps them to raster bands by number unless the user gives a band list.
    """
    mtype = str(_json_or_literal(props.get("model_type", "segmentor"))).lower()
    names = _json_or_literal(props.get("class_names"))
    heads = []
    if isinstance(names, Mapping):
        names = [names[k] for k in sorted(names, key=lambda k: int(k))]
    if isinstance(names, list) and names and isinstance(names[0], (list, dict)):
        per_head = [n if isinstance(n, list) else [n[k] for k in sorted(n, key=int)] for n in names]
    elif isinstance(names, list) and names:
        per_head = [names]
    else:
        per_head = None
    for i, out in enumerate(output_names):
        if per_head and i < len(per_head):
            cls_names = [str(n) for n in per_head[i]]
        else:
            k = output_channels[i] if output_channels and i < len(output_channels) else None
            if not k:
                raise ModelCardError(
                    f"Deepness model: 'class_names' is missing and output '{out}' has no fixed class count"
                )
            cls_names = [f"class {j}" for j in range(k)]
        if len(cls_names) > 255:
            raise ModelCardError(
                f"Deepness model: output '{out}' has {len(cls_names)} classes ('class_names'), but a class raster "
                "holds at most 255 classes (values 1..255, 0 = no label): SatClassify cannot write this model's "
                "map. Use a model with at most 255 classes per output"
            )
        from .clc import default_palette

        classes = [HeadClass(j + 1, str(j), n, default_palette(j + 1)) for j, n in enumerate(cls_names)]
        heads.append(Head(f"head{i}" if len(output_names) > 1 else "class", out, classes))
    res = _deepness_number(props, "resolution", lo=0.0)
    res_m = res / 100.0 if res is not None else None
    tile = _deepness_number(props, "tiles_size" if "tiles_size" in props else "tile_size", lo=1, whole=True)
    tile = int(tile) if tile is not None else 256
    overlap = _deepness_number(props, "tiles_overlap", lo=0.0, hi=100.0)
    halo = 0
    if overlap is not None:
        # Deepness gives the overlap in percent of the tile.
        halo = int(round(overlap / 100.0 * tile / 2))
    halo = min(halo, (tile - 1) // 2)
    mean = _json_or_literal(props.get("standardization_mean"))
    std = _json_or_literal(props.get("standardization_std"))
    bands = [str(i + 1) for i in range(num_inputs)]
    if isinstance(mean, list) and len(mean) != num_inputs:
        raise ModelCardError(
            f"Deepness model: standardization_mean has {len(mean)} values, input has {num_inputs} channels"
        )
    if isinstance(std, list) and len(std) != num_inputs:
        raise ModelCardError(
            f"Deepness model: standardization_std has {len(std)} values, input has {num_inputs} "
            "channels: give one std per input channel"
        )
    if isinstance(mean, list) != isinstance(std, list):
        raise ModelCardError(
            "Deepness model: give both standardization_mean and standardization_std (one value per "
            f"input channel) or neither, got {mean!r} / {std!r}"
        )
    try:
        mean_f = [float(x) for x in mean] if isinstance(mean, list) else None
        std_f = [float(x) for x in std] if isinstance(std, list) else None
    except (TypeError, ValueError):
        raise ModelCardError(
            f"Deepness model: standardization_mean / standardization_std must be lists of numbers, "
            f"got {mean!r} / {std!r}"
        )
    _check_standardization(mean_f, std_f, "Deepness model: standardization_mean / standardization_std")
    card = ModelCard(
        architecture=f"deepness-{mtype}",
        bands=bands,
        heads=heads,
        resolution_m=res_m,
        input_scale=1.0 / 255.0,
        mean=[float(x) for x in mean] if isinstance(mean, list) else None,
        std=[float(x) for x in std] if isinstance(std, list) else None,
        tile_size=tile,
        halo=halo,
        training={},
        source="deepness",
    )
    if mtype not in ("segmentor", "segmentation"):
        raise ModelCardError(
            f"Deepness model_type '{mtype}' is not supported: SatClassify runs segmentation models only"
        )
    return card
