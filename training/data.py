"""Reading the training dataset folder (through ``satclassify_plugin.core.contract.dataset``) into torch.

* :func:`open_dataset` opens a folder with clear errors;
* :class:`DataInfo` holds bands, classes and the value -> training index table (label 0 and
  masked pixels -> ``IGNORE``);
* :func:`band_stats` computes per-band mean/std of reflectance over a split;
* :class:`PatchDataset` serves whole patches (U-Net, CNN-class) from the memory-mapped shards, with pixel
  targets, the patch's majority class or (a multilabel / singlelabel dataset) its patch-level target;
* :func:`pos_weights`: BCE positive weights of a multi-label dataset;
* :func:`sample_pixels` draws labelled pixels with their 5x5 context (CNN-dual).
"""

import csv
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.contract.timeseries import dataset_layout

from .errors import TrainingError

if TYPE_CHECKING:
    from satclassify_plugin.core.contract.dataset import Dataset

IGNORE = -100


def open_dataset(folder: Optional[str]) -> "Dataset":
    if not folder:
        raise TrainingError("no dataset given: pass --data DIR (a folder written by satclassify:buildpatches)")
    if not os.path.isdir(folder):
        raise TrainingError(f"dataset folder '{folder}' does not exist")
    if not os.path.isfile(os.path.join(folder, "manifest.json")):
        raise TrainingError(
            f"'{folder}' has no manifest.json: it is not a SatClassify dataset folder "
            "(build one with satclassify:buildpatches)"
        )
    from satclassify_plugin.core.contract.dataset import Dataset

    try:
        return Dataset(folder)
    except SatClassifyError as e:
        raise TrainingError(f"dataset '{folder}': {e}")


def dataset_files(folder: Optional[str]) -> Dict[str, str]:
    """{label: path} of the dataset folder itself and the files in it (manifest, shards): inputs no output
    may replace (see files.refuse_inputs)."""
    out = {"dataset folder --data": folder} if folder else {}
    if folder and os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                out[f"dataset file '{name}' of --data"] = path
    return out


def _cls_get(c, key):
    return c[key] if isinstance(c, dict) else getattr(c, key)


def _chosen_bands(bands, available, where: str):
    """The ``bands`` option (all of ``available`` when empty); a band the dataset lacks is named."""
    if not bands:
        return list(available)
    missing = [b for b in bands if b not in available]
    if missing:
        raise TrainingError(
            f"band(s) {', '.join(missing)} not in {where} {', '.join(available)}); fix the 'bands' option"
        )
    return list(bands)


class DataInfo:
    """What training needs to know about a dataset (and what the model card records).

    A multi-date dataset (its bands are a multi-date stack's ``<band>@<date>`` descriptions,
    core.contract.timeseries) has ``layout`` set: ``bands`` are then the bands of each date (the card's bands,
    mean and std), ``dates``/``doy`` its dates, and the model input is ``num_inputs`` = T * (C + 1) channels,
    per date the bands then the validity (``band_idx`` picks them from the shards; ``channel_scale`` scales the
    bands to reflectance and leaves the validity 0/1)."""

    def __init__(self, ds: Any, bands: Optional[Sequence[str]] = None) -> None:
        self.ds = ds
        man = getattr(ds, "manifest", None) or {}
        try:
            self.layout = dataset_layout(man) if isinstance(man, dict) else None
        except SatClassifyError as e:
            raise TrainingError(f"dataset '{getattr(ds, 'folder', '')}': {e}")
        if self.layout is not None:
            self._init_temporal(ds, bands, self.layout)
            return
        self.all_bands = [str(b) for b in ds.bands]
        self.bands = _chosen_bands(bands, self.all_bands, "the dataset (it has")
        self.band_idx = [self.all_bands.index(b) for b in self.bands]
        self.dates: List[str] = []
        self.doy: List[int] = []
        self.channel_scale = np.full(len(self.bands), float(ds.scale), np.float32)
        self._init_common(ds)

    def _init_temporal(self, ds, bands, lay):
        self.all_bands = list(lay.bands)
        self.bands = _chosen_bands(bands, self.all_bands, "the multi-date dataset (each date has")
        self.dates, self.doy = list(lay.dates), list(lay.doy)
        self.band_idx = [i for d in lay.dates for i in lay.date_indices(d, self.bands)]
        per_date = [float(ds.scale)] * len(self.bands) + [1.0]
        self.channel_scale = np.array(per_date * len(self.dates), np.float32)
        self._init_common(ds)

    def _init_common(self, ds):
        self.classes: List[Dict[str, Any]] = [
            {
                "value": int(_cls_get(c, "value")),
                "code": str(_cls_get(c, "code")),
                "name": str(_cls_get(c, "name")),
                "color": str(_cls_get(c, "color")),
            }
            for c in ds.classes
        ]
        if not self.classes:
            raise TrainingError("the dataset's manifest has no classes")
        self.values = [c["value"] for c in self.classes]
        self.lut = value_lut(self.values)
        self.scale = float(ds.scale)
        self.patch_size = ds.patch_size
        self.task = getattr(ds, "task", "segmentation")
        self.has_labels = bool(getattr(ds, "has_labels", True))
        self.resolution_m = None
        man = getattr(ds, "manifest", None) or {}
        clip = man.get("input_clip") if isinstance(man, dict) else None
        if isinstance(clip, dict) and not self.temporal:  # band -> [lo, hi] raw values (EuroSAT RGB: [0, 2750])
            self.input_clip = [list(clip[b]) for b in self.bands] if all(b in clip for b in self.bands) else None
        else:
            self.input_clip = None
        for key in ("resolution_m", "resolution", "pixel_size"):
            v = man.get(key) if isinstance(man, dict) else None
            if isinstance(v, (int, float)) and v > 0:
                self.resolution_m = float(v)
                break
            if isinstance(v, (list, tuple)) and v and isinstance(v[0], (int, float)) and v[0] > 0:
                self.resolution_m = float(abs(v[0]))
                break

    @property
    def num_bands(self) -> int:
        return len(self.bands)

    @property
    def temporal(self) -> bool:
        return self.layout is not None

    @property
    def num_dates(self) -> int:
        return len(self.dates)

    @property
    def num_inputs(self) -> int:
        """Channels of the model input (T * (C + 1) for a multi-date dataset)."""
        return len(self.band_idx)

    def input_stats(self, mean: Sequence[float], std: Sequence[float]) -> Tuple[List[float], List[float]]:
        """Per input channel mean and std from the per-band ones (a validity channel: 0 and 1, unchanged)."""
        if not self.temporal:
            return list(mean), list(std)
        return [v for _ in self.dates for v in [*mean, 0.0]], [v for _ in self.dates for v in [*std, 1.0]]

    def model_config(self, cfg: Dict[str, Any]) -> Dict[str, Any]:
        """The config dict the spec builds the model from (a multi-date dataset adds its dates)."""
        out = dict(cfg)
        if self.temporal:
            out.update({"num_dates": self.num_dates, "doy": list(self.doy)})
        return out

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def check_split(self, split: str, required: bool = True) -> int:
        n = self.ds.count(split) if split in list(self.ds.splits) else 0
        if n == 0 and required:
            raise TrainingError(
                f"the dataset's '{split}' split is empty (splits: "
                f"{', '.join(f'{s}={self.ds.count(s)}' for s in self.ds.splits) or 'none'}); "
                "rebuild it with patches in that split"
            )
        return n

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    def shards(self, split: str) -> list:
        return list(self.ds.shards(split))

    def targets(self, split: str) -> list:  # in DataInfo
        """(N, K) uint8 patch targets per shard (patch-level datasets)."""
        return list(self.ds.targets(split))

    def check_task(self, spec: Any) -> None:
        """Refuse a model that cannot learn from this dataset: pixel models need pixel labels."""
        if not spec.patch_labels and not self.has_labels:
            raise TrainingError(
                f"the dataset has patch-level targets only (task {self.task}, no pixel labels): a "
                f"{spec.label} needs pixel labels. Train --model cnn_class (a patch classifier) on it, "
                "then use its checkpoint as --encoder-from for a U-Net"
            )


def value_lut(values: Sequence[int], size: int = 256) -> np.ndarray:
    lut = np.full(size, IGNORE, dtype=np.int64)
    for i, v in enumerate(values):
        lut[int(v)] = i
    lut[0] = IGNORE
    return lut


def targets(labels: np.ndarray, lut: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """uint8 labels (..., H, W) -> int64 training indices with IGNORE for 0, unknown and masked pixels."""
    t = lut[np.asarray(labels)]
    if mask is not None:
        t = np.where(np.asarray(mask) > 0, t, IGNORE)
    return t


def band_stats(info: "DataInfo", split: str = "train") -> Tuple[List[float], List[float]]:
    """Per-band mean and std of reflectance (DN * scale) over the split's valid pixels (DN > 0); for a multi-date
    dataset over every date's valid observations (validity 1 and DN > 0)."""
    if info.temporal:
        return _temporal_band_stats(info, split)
    n = info.num_bands
    s = np.zeros(n)
    ss = np.zeros(n)
    cnt = np.zeros(n)
    for imgs, _labels, masks in info.shards(split):
        for i in range(0, len(imgs), 64):
            x = np.asarray(imgs[i : i + 64][:, info.band_idx], dtype=np.float64) * info.scale
            valid = np.asarray(imgs[i : i + 64][:, info.band_idx]) > 0
            if masks is not None:
                valid &= (np.asarray(masks[i : i + 64]) > 0)[:, None]
            x = np.where(valid, x, 0.0)
            s += x.sum(axis=(0, 2, 3))
            ss += (x * x).sum(axis=(0, 2, 3))
            cnt += valid.sum(axis=(0, 2, 3))
    if (cnt == 0).any():
        raise TrainingError(
            f"the '{split}' split has a band with no valid pixels (all 0): "
            f"{[b for b, c in zip(info.bands, cnt) if c == 0]}"
        )
    return _mean_std(s, ss, cnt)


def _mean_std(s, ss, cnt):
    """Per-band mean and standard deviation from sums, sums of squares and counts (a flat band gets std 1)."""
    mean = s / cnt
    std = np.sqrt(np.maximum(ss / cnt - mean * mean, 0.0))
    std = np.where(std < 1e-6, 1.0, std)
    return [float(v) for v in mean], [float(v) for v in std]


def _temporal_band_stats(info, split):
    c, t = info.num_bands, info.num_dates
    s, ss, cnt = np.zeros(c), np.zeros(c), np.zeros(c)
    idx = np.asarray(info.band_idx).reshape(t, c + 1)
    for imgs, _labels, masks in info.shards(split):
        for i in range(0, len(imgs), 16):
            raw = np.asarray(imgs[i : i + 16][:, idx.ravel()]).reshape(-1, t, c + 1, *imgs.shape[-2:])
            valid = (raw[:, :, c:] > 0) & (raw[:, :, :c] > 0)
            if masks is not None:
                valid &= (np.asarray(masks[i : i + 16]) > 0)[:, None, None]
            x = np.where(valid, raw[:, :, :c].astype(np.float64) * info.scale, 0.0)
            s += x.sum(axis=(0, 1, 3, 4))
            ss += (x * x).sum(axis=(0, 1, 3, 4))
            cnt += valid.sum(axis=(0, 1, 3, 4))
    if (cnt == 0).any():
        raise TrainingError(
            f"the '{split}' split has a band with no valid observation on any date: "
            f"{[b for b, k in zip(info.bands, cnt) if k == 0]}"
        )
    return _mean_std(s, ss, cnt)


def labelled_classes(info: "DataInfo", split: str = "train") -> List[Tuple[dict, int]]:
    """[(class, pixel count)] of the classes with labelled pixels in ``split``: the manifest's counts, or
    (a manifest without them) counted from the label shards."""
    counts = info.ds.class_counts(split) or {}
    if not counts:
        hist = np.zeros(256, np.int64)
        for _imgs, labels, masks in info.shards(split):
            lab = np.asarray(labels)
            hist += np.bincount((lab if masks is None else lab[np.asarray(masks) > 0]).ravel(), minlength=256)
        counts = {v: int(hist[v]) for v in info.values}
    out = []
    for c in info.classes:
        n = int(counts.get(c["value"], counts.get(str(c["value"]), 0)))
        if n > 0:
            out.append((c, n))
    return out


def pos_weights(info: "DataInfo", split: str = "train", cap: float = 100.0) -> torch.Tensor:
    """BCE ``pos_weight`` per class of a multi-label dataset: negatives / positives among the split's patches
    (from the manifest's target counts), at most ``cap``; 1 for a class without positives."""
    n = info.ds.count(split)
    counts = info.ds.manifest["splits"][split].get("target_counts") or {}
    pos = np.array([float(counts.get(str(v), 0)) for v in info.values])
    w = np.where(pos > 0, (n - pos) / np.maximum(pos, 1.0), 1.0)
    return torch.tensor(np.clip(w, 1.0 / cap, cap), dtype=torch.float32)


def class_weights(info: "DataInfo", split: str = "train") -> torch.Tensor:
    counts = info.ds.class_counts(split) or {}
    c = np.array([float(counts.get(v, counts.get(str(v), 0))) for v in info.values])
    w = np.zeros_like(c)
    present = c > 0
    if present.any():
        w[present] = c[present].sum() / (present.sum() * c[present])
    return torch.tensor(w, dtype=torch.float32)


class PatchDataset(torch.utils.data.Dataset):
    """Whole patches: (reflectance float32 (C,H,W), targets int64 (H,W)) from the memory-mapped shards.

    ``patch_labels=True`` gives the patch's class instead (CNN-class): in a multilabel dataset its multi-hot
    target (float32 (K,)), in a singlelabel dataset the index of its class, otherwise the index of the majority
    class of its labelled pixels (patches without any label are left out then)."""

    def __init__(self, info: DataInfo, split: str, patch_labels: bool = False) -> None:
        self.info = info
        self.shards = info.shards(split)
        self.patch_labels = patch_labels
        self.patch_targets = info.targets(split) if patch_labels and info.task != "segmentation" else None
        index = []
        self.majority = {}
        for si, (imgs, labels, masks) in enumerate(self.shards):
            for j in range(len(imgs)):
                if self.patch_targets is not None:
                    if not info.multilabel:
                        self.majority[(si, j)] = int(np.argmax(self.patch_targets[si][j]))
                elif patch_labels:
                    t = targets(labels[j], info.lut, None if masks is None else masks[j])
                    t = t[t >= 0]
                    if t.size == 0:
                        continue
                    self.majority[(si, j)] = int(np.bincount(t, minlength=info.num_classes).argmax())
                index.append((si, j))
        self.index = index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, k):
        si, j = self.index[k]
        imgs, labels, masks = self.shards[si]
        x = np.asarray(imgs[j][self.info.band_idx], dtype=np.float32) * self.info.channel_scale[:, None, None]
        if self.patch_targets is not None and self.info.multilabel:
            return torch.from_numpy(x), torch.from_numpy(np.asarray(self.patch_targets[si][j], np.float32))
        if self.patch_labels:
            y = np.int64(self.majority[(si, j)])
            return torch.from_numpy(x), torch.tensor(y)
        t = targets(labels[j], self.info.lut, None if masks is None else masks[j])
        return torch.from_numpy(x), torch.from_numpy(t)


def sample_pixels(
    info: "DataInfo", split: str, per_patch: int, rng: np.random.Generator, halo: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Draw up to ``per_patch`` labelled pixels per patch (at least ``halo`` from its edge; the CNN-dual spec's
    halo is 2) with their (2*halo+1)^2 context. Returns reflectance crops float32 (S, C, k, k) and targets
    int64 (S,)."""
    k = 2 * halo + 1
    xs, ys = [], []
    off = np.arange(-halo, halo + 1)
    for imgs, labels, masks in info.shards(split):
        n, h, w = labels.shape
        if h < k or w < k:
            raise TrainingError(f"patches of {h}x{w} are too small for the {k}x{k} CNN-dual context")
        t = targets(
            labels[:, halo : h - halo, halo : w - halo],
            info.lut,
            None if masks is None else masks[:, halo : h - halo, halo : w - halo],
        )
        flat = t.reshape(n, -1)
        score = rng.random(flat.shape)
        score[flat < 0] = np.inf
        m = min(per_patch, flat.shape[1])
        pick = (
            np.argpartition(score, m - 1, axis=1)[:, :m]
            if m < flat.shape[1]
            else np.broadcast_to(np.arange(flat.shape[1]), flat.shape)
        )
        pidx = np.repeat(np.arange(n), m)
        pos = pick.reshape(-1)
        keep = np.isfinite(score[pidx, pos])
        pidx, pos = pidx[keep], pos[keep]
        if pidx.size == 0:
            continue
        r = pos // (w - 2 * halo) + halo
        c = pos % (w - 2 * halo) + halo
        rr = (r[:, None] + off)[:, :, None]
        cc = (c[:, None] + off)[:, None, :]
        crops = _gather(imgs, pidx, rr, cc)
        crops = crops[:, info.band_idx].astype(np.float32) * info.channel_scale[:, None, None]
        xs.append(crops)
        ys.append(flat[pidx, pos])
    if not xs:
        raise TrainingError(f"the '{split}' split has no labelled pixels at least {halo} pixels from a patch edge")
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys).astype(np.int64))


def _gather(imgs, pidx, rr, cc):
    """Crops (S, C, k, k) from a (memory-mapped) (N, C, H, W) array, reading one patch at a time."""
    order = np.argsort(pidx, kind="stable")
    out = np.empty((len(pidx), imgs.shape[1], rr.shape[1], cc.shape[2]), dtype=imgs.dtype)
    uniq, starts = np.unique(pidx[order], return_index=True)
    ends = list(starts[1:]) + [len(order)]
    for p, a, b in zip(uniq, starts, ends):
        sel = order[a:b]
        patch = np.asarray(imgs[p])  # (C, H, W)
        out[sel] = np.transpose(patch[:, rr[sel], cc[sel]], (1, 0, 2, 3))
    return out


# ---------------------------------------------------------------- coarse classes (CNN-dual)


def coarse_classes(info: "DataInfo", coarse_map: Optional[str] = None) -> Tuple[List[dict], torch.Tensor]:
    """The coarse head's class table and the fine index -> coarse index table.

    Default: CLC level 1 of the fine classes' codes. With ``coarse_map`` a CSV with rows
    ``fine_value,coarse_value,coarse_name[,color]`` (a header line is allowed)."""
    if coarse_map:
        if not os.path.isfile(coarse_map):
            raise TrainingError(f"coarse map '{coarse_map}' does not exist")
        fine_to_coarse: Dict[int, int] = {}
        table: Dict[int, dict] = {}
        with open(coarse_map, newline="", encoding="utf-8-sig") as f:
            for lineno, row in enumerate(csv.reader(f), start=1):
                row = [c.strip() for c in row]
                if not row or not row[0] or row[0].startswith("#"):
                    continue
                if lineno == 1 and not row[0].isdigit():
                    continue
                if len(row) < 3 or not row[0].isdigit() or not row[1].isdigit():
                    raise TrainingError(
                        f"coarse map line {lineno}: expected 'fine_value,coarse_value,"
                        f"coarse_name[,color]', got {','.join(row)!r}"
                    )
                fv, cv = int(row[0]), int(row[1])
                if not 1 <= cv <= 255:
                    raise TrainingError(f"coarse map line {lineno}: coarse value {cv} out of 1..255")
                color = (
                    clc.normalise_color(row[3], f"coarse map line {lineno}")
                    if len(row) > 3 and row[3]
                    else clc.default_palette(cv)
                )
                fine_to_coarse[fv] = cv
                table.setdefault(cv, {"value": cv, "code": str(cv), "name": row[2], "color": color})
        missing = [v for v in info.values if v not in fine_to_coarse]
        if missing:
            raise TrainingError(f"coarse map '{coarse_map}' has no row for fine class value(s) {missing}")
    else:
        lvl1 = {c.value: c for c in clc.classes(1)}
        fine_to_coarse, table = {}, {}
        for c in info.classes:
            code = c["code"].strip()
            if not code.isdigit() or not 1 <= len(code) <= 3 or int(code[0]) not in lvl1:
                raise TrainingError(
                    f"class '{c['name']}' has code '{code}', not a CLC code, so the coarse head cannot default "
                    "to CLC level 1: give --coarse-map CSV (fine_value,coarse_value,coarse_name[,color])"
                )
            cv = int(code[0])
            fine_to_coarse[c["value"]] = cv
            ci = lvl1[cv]
            table[cv] = {"value": ci.value, "code": ci.code, "name": ci.name, "color": ci.color}
    coarse = [table[v] for v in sorted(table)]
    cidx = {c["value"]: i for i, c in enumerate(coarse)}
    fine_to_coarse_idx = torch.tensor([cidx[fine_to_coarse[v]] for v in info.values], dtype=torch.long)
    return coarse, fine_to_coarse_idx
