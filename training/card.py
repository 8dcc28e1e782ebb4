"""The SatClassify model card in ONNX files: build it from a checkpoint and write/read it.

``write_card(onnx_path, card)`` adds (or replaces) the card of any ONNX file: ``card`` is a
:class:`~satclassify_plugin.core.contract.modelcard.ModelCard`, a dict or JSON text. It is validated with
``parse_card`` (and against the graph's outputs) before the file is rewritten (atomically).
"""

import os
from typing import Any, Dict, Optional, Union

from satclassify_plugin.core.contract.modelcard import METADATA_KEY, Head, HeadClass, ModelCard, parse_card

from .errors import TrainingError
from .files import atomic_open

#: a card as the writers take it: a ModelCard, its dict or its JSON text
CardLike = Union[ModelCard, Dict[str, Any], str]


def card_from_checkpoint(ck: Dict[str, Any], metrics: Optional[Dict[str, Any]] = None) -> ModelCard:
    info = ck["card"]
    heads = [
        Head(
            h["name"],
            f"probs_{h['name']}",
            [HeadClass(int(c["value"]), str(c["code"]), str(c["name"]), str(c["color"])) for c in h["classes"]],
            task=h.get("task", "multiclass"),
            activation=h.get("activation", "softmax"),
        )
        for h in info["heads"]
    ]
    if heads[0].multilabel:  # the thresholds tuned on validation at the checkpoint's epoch
        th = ck.get("thresholds")
        heads[0].thresholds = [float(v) for v in th] if th else None
    hist = ck.get("history") or []
    training = {
        "dataset": info.get("dataset"),
        "epochs": len(hist),
        "num_parameters": ck.get("num_parameters"),
        "config": {
            k: ck["config"].get(k) for k in ("model", "encoder", "optimizer", "lr", "batch_size", "seed", "amp")
        },
        "metrics": metrics if metrics is not None else _metrics_of(ck),
    }
    card = ModelCard(
        architecture=info["architecture"],
        bands=list(info["bands"]),
        heads=heads,
        resolution_m=info.get("resolution_m"),
        input_scale=float(info["input_scale"]),
        mean=[float(v) for v in info["mean"]],
        std=[float(v) for v in info["std"]],
        tile_size=int(info["tile_size"]),
        halo=int(info["halo"]),
        training=training,
    )
    card.timeseries = info.get("timeseries")  # multi-date models: dates, doy, layout
    card.input_clip = info.get("input_clip")  # raw-value clip of the training imagery (EuroSAT RGB)
    return parse_card(card.to_dict())


def _metrics_of(ck):
    row = ck.get("metrics") or {}
    return {k: v for k, v in row.items() if k.startswith("val_") and v is not None}


def _as_card(card):
    if isinstance(card, ModelCard):
        card = card.to_dict()
    return parse_card(card)


def add_card(model: Any, card: CardLike) -> ModelCard:
    """Validate ``card`` (also against the graph's outputs and input) and store it in the ``onnx.ModelProto``'s
    metadata_props["satclassify"], replacing any card there. Returns the ModelCard."""
    mc = _as_card(card)
    outputs = [o.name for o in model.graph.output]
    for h in mc.heads:
        if h.output not in outputs:
            raise TrainingError(f"card head '{h.name}' names output '{h.output}' but the model's outputs are {outputs}")
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    inputs = [i for i in inputs if i.name == "image"] or inputs  # a multi-date model also takes 'doy'
    if len(inputs) == 1:
        dims = inputs[0].type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value") and dims[1].dim_value != mc.input_channels:
            raise TrainingError(
                f"card lists {mc.input_channels} input channels but the model's input has {dims[1].dim_value} channels"
            )
    keep = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    for p in keep:
        model.metadata_props.add(key=p.key, value=p.value)
    model.metadata_props.add(key=METADATA_KEY, value=mc.to_json())
    return mc


def write_card(onnx_path: str, card: CardLike) -> ModelCard:
    """Validate ``card`` and store it in ``onnx_path``'s metadata_props["satclassify"]. Returns the ModelCard."""
    import onnx

    if not os.path.isfile(onnx_path):
        raise TrainingError(f"ONNX file '{onnx_path}' does not exist")
    mc = _as_card(card)
    try:
        model = onnx.load(onnx_path)
    except Exception as e:
        raise TrainingError(f"'{onnx_path}' is not a readable ONNX model: {e}")
    add_card(model, mc)
    with atomic_open(onnx_path, "wb") as f:
        onnx.save(model, f)
    return mc


def load_card_info(info_path: str) -> dict:
    """The JSON object of ``export --card-info`` (read before the export writes anything)."""
    import json

    try:
        with open(info_path, encoding="utf-8") as f:
            extra = json.load(f)
    except OSError as e:
        raise TrainingError(f"--card-info '{info_path}' cannot be read: {e.strerror or e}")
    except ValueError as e:
        raise TrainingError(f"--card-info '{info_path}' is not valid JSON: {e}")
    if not isinstance(extra, dict):
        raise TrainingError(f"--card-info '{info_path}' must hold a JSON object (keys of the card's training block)")
    return extra


def merge_training_info(onnx_path: str, extra: dict) -> ModelCard:
    """Merge ``extra`` (:func:`load_card_info`) into the ``training`` block of ``onnx_path``'s card (``export
    --card-info``): what a published model's card says beyond the run, e.g. ``{"dataset": {"name", "licence",
    "citation", "url"}, "description": ..., "crossval": {...}}`` (the plugin's model list shows them). Keys given
    replace the export's (a dataset name instead of the local training folder's path). Other card keys (an int8
    export's ``quantization`` block) are kept as they are."""
    import json

    import onnx

    model = onnx.load(onnx_path)
    props = {p.key: p.value for p in model.metadata_props}
    card = json.loads(props[METADATA_KEY])
    card["training"] = {**(card.get("training") or {}), **extra}
    add_card(model, parse_card(card))  # validated (and checked against the graph)
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            p.value = json.dumps(card)
    with atomic_open(onnx_path, "wb") as f:
        onnx.save(model, f)
    return parse_card(card)


def read_card(onnx_path: str) -> ModelCard:
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise TrainingError(f"'{onnx_path}' has no '{METADATA_KEY}' model card")
    return parse_card(props[METADATA_KEY])
