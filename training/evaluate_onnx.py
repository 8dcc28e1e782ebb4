"""``python -m training evaluate --model FILE.onnx``: metrics of an exported model on a dataset, run the way the
plugin runs it.

* The model is opened with the plugin's loader (``core.classify.inference.load_model``: onnxruntime, the card
  read from the file and checked against the graph) and fed what the plugin feeds it: the card's bands picked by
  name from the dataset's, ``raw * a + b`` in float32 then the clip to the card's ``input_clip`` (``a``, ``b``,
  the bounds from ``inference.scale_coefficients`` / ``input_bounds``, i.e. ``modelcard.input_transform``:
  input_clip, input_scale, (x - mean) / std), batches of 16 patches (a model with a fixed batch size: padded
  with zeros to it).
* **Patch mode** (a patch classifier, ``cnn_class``, or any model on a patch-level dataset): as
  ``satclassify:classifypatches`` does for a grid cell, pixels that are nodata (DN 0 in any band of a card whose
  bands are all Sentinel-2 bands) are set to 0 after scaling, each patch's class probabilities are the mean of
  the first head's output over its pixels, and its class is their argmax (a multi-label head: every class at or
  above the card's threshold). The reference is the patch's own target (single- or multi-label dataset) or the
  majority class of its labelled pixels (a dataset with pixel labels; patches without labels are skipped, as in
  training).
* **Pixel mode** (U-Net, CNN-dual on a dataset with pixel labels): each patch is run whole (padded on the right /
  bottom by reflection to the model's size multiple, as the classify tool pads edge tiles), its per-pixel argmax
  compared with the labels (label 0, masked and nodata pixels are not counted). Only the first head is evaluated.
* Memory stays flat: the shards are memory-mapped, a batch at a time is read, the confusion matrix is streamed
  (multi-label: the (N, K) probabilities are kept for the thresholds' metrics, as with ``--checkpoint``);
  ``predictions`` (patch mode) streams one CSV row per patch.
"""

import csv
import json
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.contract.metrics import ConfusionMatrix

from .data import dataset_files, open_dataset, targets, value_lut
from .errors import TrainingError
from .files import atomic_open, make_dir, refuse_inputs

#: classifypatches' default batch (core/classify/patches.py DEFAULT_BATCH)
BATCH = 16
#: architectures without downsampling (core/classify/inference.py NO_DOWNSAMPLING): any patch size works
NO_DOWNSAMPLING = ("cnn_dual",)


def plugin_device(name: Optional[str]) -> str:
    """The plugin's DEVICE for a training ``--device``."""
    n = (name or "auto").strip().lower()
    if n == "auto":
        return "Auto"
    if n == "cpu":
        return "CPU"
    if n == "cuda" or n.startswith("cuda:"):
        return "CUDA"
    raise TrainingError(f"--device '{name}' is not one of auto, cpu, cuda, cuda:N")


def nodata_is_zero(card: Any) -> bool:
    """Whether DN 0 is nodata for this card, as the plugin decides for a Sentinel-2 stack without a nodata value
    (core/classify/pipeline.py ``_nodata_values``)."""
    return card.sentinel2_dn


def model_input(
    raw: np.ndarray, a: np.ndarray, b: np.ndarray, bounds: Optional[Tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """uint16 (N, C, H, W) of the card's bands -> float32 model input, the plugin's arithmetic (float32
    ``raw * a + b``, then the clip to ``bounds``)."""
    x = np.asarray(raw).astype(np.float32) * a[None, :, None, None] + b[None, :, None, None]
    if bounds is not None:
        np.clip(x, bounds[0][None, :, None, None], bounds[1][None, :, None, None], out=x)
    return x


def _open_model(path, device):
    from satclassify_plugin.core.classify.inference import load_model

    try:
        return load_model(path, plugin_device(device))
    except SatClassifyError as e:
        raise TrainingError(f"--model '{path}': {e}")


def evaluate_onnx(
    model_path: str,
    data: str,
    split: str = "test",
    device: str = "auto",
    out: Optional[str] = None,
    batch_size: int = BATCH,
    predictions: Optional[str] = None,
) -> Dict[str, Any]:
    """Evaluate the ONNX file ``model_path`` on ``split`` of the dataset ``data`` ("all": every split); writes and
    returns the metrics dict (the same layout as ``evaluate --checkpoint``)."""
    out = out or os.path.splitext(os.path.abspath(model_path))[0] + f"-metrics-{split}.json"
    inputs = {"--model": model_path, **dataset_files(data)}
    refuse_inputs("--out", out, inputs)
    if predictions:
        refuse_inputs("--predictions", predictions, {**inputs, "--out": out})
    if os.path.isdir(out):
        raise TrainingError(
            f"--out '{out}' is a folder: give a file name (e.g. {os.path.join(out, f'metrics-{split}.json')})"
        )
    ds = open_dataset(data)
    if not model_path or not os.path.isfile(model_path):
        raise TrainingError(f"--model '{model_path}' does not exist")
    model = _open_model(model_path, device)
    card = model.card
    if card.timeseries:
        raise TrainingError(
            f"--model '{model_path}' is a multi-date model: evaluate it with --checkpoint (its "
            "training checkpoint), or with satclassify:classify on a multi-date stack"
        )
    splits = _splits(ds, split)
    band_idx, values, patch_mode = _match_dataset(model_path, model, ds)
    head = card.heads[0]
    p = ds.patch_size
    make_dir(os.path.dirname(os.path.abspath(out)), out)
    from satclassify_plugin.core.classify.inference import input_bounds, scale_coefficients

    a, b = scale_coefficients(card)
    bounds = input_bounds(card)
    run = _Runner(model, a, b, bounds, band_idx, nodata_is_zero(card), int(batch_size) or BATCH)
    names = {int(c.value): c.name for c in head.classes}
    if patch_mode:
        metrics, count = _patch_metrics(run, ds, splits, head, values, predictions)
    else:
        metrics, count = _pixel_metrics(run, ds, splits, values, model, card, p)
    metrics = metrics(names)
    metrics.pop("loss", None)
    result = _result(model_path, data, split, splits, model, run, patch_mode, count, metrics)
    if predictions:
        result["predictions"] = predictions
    with atomic_open(out, "w") as f:
        json.dump(result, f, indent=1)
    result["output"] = out
    return result


def _match_dataset(model_path, model, ds):
    """Refuse a dataset the model cannot be evaluated on (bands, class values, patch size, labels); returns
    (the model's bands as dataset band indices, its first head's class values, whether to evaluate patch by
    patch)."""
    card = model.card
    missing = [b for b in card.bands if b not in ds.bands]
    if missing:
        raise TrainingError(
            f"--model '{model_path}' needs the bands {', '.join(card.bands)}; the dataset has "
            f"{', '.join(ds.bands)} (missing {', '.join(missing)})"
        )
    band_idx = [list(ds.bands).index(b) for b in card.bands]
    head = card.heads[0]
    values = [int(c.value) for c in head.classes]
    ds_values = [int(c["value"]) for c in ds.classes]
    if sorted(values) != sorted(ds_values):
        raise TrainingError(
            f"--model '{model_path}' has the class values {values} ({head.name}) but the dataset "
            f"has {ds_values}: evaluate it on a dataset with the same classes"
        )
    p = ds.patch_size
    if model.fixed_hw and tuple(model.fixed_hw) != (p, p):
        raise TrainingError(
            f"--model '{model_path}' takes {model.fixed_hw[0]} x {model.fixed_hw[1]} pixel patches "
            f"but the dataset's patches are {p} x {p}"
        )
    task = getattr(ds, "task", "segmentation")
    patch_mode = card.architecture == "cnn_class" or task != "segmentation"
    if not patch_mode and not ds.has_labels:
        raise TrainingError("the dataset has no pixel labels to compare a segmentation model with")
    if head.multilabel and not patch_mode:
        raise TrainingError("a multi-label head is evaluated patch by patch: use a patch-level dataset")
    return band_idx, values, patch_mode


def _result(model_path, data, split, splits, model, run, patch_mode, count, metrics):
    """The metrics file's dict (without "predictions" and "output"): what was evaluated, how, and the figures of
    the first head."""
    from .evaluate import headline

    card = model.card
    head = card.heads[0]
    result = {
        "model": os.path.abspath(model_path),
        "dataset": os.path.abspath(data),
        "split": split,
        "splits": splits,
        "architecture": card.architecture,
        "evaluated_with": "onnxruntime",
        "provider": model.providers[0] if model.providers else "",
        "mode": "patch" if patch_mode else "pixel",
        "patches": count,
        "preprocessing": {
            "bands": list(card.bands),
            "input_scale": card.input_scale,
            "mean": card.mean,
            "std": card.std,
            "input_clip": card.input_clip,
            "nodata": "DN 0 in any band" if run.nodata_zero else None,
        },
        **headline(metrics),
        "heads": {head.name: metrics},
    }
    if len(card.heads) > 1:
        result["note"] = f"only the first head ('{head.name}') is evaluated with --model; the others: --checkpoint"
    return result


def _splits(ds, split):
    have = list(ds.splits)
    if split == "all":
        if not have:
            raise TrainingError("the dataset has no patches")
        return have
    if split not in have:
        raise TrainingError(
            f"the dataset's '{split}' split is empty or missing (splits: "
            f"{', '.join(f'{s}={ds.count(s)}' for s in have) or 'none'}); choose --split "
            f"{' / '.join(have + ['all'])}"
        )
    return [split]


class _Runner:
    """Batches of raw patches -> the first head's output, as the plugin feeds the model."""

    def __init__(self, model, a, b, bounds, band_idx, nodata_zero, batch):
        self.model, self.a, self.b, self.bounds = model, a, b, bounds
        self.band_idx, self.nodata_zero = band_idx, nodata_zero
        self.batch = model.batch_dim or batch

    def invalid(self, raw):
        return (raw == 0).any(axis=1) if self.nodata_zero else np.zeros((raw.shape[0],) + raw.shape[2:], bool)

    def __call__(self, raw, zero_invalid, pad_to=None):
        """(output of the first head for these patches, invalid pixels (N, H, W))."""
        raw = np.asarray(raw)[:, self.band_idx]
        invalid = self.invalid(raw)
        x = model_input(raw, self.a, self.b, self.bounds)
        if zero_invalid and invalid.any():
            np.putmask(x, np.broadcast_to(invalid[:, None], x.shape), 0.0)
        n = x.shape[0]
        if pad_to is not None:
            ph, pw = pad_to
            if ph or pw:
                x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
        if self.model.batch_dim and n < self.model.batch_dim:
            x = np.concatenate([x, np.zeros((self.model.batch_dim - n,) + x.shape[1:], np.float32)])
        return self.model.run(np.ascontiguousarray(x))[0][:n], invalid


def _batches(ds, splits, size):
    """(split, shard number, first index, (images, labels, masks), targets or None) per batch, in dataset order."""
    for split in splits:
        tshards = ds.targets(split) if getattr(ds, "task", "segmentation") != "segmentation" else None
        for si, (imgs, labels, masks) in enumerate(ds.shards(split)):
            for s in range(0, imgs.shape[0], size):
                e = min(s + size, imgs.shape[0])
                yield (
                    split,
                    si,
                    s,
                    (imgs[s:e], None if labels is None else labels[s:e], None if masks is None else masks[s:e]),
                    None if tshards is None else np.asarray(tshards[si][s:e]),
                )


def _patch_metrics(run, ds, splits, head, values, predictions):
    """Patch by patch: mean probabilities over the patch -> class (or labels), against the patch's reference."""
    ds_values = [int(c["value"]) for c in ds.classes]
    order = [ds_values.index(v) for v in values]  # dataset target column of each card class
    lut = value_lut(ds_values)
    multilabel = head.multilabel
    if multilabel:
        from .engine import MultiLabelMetrics

        acc = MultiLabelMetrics(values)
        thresholds = head.class_thresholds()
    else:
        cm = ConfusionMatrix(values, ignore=(0,))
    count = 0
    rows = _PredictionRows(predictions, [c.name for c in head.classes], multilabel)
    with rows:
        for split, si, start, (imgs, labels, masks), tgt in _batches(ds, splits, run.batch):
            out, _invalid = run(imgs, zero_invalid=True)
            n = len(out)
            probs = out.reshape(n, out.shape[1], -1).mean(axis=2).astype(np.float64)  # as classifypatches
            if multilabel:
                if tgt is None:
                    raise TrainingError("a multi-label head needs a multi-label dataset (patch targets)")
                truth = tgt[:, order] > 0
                acc.probs.append(probs)
                acc.truth.append(truth)
                count += n
                rows.add(split, si, start, probs, truth=truth, thresholds=thresholds)
                continue
            if tgt is not None:
                ref = np.asarray(ds_values)[np.argmax(tgt, axis=1)]
                ref = np.where(tgt.max(axis=1) > 0, ref, 0)
            else:  # the majority class of the patch's labelled pixels (as training's patch target)
                t = targets(labels, lut, masks).reshape(n, -1)
                ref = np.zeros(n, np.int64)
                for j in range(n):
                    tj = t[j][t[j] >= 0]
                    if tj.size:
                        ref[j] = ds_values[int(np.bincount(tj, minlength=len(ds_values)).argmax())]
            pred = np.asarray(values)[probs.argmax(1)]
            cm.update(ref, pred, ref > 0)
            count += int((ref > 0).sum())
            rows.add(split, si, start, probs, ref=ref, pred=pred)
    if multilabel:
        return (lambda names: acc.result(names, thresholds=thresholds)), count
    return cm.metrics, count


def _pixel_metrics(run, ds, splits, values, model, card, p):
    from satclassify_plugin.core.classify.inference import NO_DOWNSAMPLING as PLUGIN_NO_DS

    multiple = model.size_multiple or (1 if card.architecture in PLUGIN_NO_DS + NO_DOWNSAMPLING else 32)
    pad = ((-p) % multiple, (-p) % multiple)
    ds_values = [int(c["value"]) for c in ds.classes]
    cm = ConfusionMatrix(values, ignore=(0,))
    count = 0
    for _split, _si, _start, (imgs, labels, masks), _tgt in _batches(ds, splits, run.batch):
        out, invalid = run(imgs, zero_invalid=False, pad_to=pad)
        pred = np.asarray(values)[out[:, :, :p, :p].argmax(1)]
        ref = np.asarray(labels).astype(np.int64)
        valid = (ref > 0) & ~invalid & np.isin(ref, ds_values)
        if masks is not None:
            valid &= np.asarray(masks) > 0
        cm.update(ref, pred, valid)
        count += len(ref)
    return cm.metrics, count


class _PredictionRows:
    """The optional per-patch CSV: split, shard, index, reference, predicted (values; multi-label: class names
    joined by '; '), top_p."""

    def __init__(self, path, names, multilabel):
        self.path, self.names, self.multilabel = path, names, multilabel
        self._ctx = self._w = None

    def __enter__(self):
        if self.path:
            make_dir(os.path.dirname(os.path.abspath(self.path)), self.path)
            self._ctx = atomic_open(self.path, "w", newline="")
            self._w = csv.writer(self._ctx.__enter__())
            self._w.writerow(["split", "shard", "index", "reference", "predicted", "top_p"])
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            return self._ctx.__exit__(*exc)
        return False

    def add(self, split, si, start, probs, ref=None, pred=None, truth=None, thresholds=None):
        if self._w is None:
            return
        for j, pr in enumerate(probs):
            if self.multilabel:
                r = "; ".join(n for n, t in zip(self.names, truth[j]) if t)
                pl = "; ".join(n for n, v, t in zip(self.names, pr, thresholds) if v >= t)
            else:
                r, pl = str(int(ref[j])), str(int(pred[j]))  # as csv writes the ints
            self._w.writerow([split, si, start + j, r, pl, f"{float(pr.max()):.6f}"])
