"""``python -m training evaluate``: metrics of a checkpoint on a dataset split (core.contract.metrics); an exported ONNX
model: ``evaluate_onnx``. ``split`` "all" evaluates every patch of the dataset. The JSON keeps the per-head
metrics under ``heads`` and the first head's headline at the top (:func:`headline`)."""

import json
import os
from typing import Any, Dict, Optional

import torch

from . import checkpoint as ckpt_io
from .checkpoint import check_compatible, load_model  # noqa: F401  (load_model: also imported from here)
from .data import DataInfo, dataset_files, open_dataset
from .engine import evaluate_split, resolve_device
from .errors import TrainingError
from .files import atomic_open, make_dir, refuse_inputs
from .folds import all_view
from .models import get_spec


def evaluate(
    checkpoint: str,
    data: str,
    split: str = "test",
    device: str = "auto",
    out: Optional[str] = None,
    batch_size: int = 16,
) -> Dict[str, Any]:
    out = out or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), f"metrics-{split}.json")
    refuse_inputs("--out", out, {"--checkpoint": checkpoint, **dataset_files(data)})
    if os.path.isdir(out):
        raise TrainingError(
            f"--out '{out}' is a folder: give a file name (e.g. {os.path.join(out, f'metrics-{split}.json')})"
        )
    ck = ckpt_io.load(checkpoint)
    dev = resolve_device(device)
    ds: Any = open_dataset(data)  # a Dataset, or a DatasetView of all its splits
    if split == "all":
        ds = all_view(ds)
    info = DataInfo(ds)
    if set(ck["card"]["bands"]) <= set(info.all_bands):
        info = DataInfo(ds, ck["card"]["bands"])
    check_compatible(ck["card"], info, f"checkpoint '{checkpoint}'")
    info.check_split(split)
    make_dir(os.path.dirname(os.path.abspath(out)), out)  # a path under a file fails now, not after the work
    model = load_model(ck, dev)
    in_mean, in_std = info.input_stats(ck["card"]["mean"], ck["card"]["std"])
    mean = torch.tensor(in_mean, dtype=torch.float32, device=dev)
    std = torch.tensor(in_std, dtype=torch.float32, device=dev)
    arch = ck["config"]["model"]
    spec = get_spec(arch)
    f2c = torch.tensor(ck["f2c"], dtype=torch.long) if ck.get("f2c") is not None else None
    heads_cfg = ck["card"]["heads"]
    coarse_values = [c["value"] for c in heads_cfg[1]["classes"]] if len(heads_cfg) > 1 else None
    heads = evaluate_split(model, spec, info, split, mean, std, dev, f2c, coarse_values, batch_size=batch_size)
    result = {
        "checkpoint": os.path.abspath(checkpoint),
        "dataset": os.path.abspath(data),
        "split": split,
        "architecture": arch,
        "heads": {},
    }
    for (_key, hm), hc in zip(heads.items(), heads_cfg):
        names = {int(c["value"]): c["name"] for c in hc["classes"]}
        if hc.get("task") == "multilabel":  # the checkpoint's thresholds (tuned on validation), never the test's
            result["heads"][hc["name"]] = hm.result(names, thresholds=ck.get("thresholds"))
        else:
            result["heads"][hc["name"]] = hm.result(names)
    result.update(headline(next(iter(result["heads"].values()))))
    with atomic_open(out, "w") as f:
        json.dump(result, f, indent=1)
    result["output"] = out
    return result


def headline(m: Dict[str, Any]) -> Dict[str, Any]:
    """The top-level keys of the evaluate JSON from a head's metrics: ``oa``, ``macro_f1``, ``kappa``, ``miou``,
    ``f1_per_class`` {class name: F1} and ``confusion_matrix`` {values, names, matrix: rows = reference, columns =
    predicted}; a multi-label head: ``micro_f1`` and ``macro_f1`` at its thresholds, no OA/kappa/matrix."""
    names = [c["name"] for c in m["classes"]]
    keys = [
        n if names.count(n) == 1 else f"{n} ({c.get('value', c.get('index'))})" for n, c in zip(names, m["classes"])
    ]
    out: Dict[str, Any] = {"f1_per_class": {k: c["f1"] for k, c in zip(keys, m["classes"])}}
    if m.get("task") == "multilabel":
        out.update(
            {
                "oa": None,
                "macro_f1": m["macro_f1"],
                "kappa": None,
                "micro_f1": m["micro_f1"],
                "map": m.get("map"),
                "confusion_matrix": None,
            }
        )
        return out
    out.update(
        {
            "oa": m["overall_accuracy"],
            "macro_f1": m["macro_f1"],
            "kappa": m["kappa"],
            "miou": m["miou"],
            "confusion_matrix": {
                "values": m["values"],
                "names": names,
                "matrix": m["confusion_matrix"],
                "rows": "reference",
                "columns": "predicted",
            },
        }
    )
    return out
