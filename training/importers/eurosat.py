"""EuroSAT MS (Helber et al. 2019, "EuroSAT: A Novel Dataset and Deep Learning Benchmark for Land Use and Land
Cover Classification", IEEE JSTARS) -> a single-label SatClassify dataset.

``SRC`` holds one folder per class (``AnnualCrop/``, ``Forest/``, ...), each with 13-band GeoTIFFs of 64 x 64
pixels (all bands already on the 10 m grid), bands in the order of :data:`BANDS` (B01 ... B08, B8A, B09, B10,
B11, B12) unless the files' band descriptions name them. Class values are 1..N in the folders' alphabetical order;
the ten EuroSAT classes get readable names and colours (:data:`CLASSES`), other folder names keep their name.
"""
import functools
import os

import numpy as np

from satclassify_plugin.core.contract import clc

from ..errors import TrainingError
from .common import PatchRecord, block_of, write_patch_dataset

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: folder -> (name, colour) for the ten EuroSAT classes (colours of the nearest CLC class)
CLASSES = {
    "AnnualCrop": ("Annual crop", "#ffffa8"), "Forest": ("Forest", "#00a600"),
    "HerbaceousVegetation": ("Herbaceous vegetation", "#ccf24d"), "Highway": ("Highway", "#cc0000"),
    "Industrial": ("Industrial", "#cc4df2"), "Pasture": ("Pasture", "#e6e64d"),
    "PermanentCrop": ("Permanent crop", "#f2a64d"), "Residential": ("Residential", "#e6004d"),
    "River": ("River", "#00ccf2"), "SeaLake": ("Sea or lake", "#80f2e6"),
}
TIF = (".tif", ".tiff")


def _class_folders(src):
    if not src or not os.path.isdir(src):
        raise TrainingError(f"EuroSAT folder '{src}' does not exist")
    folders = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)) and not d.startswith("."))
    if not folders:
        raise TrainingError(f"'{src}' holds no class folder: give the EuroSAT MS folder (EuroSATallBands/ds/images/"
                            "remote_sensing/otherDatasets/sentinel_2/tif, with AnnualCrop/, Forest/, ...)")
    out = []
    for d in folders:
        files = sorted(f for f in os.listdir(os.path.join(src, d)) if f.lower().endswith(TIF))
        if not files:
            raise TrainingError(f"class folder '{d}' of '{src}' holds no GeoTIFF (.tif): remove it or add its "
                                "patches")
        out.append((d, files))
    return out


def _band_order(ds, name):
    desc = [str(x or "").strip().upper() for x in ds.descriptions]
    if all(d in BANDS for d in desc) and len(set(desc)) == len(desc):
        return desc
    if ds.count != len(BANDS):
        raise TrainingError(f"patch '{name}' has {ds.count} bands, expected the {len(BANDS)} bands of EuroSAT MS "
                            f"({', '.join(BANDS)})")
    return list(BANDS)


def import_eurosat(src, out, bands=None, val_fraction=0.15, test_fraction=0.15, seed=0, block_size=8,
                   shard_size=256, overwrite=False, workers=1, log=print):
    """Import EuroSAT MS class folders under ``src`` into the dataset folder ``out``; returns the manifest."""
    import rasterio
    bands = list(bands or BANDS)
    bad = [b for b in bands if b not in BANDS]
    if bad or len(set(bands)) != len(bands):
        raise TrainingError(f"--bands {','.join(bands)}: EuroSAT MS bands are {', '.join(BANDS)} (each once)")
    folders = _class_folders(src)
    table = []
    for v, (d, _files) in enumerate(folders, start=1):
        name, color = CLASSES.get(d, (d, clc.default_palette(v)))
        table.append({"value": v, "code": d, "name": name, "color": color})
    records, p, georef = [], None, True
    for ci, (d, files) in enumerate(folders):
        target = np.zeros(len(table), np.uint8)
        target[ci] = 1
        for f in files:
            path = os.path.join(src, d, f)
            name = f"{d}/{os.path.splitext(f)[0]}"
            try:
                with rasterio.open(path) as ds:
                    order = _band_order(ds, name)
                    if p is None:
                        p = ds.height
                    if (ds.height, ds.width) != (p, p):
                        raise TrainingError(f"patch '{name}' is {ds.width} x {ds.height} pixels, the others "
                                            f"{p} x {p}: EuroSAT patches share one size; remove it")
                    missing = [b for b in bands if b not in order]
                    if missing:
                        raise TrainingError(f"patch '{name}' has no band {', '.join(missing)} (its bands: "
                                            f"{', '.join(order)})")
                    wkt = ds.crs.to_wkt() if ds.crs else ""
                    b = ds.bounds
                    has_geo = bool(wkt) and not ds.transform.is_identity
                    res = abs(ds.transform.a) or 1.0
            except rasterio.errors.RasterioIOError as e:
                raise TrainingError(f"patch '{name}': cannot read '{path}': {e}")
            georef &= has_geo
            ring = [(b.left, b.top), (b.right, b.top), (b.right, b.bottom), (b.left, b.bottom), (b.left, b.top)]
            block = block_of(wkt, b.left, b.top, block_size * p * res) if has_geo \
                else ("patch", name)
            records.append(PatchRecord(name, ring, wkt, block, table[ci]["name"], "",
                                       functools.partial(_load, path, name, [order.index(x) for x in bands], target)))
    if not georef:
        log("some EuroSAT patches have no georeferencing: those are split one by one (random, seeded), not in "
            "spatial blocks")
    log(f"EuroSAT: {len(records)} patches of {p} x {p} pixels in {len(table)} classes ("
        + ", ".join(f"{c['name']} {len(f)}" for c, (_d, f) in zip(table, folders)) + f"), bands {', '.join(bands)}")
    extra = {"resolution_m": 10.0,
             "source": {"format": "EuroSAT MS", "folder": os.path.abspath(src), "resampling": "none (10 m grid)"},
             "split_rule": {"block_size_patches": int(block_size), "georeferenced": bool(georef)}}
    return write_patch_dataset(out, records, bands, p, table, "singlelabel", extra=extra,
                               val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                               shard_size=shard_size, overwrite=overwrite, workers=workers, log=log)


def _load(path, name, idx, target):
    """(image, target) of one EuroSAT patch (top-level: ``--workers`` processes can run it)."""
    import rasterio
    with rasterio.open(path) as ds:
        a = ds.read([i + 1 for i in idx])
    if a.dtype.kind not in "ui" or (a.size and (a.min() < 0 or a.max() > 65535)):
        raise TrainingError(f"patch '{name}' is {a.dtype} with values {a.min()}..{a.max()}: expected uint16 "
                            "digital numbers")
    return a.astype(np.uint16), target
