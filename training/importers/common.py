"""What the importers share: bilinear upsampling to 10 m, the spatial split, writing shards + footprints."""

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from satclassify_plugin.core.contract.dataset import (
    FOOTPRINTS,
    DatasetError,
    DatasetSpec,
    DatasetWriter,
    split_blocks,
)
from satclassify_plugin.core.contract.gpkg import epsg_of_wkt, write_polygons

from ..errors import TrainingError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImportOptions:
    """How an importer splits and writes a dataset (``python -m training import``'s options, its defaults),
    checked when made. ``block_size``: spatial split blocks of N x N patches; ``val_fraction`` / ``test_fraction``
    of the patches (whole blocks, ``seed``ed); ``shard_size`` patches per shard file; ``overwrite`` a dataset
    already in the folder; ``workers`` processes reading the patches (<= 1: this one); ``k_folds`` cross-validation
    fold ids over the train blocks (0 = none)."""

    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    block_size: int = 8
    shard_size: int = 256
    overwrite: bool = False
    workers: int = 1
    k_folds: int = 0

    def __post_init__(self):
        if int(self.block_size) < 1:
            raise TrainingError(f"--block-size must be at least 1, not {self.block_size}")
        if int(self.shard_size) < 1:
            raise TrainingError(f"--shard-size must be at least 1, not {self.shard_size}")
        if int(self.k_folds or 0) == 1 or int(self.k_folds or 0) < 0:
            raise TrainingError(f"--k-folds must be 0 (no folds) or at least 2, not {self.k_folds}")
        v, t = self.val_fraction, self.test_fraction
        if v < 0 or t < 0 or v + t >= 1.0:
            raise TrainingError(f"val fraction {v} + test fraction {t} must be below 1 (the rest is train)")


def upsample_bilinear(band: np.ndarray, factor: int) -> np.ndarray:
    """``band`` (h, w) -> (h * factor, w * factor) by bilinear interpolation between pixel centres (output pixel
    i samples the source at (i + 0.5) / factor - 0.5; beyond the outer centres the edge value is repeated), rounded
    to the nearest integer (halves up). Interior pixels get the weights of GDAL's bilinear warp, which
    fetchsentinel2/importsafe use for their 20 m / 60 m bands, so training and inference see the same resampling.
    The weights are multiples of 1 / (2 * factor): computed in integers, so the result is exact."""
    if factor == 1:
        return np.asarray(band).copy()
    a = np.asarray(band, np.int64)
    d = 2 * factor
    for axis in (0, 1):
        n = a.shape[axis]
        num = np.clip(2 * np.arange(n * factor) + 1 - factor, 0, d * (n - 1))  # position * d
        i0 = num // d
        i1 = np.minimum(i0 + 1, n - 1)
        w = (num - i0 * d).reshape([-1, 1] if axis == 0 else [1, -1])
        a = np.take(a, i0, axis=axis) * (d - w) + np.take(a, i1, axis=axis) * w
    den = d * d
    return ((2 * a + den) // (2 * den)).astype(band.dtype)


@dataclass
class PatchRecord:
    """One patch to import: its name, footprint ring (in ``crs_wkt``), spatial block, what the footprint layer
    shows, and a loader giving (image (C, p, p) uint16, target (K,) uint8)."""

    name: str
    ring: List[Tuple[float, float]]
    crs_wkt: str
    block: tuple
    labels_text: str
    date: str
    load: Callable[[], Tuple[np.ndarray, np.ndarray]]  # picklable (functools.partial) for --workers


def block_of(crs_wkt: str, x: float, y: float, block_m: float) -> Tuple[str, int, int]:
    """Spatial block id of a patch whose upper-left corner is (x, y): a grid of block_m metres per CRS."""
    return (crs_wkt, math.floor(x / block_m), math.floor(y / block_m))


def crs_label(wkt: Optional[str]) -> str:
    if not wkt:
        return ""
    epsg = epsg_of_wkt(wkt)
    return f"EPSG:{epsg}" if epsg else "custom"


def _to_wgs84(records, log):
    """Footprint rings in EPSG:4326 (patches in several CRSs cannot share one layer CRS)."""
    from rasterio.crs import CRS
    from rasterio.warp import transform

    out = []
    for r in records:
        xs, ys = transform(CRS.from_wkt(r.crs_wkt), CRS.from_epsg(4326), [p[0] for p in r.ring], [p[1] for p in r.ring])
        out.append(list(zip(xs, ys)))
    log(
        "the patches lie in several CRSs (e.g. UTM zones): footprints are written in EPSG:4326 (WGS 84), the "
        "field 'crs' keeps each patch's own CRS"
    )
    return out


def write_patch_dataset(
    out: str,
    records: Sequence[PatchRecord],
    spec: DatasetSpec,
    options: ImportOptions,
    extra: dict,
    log: Callable[[str], None] = print,
) -> dict:
    """Split ``records`` by their blocks, write shards + targets + patches.gpkg + manifest (all or nothing).
    ``spec``: bands, patch size, class table and task (its CRS, splits and shard size are set here).
    ``options.workers`` > 1 reads the patches in that many processes (in order; the writing stays in this one).
    ``options.k_folds`` >= 2 gives each train block a fold id 0..k-1 (seeded; ``training.folds.assign_folds``): the
    manifest's ``k_folds`` and ``folds.train`` (one id per train patch, in shard order), as buildpatches writes
    them, so ``train --fold`` / ``crossval`` can use them; 0 = no folds."""
    o = options
    val_fraction, test_fraction, seed, k_folds = o.val_fraction, o.test_fraction, o.seed, o.k_folds
    if not records:
        raise TrainingError("no patch to import")
    try:
        splits = split_blocks([r.block for r in records], val_fraction, test_fraction, seed)
    except DatasetError as e:
        raise TrainingError(str(e))
    crss = sorted({r.crs_wkt for r in records})
    common = crss[0] if len(crss) == 1 else ""
    nblocks = {s: len({r.block for r, t in zip(records, splits) if t == s}) for s in SPLITS}
    log(
        f"{len(records)} patches in {len(set(r.block for r in records))} spatial blocks: "
        + ", ".join(f"{s} {splits.count(s)} patches ({nblocks[s]} blocks)" for s in SPLITS)
    )
    folds = _folds(records, splits, k_folds, seed, log)
    try:
        spec = dataclasses.replace(spec, crs_wkt=common, splits=SPLITS, shard_size=o.shard_size)
        with DatasetWriter(out, spec, overwrite=o.overwrite, expected_patches=len(records)) as w:
            rows = _write_patches(w, records, splits, o.workers, log)
            _write_footprints(w, records, rows, crss, common, log)
            split_rule = {
                "type": "spatial_blocks",
                "val_fraction": val_fraction,
                "test_fraction": test_fraction,
                "seed": int(seed),
                "blocks": nblocks,
            }
            manifest = w.close(
                extra={
                    **extra,
                    "split_rule": {**split_rule, **extra.get("split_rule", {})},
                    "k_folds": int(k_folds) if folds is not None else 0,
                    "folds": {"train": folds or []},
                    "crs_note": "" if common else "several CRSs: see the 'crs' field of patches.gpkg",
                }
            )
    except DatasetError as e:
        raise TrainingError(str(e))
    for s in SPLITS:
        log(f"{s}: {manifest['splits'][s]['patches']} patches")
    return manifest


def _write_patches(w, records, splits, workers, log):
    """Add each record's image and target to the writer ``w`` in its split; returns (split, shard, index) per
    record."""
    rows = []
    for n, (r, s, (image, target)) in enumerate(zip(records, splits, _loaded(records, workers))):
        try:
            shard, idx = w.add(s, image, target=target)
        except DatasetError as e:
            if "cannot write" in str(e):
                raise
            raise TrainingError(f"patch '{r.name}': {e}")
        rows.append((s, shard, idx))
        if (n + 1) % 5000 == 0:
            log(f"  {n + 1}/{len(records)} patches")
    return rows


def _write_footprints(w, records, rows, crss, common, log):
    """Stage patches.gpkg: each patch's footprint with its source, split, shard, index, labels, date and CRS (in
    the records' common CRS, else in WGS 84)."""
    rings = [r.ring for r in records] if common or len(crss) == 1 else _to_wgs84(records, log)
    layer_crs = common if common else (_wgs84_wkt() if len(crss) > 1 else "")
    write_polygons(
        w.stage_path(FOOTPRINTS),
        "patches",
        [
            ("source", "str"),
            ("split", "str"),
            ("shard", "int"),
            ("index", "int"),
            ("labels", "str"),
            ("acquisition_date", "str"),
            ("crs", "str"),
        ],
        (
            (ring, r.name, s, shard, idx, r.labels_text, r.date, crs_label(r.crs_wkt))
            for ring, r, (s, shard, idx) in zip(rings, records, rows)
        ),
        crs_wkt=layer_crs,
    )


def _folds(records, splits, k_folds, seed, log):
    """Fold id of each train patch (in order) for ``k_folds`` >= 2, else None (no folds)."""
    k = int(k_folds or 0)
    if k == 0:
        return None
    if k < 2:
        raise TrainingError(f"--k-folds must be 0 (no folds) or at least 2, not {k}")
    from ..folds import assign_folds

    train_blocks = [r.block for r, s in zip(records, splits) if s == "train"]
    of = assign_folds(train_blocks, k, seed)
    folds = [of[b] for b in train_blocks]
    log(
        f"{k} folds over the {len(of)} train blocks: "
        + ", ".join(f"fold {i} {folds.count(i)} patches" for i in range(k))
    )
    return folds


def _call(load):
    return load()


def _loaded(records, workers):
    """(image, target) of each record in order, read here or by ``workers`` processes."""
    if int(workers) <= 1:
        for r in records:
            yield r.load()
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(int(workers)) as pool:
        yield from pool.imap(_call, [r.load for r in records], chunksize=16)


def _wgs84_wkt():
    from rasterio.crs import CRS

    return CRS.from_epsg(4326).to_wkt()


def read_list(path: Optional[str]) -> set:
    """Patch names listed one per line (or in the first CSV column) in ``path``; empty set without a path."""
    if not path:
        return set()
    if not os.path.isfile(path):
        raise TrainingError(f"list file '{path}' does not exist")
    with open(path, encoding="utf-8-sig") as f:
        return {line.split(",")[0].strip() for line in f if line.strip() and not line.startswith("#")}
