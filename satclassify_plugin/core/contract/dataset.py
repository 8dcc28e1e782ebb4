"""Training dataset folder: writer (used by ``satclassify:buildpatches``) and reader (used by ``training``).

Pure Python + numpy + json (no qgis, osgeo or torch): the training environment imports it too.

Folder layout (docs/DESIGN.md)::

    manifest.json              written last, atomically (a folder without it is not a dataset)
    images-<split>-<k>.npy     uint16 (N, C, H, W)  digital numbers; reflectance = DN * scale
    labels-<split>-<k>.npy     uint8  (N, H, W)     class values, ``label_nodata`` (0) = no label
    masks-<split>-<k>.npy      uint8  (N, H, W)     optional, 1 = valid pixel, 0 = masked
    targets-<split>-<k>.npy    uint8  (N, K)        patch-level targets (manifest "task" "multilabel" or
                                                    "singlelabel"): 1 = the patch holds class k (class table order)
    patches.gpkg               patch footprints (buildpatches: OGR; the training importers: core.contract.gpkg)

``task`` in the manifest: "segmentation" (the default when absent: pixel labels), "multilabel" (every patch has
any number of classes) or "singlelabel" (exactly one class per patch). A patch-level dataset has targets shards;
its label shards are optional (``"labels": null`` in a shard entry: BigEarthNet / EuroSAT imports have none).

Shards are plain ``.npy`` files, so ``numpy.load(path, mmap_mode="r")`` reads them without loading
them into memory. ``<k>`` counts from 0 per split; the manifest lists each split's shards in order.

``class_counts`` in the manifest count, per split, the labelled pixels of each class value (pixels
equal to ``label_nodata`` and, when masks are written, pixels with mask 0 are not counted). Every
class of the class table appears, with 0 when absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .classes import ClassRecord, as_dict
from .errors import SatClassifyError, os_error_text
from .paths import TAG, remove_stale, temp_tag

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
FOOTPRINTS = "patches.gpkg"
SPLIT_ORDER = ("train", "val", "test")
_SPLIT_RE = re.compile(r"^[A-Za-z0-9_]+$")
_SHARD_RE = re.compile(r"^(images|labels|masks|targets)-[A-Za-z0-9_]+-\d+\.npy$")
TASKS = ("segmentation", "multilabel", "singlelabel")
#: the staging folder of a writer, and the folder its commit sets the earlier dataset aside in (paths.temp_tag)
STAGING_PATTERN = r"\.staging-" + TAG
OLD_PATTERN = r"\.old-" + TAG
PATCH_TASKS = ("multilabel", "singlelabel")

Patch = Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]


class DatasetError(SatClassifyError):
    """A dataset folder that cannot be written or read, with a message naming the fix."""


def _class_dict(c) -> dict:
    d = as_dict(c)
    if isinstance(d, dict) and "name" not in d:
        raise DatasetError(f"bad class table entry {d!r}: expected value, code, name, color")
    return ClassRecord.from_dict(d, "dataset class table", DatasetError, default_color="#000000").to_dict()


def _sort_splits(names) -> List[str]:
    names = list(names)
    return [s for s in SPLIT_ORDER if s in names] + sorted(s for s in names if s not in SPLIT_ORDER)


class _NpyAppender:
    """A ``.npy`` file written front to back with plain writes (never memory-mapped).

    A write into a memory-mapped file on a full disk kills the process with SIGBUS (no exception, and inside
    QGIS the whole application goes); plain writes raise ``OSError(ENOSPC)``, which the writer turns into a
    message and a clean-up. The header is written with room for any count and rewritten by :meth:`finish` with
    the number of items appended (NPY 1.0: the header is padded with spaces; numpy reads any padding)."""

    HEADER_BYTES = 256

    def __init__(self, path: str, dtype, item_shape: Tuple[int, ...], capacity: int):
        self.path, self.dtype, self.item_shape = path, np.dtype(dtype), tuple(int(v) for v in item_shape)
        self.count = 0
        self.f = open(path, "wb")
        try:
            self._header(capacity)
        except BaseException:
            self.f.close()
            raise

    def _header(self, n: int) -> None:
        d = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (int(n),) + self.item_shape,
        }
        text = repr(d).encode("latin1")
        pad = self.HEADER_BYTES - 10 - len(text) - 1
        if pad < 0:  # pragma: no cover - shapes here are 4 numbers
            raise DatasetError(f"shard header too long for {d}")
        self.f.seek(0)
        self.f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", self.HEADER_BYTES - 10) + text + b" " * pad + b"\n")
        self.f.seek(0, os.SEEK_END)

    def append(self, arr: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(arr, dtype=self.dtype).tobytes())
        self.count += 1

    def finish(self) -> None:
        """Header with the real count, data on disk (fsync), file closed."""
        self._header(self.count)
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()

    def close(self) -> None:
        if not self.f.closed:
            self.f.close()


class _ShardSet:
    """The open shard of one split: images, labels (and masks) appended patch by patch."""

    def __init__(
        self,
        folder: str,
        split: str,
        k: int,
        size: int,
        bands: int,
        patch: int,
        with_masks: bool,
        with_labels: bool = True,
        num_targets: int = 0,
    ):
        images, labels, masks, targets = (
            f"{kind}-{split}-{k}.npy" for kind in ("images", "labels", "masks", "targets")
        )
        self.names = {
            "images": images,
            "labels": labels if with_labels else None,
            "masks": masks if with_masks else None,
            "targets": targets if num_targets else None,
        }
        self.folder, self.size, self.count = folder, size, 0
        self.files: Dict[str, _NpyAppender] = {}
        try:
            self.files["images"] = _NpyAppender(os.path.join(folder, images), np.uint16, (bands, patch, patch), size)
            if with_labels:
                self.files["labels"] = _NpyAppender(os.path.join(folder, labels), np.uint8, (patch, patch), size)
            if num_targets:
                self.files["targets"] = _NpyAppender(os.path.join(folder, targets), np.uint8, (num_targets,), size)
            if with_masks:
                self.files["masks"] = _NpyAppender(os.path.join(folder, masks), np.uint8, (patch, patch), size)
        except BaseException:
            self.discard()
            raise

    @property
    def full(self) -> bool:
        return self.count >= self.size

    def add(self, image, label, mask, target=None) -> None:
        self.files["images"].append(image)
        for key, arr in (("labels", label), ("masks", mask), ("targets", target)):
            if key in self.files:
                self.files[key].append(arr)
        self.count += 1

    def finish(self) -> dict:
        """Headers with the patches written, files synced and closed; returns the manifest entry."""
        for appender in self.files.values():
            appender.finish()
        self.files = {}
        entry = {
            "images": self.names["images"],
            "labels": self.names["labels"],
            "masks": self.names["masks"],
            "count": self.count,
        }
        if self.names["targets"]:
            entry["targets"] = self.names["targets"]
        return entry

    def discard(self):
        for appender in self.files.values():
            appender.close()
        self.files = {}
        for name in self.names.values():
            if name and os.path.exists(os.path.join(self.folder, name)):
                os.remove(os.path.join(self.folder, name))


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset folder holds, checked when made: the one place these rules live (buildpatches, the training
    importers and the tests build one, :class:`DatasetWriter` writes it).

    ``bands``: unique band names (the image channels in order); ``patch_size`` pixels; ``classes``: the class table
    (ClassRecord objects or dicts with value, code, name, color; unique values, none equal to ``label_nodata``);
    ``crs_wkt`` of the patches ("" when several or none); ``scale``: reflectance = DN * scale; ``shard_size``:
    patches per shard; ``with_masks``: a validity mask per patch; ``splits``: split names that appear in the
    manifest even without a patch; ``task``: one of :data:`TASKS` (a patch-level task stores targets, and without
    ``with_labels`` no pixel labels); ``resolution_m``: pixel size in ground metres, None when unknown.
    """

    bands: Tuple[str, ...]
    patch_size: int
    classes: Tuple[dict, ...]
    crs_wkt: str = ""
    scale: float = 1e-4
    label_nodata: int = 0
    shard_size: int = 256
    with_masks: bool = False
    splits: Tuple[str, ...] = ()
    task: str = "segmentation"
    with_labels: bool = True
    resolution_m: Optional[float] = None

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("bands", tuple(str(b) for b in self.bands))
        if not self.bands:
            raise DatasetError("a dataset needs at least one band")
        if len(set(self.bands)) != len(self.bands):
            raise DatasetError(f"band names must be unique, got {list(self.bands)}")
        if int(self.patch_size) < 1:
            raise DatasetError(f"patch size must be at least 1, not {self.patch_size}")
        if int(self.shard_size) < 1:
            raise DatasetError(f"shard size must be at least 1, not {self.shard_size}")
        if not 0 <= int(self.label_nodata) <= 255:
            raise DatasetError(f"label nodata must be in 0..255, not {self.label_nodata}")
        put("classes", tuple(_class_dict(c) for c in self.classes))
        if not self.classes:
            raise DatasetError("the class table is empty: the label raster needs at least one class")
        values = [c["value"] for c in self.classes]
        if len(set(values)) != len(values):
            raise DatasetError(f"class values must be unique, got {values}")
        if int(self.label_nodata) in values:
            raise DatasetError(f"label nodata {self.label_nodata} is also a class value")
        put("patch_size", int(self.patch_size))
        put("shard_size", int(self.shard_size))
        put("label_nodata", int(self.label_nodata))
        put("crs_wkt", self.crs_wkt or "")
        put("scale", float(self.scale))
        if self.resolution_m is not None and not (
            isinstance(self.resolution_m, (int, float)) and 0 < self.resolution_m < float("inf")
        ):
            raise DatasetError(
                f"resolution_m must be a positive pixel size in ground metres, not {self.resolution_m!r}"
            )
        put("resolution_m", None if self.resolution_m is None else float(self.resolution_m))
        put("with_masks", bool(self.with_masks))
        put("splits", tuple(self.splits))
        if self.task not in TASKS:
            raise DatasetError(f"task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.task == "segmentation" and not self.with_labels:
            raise DatasetError("a segmentation dataset needs pixel labels (with_labels=True)")
        put("with_labels", bool(self.with_labels))


class DatasetWriter:
    """Write a dataset folder shard by shard (memory stays flat: one preallocated shard per split).

    ``with DatasetWriter(folder, DatasetSpec(...)) as w: w.add("train", image, label)`` closes on success and
    removes what it wrote on an exception. The spec's ``splits`` pre-declares split names so they appear in the
    manifest even when they receive no patch. ``overwrite``: an earlier dataset in ``folder`` is replaced (when
    this one is complete); ``expected_patches``: refuse up front when the disk cannot hold that many.

    ``task`` "multilabel" or "singlelabel" stores a patch-level target per patch (``add(..., target=)``: a
    multi-hot (K,) vector in class-table order; exactly one 1 for "singlelabel") in targets-<split>-<k>.npy;
    ``with_labels=False`` then writes no pixel labels (``add(split, image, target=...)``).
    """

    def __init__(self, folder: str, spec: DatasetSpec, overwrite: bool = False, expected_patches: int = 0):
        if not folder:
            raise DatasetError("no output folder given")
        if not isinstance(spec, DatasetSpec):
            raise DatasetError(
                f"DatasetWriter takes a DatasetSpec (bands, patch size, classes, ...), not {type(spec).__name__}"
            )
        self.spec = spec
        self.folder = os.path.abspath(folder)
        self.bands, self.classes = list(spec.bands), [dict(c) for c in spec.classes]
        self.patch_size, self.shard_size = spec.patch_size, spec.shard_size
        self.crs_wkt, self.scale, self.label_nodata = spec.crs_wkt, spec.scale, spec.label_nodata
        #: pixel size in ground metres (manifest "resolution_m"; training copies it into the model card)
        self.resolution_m = spec.resolution_m
        self.with_masks, self.task, self.with_labels = spec.with_masks, spec.task, spec.with_labels
        self.num_targets = len(self.classes) if self.task in PATCH_TASKS else 0
        self._allowed = np.zeros(256, dtype=bool)
        self._allowed[[c["value"] for c in self.classes]] = True
        self._allowed[self.label_nodata] = True
        self._prepare_folder(overwrite, expected_patches)
        self._open: Dict[str, _ShardSet] = {}
        self._done: Dict[str, List[dict]] = {}
        self._counts: Dict[str, np.ndarray] = {}
        self._tcounts: Dict[str, np.ndarray] = {}
        self._closed = False
        for s in spec.splits:
            self._declare(s)

    # -- folder ----------------------------------------------------------------------------------
    def _prepare_folder(self, overwrite: bool, expected_patches: int):
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise DatasetError(f"output folder '{self.folder}' is a file: choose a folder")
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as e:
            raise DatasetError(
                f"cannot create the output folder '{self.folder}': {e.strerror or e}: choose another folder"
            )
        old = self._dataset_files(self.folder)
        if old and not overwrite:
            raise DatasetError(
                f"folder '{self.folder}' already holds a dataset ({sorted(old)[0]}, ...): "
                "choose an empty folder or allow overwriting"
            )
        if expected_patches:
            item = len(self.bands) * self.patch_size**2 * 2 + self.patch_size**2 * (2 if self.with_masks else 1)
            need = int(int(expected_patches) * item * 1.02) + (1 << 20)  # + footprints and manifest
            free = shutil.disk_usage(self.folder).free
            if need > free:
                raise DatasetError(
                    f"the dataset needs about {need / 2**20:.0f} MB ({expected_patches} patches) but only "
                    f"{free / 2**20:.0f} MB are free on the disk of '{self.folder}': free space, choose another "
                    "folder, or write fewer patches (MAX_PATCHES, STRIDE)"
                )
        # everything is written into a staging folder beside the dataset and moved in by close(): an earlier
        # dataset stays whole until the new one is complete, and a failure leaves the folder as it was. Its name
        # carries this process's id: the staging folders of interrupted runs (SIGTERM, a crash) whose process is
        # gone are removed here, never one a live writer still fills
        remove_stale(self.folder, STAGING_PATTERN)
        self.stage = os.path.join(self.folder, f".staging-{temp_tag()}")
        try:
            os.mkdir(self.stage)
        except OSError as e:
            raise self._write_error(e)

    @staticmethod
    def _dataset_files(folder: str) -> List[str]:
        return [f for f in os.listdir(folder) if f == MANIFEST or f == FOOTPRINTS or _SHARD_RE.match(f)]

    def _commit(self, manifest_tmp: str) -> None:
        """Swap the staged dataset in: old files aside (manifest first), new ones in (manifest last)."""
        old = sorted(self._dataset_files(self.folder), key=lambda n: n != MANIFEST)
        trash = os.path.join(self.folder, f".old-{temp_tag()}")
        moved_old, moved_new = [], []
        try:
            if old:
                os.mkdir(trash)
                for name in old:
                    os.replace(os.path.join(self.folder, name), os.path.join(trash, name))
                    moved_old.append(name)
            for name in sorted(os.listdir(self.stage)):
                if name != os.path.basename(manifest_tmp):
                    os.replace(os.path.join(self.stage, name), os.path.join(self.folder, name))
                    moved_new.append(name)
            os.replace(manifest_tmp, os.path.join(self.folder, MANIFEST))
        except OSError as e:  # put the old dataset back
            for name in moved_new:
                try:
                    os.remove(os.path.join(self.folder, name))
                except OSError:
                    pass
            for name in moved_old:
                try:
                    os.replace(os.path.join(trash, name), os.path.join(self.folder, name))
                except OSError:
                    pass
            raise self._write_error(e)
        finally:
            shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(self.stage, ignore_errors=True)
        # an earlier dataset set aside by a run killed while it swapped its files in: the new one replaces it
        remove_stale(self.folder, OLD_PATTERN)

    def _declare(self, split: str):
        if not isinstance(split, str) or not _SPLIT_RE.match(split):
            raise DatasetError(f"split name {split!r} must be letters, digits or '_' (e.g. 'train')")
        if split not in self._done:
            self._done[split] = []
            self._counts[split] = np.zeros(256, dtype=np.int64)
            self._tcounts[split] = np.zeros(max(self.num_targets, 1), dtype=np.int64)

    # -- writing ---------------------------------------------------------------------------------
    def add(self, split: str, image, label=None, mask=None, target=None) -> Tuple[int, int]:
        """Append one patch; returns (shard index, index within the shard)."""
        if self._closed:
            raise DatasetError("the dataset writer is closed")
        self._declare(split)
        p, c = self.patch_size, len(self.bands)
        image = np.asarray(image)
        if image.shape != (c, p, p):
            raise DatasetError(f"image patch has shape {image.shape}, expected ({c}, {p}, {p}) (bands, rows, cols)")
        image = self._as_dtype(image, np.uint16, "image")
        if self.with_labels:
            if label is None:
                raise DatasetError("this dataset stores pixel labels: give a label patch for every patch")
            label = np.asarray(label)
            if label.shape != (p, p):
                raise DatasetError(f"label patch has shape {label.shape}, expected ({p}, {p})")
            label = self._as_dtype(label, np.uint8, "label")
            bad = ~self._allowed[label]
            if bad.any():
                v = int(label[bad][0])
                raise DatasetError(
                    f"label value {v} is not in the class table "
                    f"({sorted(c_['value'] for c_ in self.classes)}) nor the nodata value "
                    f"{self.label_nodata}"
                )
        elif label is not None:
            raise DatasetError("a label patch was given but the writer was created with with_labels=False")
        if self.num_targets:
            target = self._check_target(target)
        elif target is not None:
            raise DatasetError(f"a patch target was given but the dataset's task is {self.task!r}")
        if self.with_masks:
            if mask is None:
                raise DatasetError("this dataset stores masks: give a mask for every patch")
            mask = np.asarray(mask)
            if mask.shape != (p, p):
                raise DatasetError(f"mask patch has shape {mask.shape}, expected ({p}, {p})")
            mask = (mask != 0).astype(np.uint8)
        elif mask is not None:
            raise DatasetError("a mask was given but the writer was created with with_masks=False")
        try:
            shard = self._open.get(split)
            if shard is None:
                k = len(self._done[split])
                shard = _ShardSet(
                    self.stage, split, k, self.shard_size, c, p, self.with_masks, self.with_labels, self.num_targets
                )
                self._open[split] = shard
            i = shard.count
            shard.add(image, label, mask, target)
            k = len(self._done[split])
            if shard.full:
                self._done[split].append(shard.finish())
                del self._open[split]
        except OSError as e:
            raise self._write_error(e)
        if self.with_labels:
            counted = label[mask == 1] if self.with_masks else label
            self._counts[split] += np.bincount(counted.ravel(), minlength=256)
        if self.num_targets:
            self._tcounts[split] += target
        return k, i

    def _check_target(self, target) -> np.ndarray:
        k = self.num_targets
        if target is None:
            raise DatasetError(
                f"this {self.task} dataset stores a target per patch: give target= (a multi-hot "
                f"vector of {k} values in class-table order)"
            )
        t = np.asarray(target)
        if t.shape != (k,):
            raise DatasetError(f"patch target has shape {t.shape}, expected ({k},) (one 0/1 per class)")
        if t.size and not np.isin(t, (0, 1)).all():
            raise DatasetError(f"patch target holds values {sorted(set(np.unique(t).tolist()))}: expected 0 or 1")
        t = t.astype(np.uint8)
        if self.task == "singlelabel" and int(t.sum()) != 1:
            raise DatasetError(f"a singlelabel patch needs exactly one class, its target has {int(t.sum())}")
        return t

    def _write_error(self, e: OSError) -> DatasetError:
        why, fix = os_error_text(e)
        return DatasetError(
            f"cannot write the dataset into '{self.folder}': {why}. Nothing was kept (an earlier "
            f"dataset there is unchanged): {fix}"
        )

    def stage_path(self, name: str) -> str:
        """Where to write an extra file of the dataset (e.g. patches.gpkg): it is moved in with the shards."""
        return os.path.join(self.stage, name)

    @staticmethod
    def _as_dtype(arr: np.ndarray, dtype, what: str) -> np.ndarray:
        if arr.dtype == dtype:
            return arr
        info = np.iinfo(dtype)
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise DatasetError(f"{what} patch holds non-integer values: expected {np.dtype(dtype).name}")
        elif arr.dtype.kind not in "iub":
            raise DatasetError(f"{what} patch has dtype {arr.dtype}, expected {np.dtype(dtype).name}")
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise DatasetError(
                f"{what} patch values {arr.min()}..{arr.max()} do not fit "
                f"{np.dtype(dtype).name} ({info.min}..{info.max})"
            )
        return arr.astype(dtype)

    def counts(self) -> Dict[str, int]:
        """Patches written so far, per split."""
        out = {}
        for s, shards in self._done.items():
            out[s] = sum(x["count"] for x in shards) + (self._open[s].count if s in self._open else 0)
        return out

    def close(self, extra: Optional[dict] = None) -> dict:
        """Finish the shards and write manifest.json (last, atomically). Returns the manifest."""
        if self._closed:
            raise DatasetError("the dataset writer is already closed")
        try:
            for split, shard in list(self._open.items()):
                if shard.count:
                    self._done[split].append(shard.finish())
                else:
                    shard.discard()
                del self._open[split]
        except OSError as e:
            self._abort_files()
            self._closed = True
            raise self._write_error(e)
        self._closed = True
        values = [c["value"] for c in self.classes]
        splits = {}
        for s in _sort_splits(self._done):
            counts = self._counts[s]
            cc = {str(v): int(counts[v]) for v in values}
            for v in np.nonzero(counts)[0]:  # never happens (add() checks), kept for completeness
                if int(v) != self.label_nodata and str(int(v)) not in cc:
                    cc[str(int(v))] = int(counts[v])
            splits[s] = {"patches": sum(x["count"] for x in self._done[s]), "shards": self._done[s], "class_counts": cc}
            if self.num_targets:
                tc = {str(v): int(n) for v, n in zip(values, self._tcounts[s])}
                splits[s]["target_counts"] = tc
                if not self.with_labels:  # no pixels to count: class_counts count the patches holding each class
                    splits[s]["class_counts"] = dict(tc)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "bands": self.bands,
            "dtype": "uint16",
            "scale": self.scale,
            "patch_size": self.patch_size,
            "crs": self.crs_wkt,
            "classes": self.classes,
            "label_nodata": self.label_nodata,
            "splits": splits,
        }
        if self.task != "segmentation":
            manifest["task"] = self.task
        if self.resolution_m is not None:
            manifest["resolution_m"] = self.resolution_m
        for k, v in (extra or {}).items():
            if k in manifest:
                raise DatasetError(f"extra manifest key {k!r} would overwrite a reserved key")
            manifest[k] = v
        path = os.path.join(self.folder, MANIFEST)
        tmp = os.path.join(self.stage, MANIFEST)
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
        except (TypeError, ValueError) as e:
            self._abort_files()
            raise DatasetError(f"cannot write '{path}': {e}")
        except OSError as e:
            self._abort_files()
            raise self._write_error(e)
        try:
            self._commit(tmp)
        except DatasetError:
            self._abort_files()
            raise
        return manifest

    def abort(self):
        """Remove everything this writer wrote (an earlier dataset in the folder is left as it was)."""
        self._abort_files()
        self._closed = True

    def _abort_files(self):
        for shard in self._open.values():
            shard.discard()
        self._open = {}
        self._done = {}
        shutil.rmtree(self.stage, ignore_errors=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            if not self._closed:
                self.abort()
        elif not self._closed:
            self.close()
        return False


def split_blocks(block_of: Sequence, val_fraction: float, test_fraction: float, seed: int = 0) -> List[str]:
    """The split ("train", "val" or "test") of each item, whole spatial blocks at a time.

    ``block_of``: a hashable block id per item (e.g. (crs, column, row) of a grid of blocks). The blocks are
    shuffled with ``seed`` and handed to val, then test, until each holds its fraction of the items; the rest is
    train. At least one block always stays in train, so a handful of items (even one block) still gives a
    training split (val and test may then be empty)."""
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1.0:
        raise DatasetError(
            f"val fraction {val_fraction} + test fraction {test_fraction} must be below 1 (the rest is train)"
        )
    items: Dict = {}
    for i, b in enumerate(block_of):
        items.setdefault(b, []).append(i)
    blocks = sorted(items, key=repr)
    order = [blocks[i] for i in np.random.default_rng(int(seed)).permutation(len(blocks))]
    n = len(block_of)
    want = {"val": val_fraction * n, "test": test_fraction * n}
    got = {"train": 0, "val": 0, "test": 0}
    out = [""] * n
    for j, b in enumerate(order):
        last_chance = got["train"] == 0 and j == len(order) - 1
        if not last_chance and want["val"] > 0 and got["val"] < want["val"]:
            s = "val"
        elif not last_chance and want["test"] > 0 and got["test"] < want["test"]:
            s = "test"
        else:
            s = "train"
        got[s] += len(items[b])
        for i in items[b]:
            out[i] = s
    return out


class Dataset:
    """Read a dataset folder; the manifest and every shard header are checked on opening."""

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder or "")
        if not folder or not os.path.isdir(self.folder):
            raise DatasetError(f"dataset folder '{folder}' does not exist")
        path = os.path.join(self.folder, MANIFEST)
        if not os.path.isfile(path):
            raise DatasetError(
                f"no manifest.json in '{self.folder}': is this a folder written by satclassify:buildpatches?"
            )
        try:
            with open(path, encoding="utf-8") as f:
                m = json.load(f)
        except (OSError, ValueError) as e:
            raise DatasetError(f"cannot read '{path}': {e}")
        if not isinstance(m, dict):
            raise DatasetError(f"'{path}' does not hold a JSON object")
        self._manifest = m
        self._validate()

    # -- validation ------------------------------------------------------------------------------
    def _fail(self, msg: str):
        raise DatasetError(f"{os.path.join(self.folder, MANIFEST)}: {msg}")

    def _validate(self):
        m = self._manifest
        for key in ("schema_version", "bands", "dtype", "scale", "patch_size", "classes", "label_nodata", "splits"):
            if key not in m:
                self._fail(f"missing key '{key}'")
        if m["schema_version"] != SCHEMA_VERSION:
            self._fail(
                f"schema_version {m['schema_version']!r} is not supported (this version reads "
                f"{SCHEMA_VERSION}): rebuild the dataset with satclassify:buildpatches or update SatClassify"
            )
        if not isinstance(m["bands"], list) or not m["bands"]:
            self._fail("'bands' must be a non-empty list of band names")
        if m["dtype"] != "uint16":
            self._fail(f"dtype {m['dtype']!r} is not supported (expected 'uint16')")
        if not isinstance(m["patch_size"], int) or m["patch_size"] < 1:
            self._fail(f"'patch_size' must be a positive integer, not {m['patch_size']!r}")
        if not isinstance(m["scale"], (int, float)) or m["scale"] <= 0:
            self._fail(f"'scale' must be a positive number, not {m['scale']!r}")
        if not isinstance(m["classes"], list) or not m["classes"]:
            self._fail("'classes' must be a non-empty list of {value, code, name, color}")
        try:
            self._classes = [_class_dict(c) for c in m["classes"]]
        except DatasetError as e:
            self._fail(str(e))
        if not isinstance(m["splits"], dict):
            self._fail("'splits' must be an object {split: {patches, shards, class_counts}}")
        task = m.get("task", "segmentation")
        if task not in TASKS:
            self._fail(f"task {task!r} is not one of {', '.join(TASKS)}")
        self._task = task
        c, p, nk = len(m["bands"]), m["patch_size"], len(self._classes)
        self._shards: Dict[str, List[Patch]] = {}
        self._targets: Dict[str, List[np.ndarray]] = {}
        for split, info in m["splits"].items():
            if not isinstance(info, dict) or not isinstance(info.get("shards"), list):
                self._fail(f"split '{split}' has no 'shards' list")
            arrays, targets = [], []
            total = 0
            for k, sh in enumerate(info["shards"]):
                need = ("images", "count") + (("targets",) if task in PATCH_TASKS else ("labels",))
                if not isinstance(sh, dict) or any(key not in sh for key in need):
                    self._fail(f"split '{split}' shard {k} needs {', '.join(repr(n) for n in need)}")
                n = sh["count"]
                imgs = self._open_shard(sh["images"], (n, c, p, p), np.uint16, split, k)
                labs = self._open_shard(sh["labels"], (n, p, p), np.uint8, split, k) if sh.get("labels") else None
                masks = self._open_shard(sh["masks"], (n, p, p), np.uint8, split, k) if sh.get("masks") else None
                if task in PATCH_TASKS:
                    targets.append(self._open_shard(sh["targets"], (n, nk), np.uint8, split, k))
                arrays.append((imgs, labs, masks))
                total += n
            if info.get("patches", total) != total:
                self._fail(f"split '{split}' says {info.get('patches')} patches but its shards hold {total}")
            self._shards[split] = arrays
            self._targets[split] = targets

    def _open_shard(self, name, shape, dtype, split, k) -> np.ndarray:
        if not isinstance(name, str) or os.path.basename(name) != name:
            self._fail(f"split '{split}' shard {k}: bad file name {name!r}")
        path = os.path.join(self.folder, name)
        if not os.path.isfile(path):
            raise DatasetError(
                f"shard file '{name}' of split '{split}' is missing from '{self.folder}': "
                "the dataset is incomplete, rebuild it with satclassify:buildpatches"
            )
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DatasetError(f"cannot read shard '{path}': {e}")
        if arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype):
            raise DatasetError(
                f"shard '{name}' has shape {arr.shape} and dtype {arr.dtype}, but the manifest "
                f"expects {tuple(shape)} {np.dtype(dtype).name}: the dataset is corrupt, rebuild it"
            )
        return arr

    # -- properties ------------------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        return self._manifest

    @property
    def bands(self) -> List[str]:
        return list(self._manifest["bands"])

    @property
    def classes(self) -> List[dict]:
        """The class table: [{value, code, name, color}] in manifest order."""
        return [dict(c) for c in self._classes]

    @property
    def class_values(self) -> List[int]:
        return [c["value"] for c in self._classes]

    @property
    def patch_size(self) -> int:
        return int(self._manifest["patch_size"])

    @property
    def scale(self) -> float:
        return float(self._manifest["scale"])

    @property
    def crs(self) -> str:
        return self._manifest.get("crs") or ""

    @property
    def resolution_m(self) -> Optional[float]:
        """Pixel size in ground metres (None when the manifest gives none)."""
        v = self._manifest.get("resolution_m")
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    @property
    def label_nodata(self) -> int:
        return int(self._manifest["label_nodata"])

    @property
    def task(self) -> str:
        """ "segmentation" (pixel labels), "multilabel" or "singlelabel" (patch-level targets)."""
        return self._task

    @property
    def has_labels(self) -> bool:
        """Whether the shards hold pixel labels (a patch-level import may have targets only)."""
        return all(s[1] is not None for shards in self._shards.values() for s in shards)

    @property
    def has_masks(self) -> bool:
        return any(s[2] is not None for shards in self._shards.values() for s in shards)

    @property
    def splits(self) -> List[str]:
        """Split names that hold at least one patch (train, val, test first)."""
        return _sort_splits(s for s in self._shards if self.count(s) > 0)

    def _check_split(self, split: str):
        if split not in self._shards:
            avail = ", ".join(f"'{s}'" for s in self.splits) or "none"
            raise DatasetError(f"the dataset has no split '{split}' (available: {avail})")

    def _nonempty(self, split: str):
        self._check_split(split)
        if self.count(split) == 0:
            raise DatasetError(f"split '{split}' has no patches")

    def count(self, split: str) -> int:
        self._check_split(split)
        return sum(int(s[0].shape[0]) for s in self._shards[split])

    def class_counts(self, split: str) -> Dict[int, int]:
        """Labelled pixels per class value in ``split`` (from the manifest)."""
        self._check_split(split)
        cc = self._manifest["splits"][split].get("class_counts") or {}
        return {int(k): int(v) for k, v in cc.items()}

    def shards(self, split: str) -> List[Patch]:
        """(images, labels or None, masks or None) memory-mapped arrays, one tuple per shard (labels are None in a
        patch-level dataset without pixel labels: see :meth:`targets`)."""
        self._nonempty(split)
        return list(self._shards[split])

    def targets(self, split: str) -> List[np.ndarray]:
        """The memory-mapped (N, K) uint8 targets of each shard of ``split`` (patch-level datasets)."""
        self._nonempty(split)
        if self._task not in PATCH_TASKS:
            raise DatasetError(f"the dataset's task is {self._task!r}: it has pixel labels, no patch targets")
        return list(self._targets[split])

    def load_targets(self, split: str) -> np.ndarray:
        """All (N, K) targets of ``split`` in memory, in patch order (as :meth:`load`)."""
        return np.concatenate([np.asarray(t) for t in self.targets(split)])

    def iter_patches(self, split: str) -> Iterator[Patch]:
        for imgs, labs, masks in self.shards(split):
            for i in range(imgs.shape[0]):
                yield imgs[i], (labs[i] if labs is not None else None), (masks[i] if masks is not None else None)

    def load(self, split: str) -> Patch:
        """All patches of ``split`` in memory: (images, labels or None, masks or None)."""
        sh = self.shards(split)
        imgs = np.concatenate([np.asarray(s[0]) for s in sh])
        labs = np.concatenate([np.asarray(s[1]) for s in sh]) if all(s[1] is not None for s in sh) else None
        masks = None
        if all(s[2] is not None for s in sh):
            masks = np.concatenate([np.asarray(s[2]) for s in sh])
        return imgs, labs, masks

    def __repr__(self):
        counts = ", ".join(f"{s}={self.count(s)}" for s in self.splits)
        return f"Dataset('{self.folder}', bands={self.bands}, patch_size={self.patch_size}, {counts})"
