"""EuroSAT (Helber et al. 2019, "EuroSAT: A Novel Dataset and Deep Learning Benchmark for Land Use and Land
Cover Classification", IEEE JSTARS) -> a single-label SatClassify dataset, from either of its two layouts:

* **MS**: ``SRC`` holds one folder per class (``AnnualCrop/``, ``Forest/``, ...), each with 13-band GeoTIFFs of
  64 x 64 pixels (all bands already on the 10 m grid) of Level-1C digital numbers. The files carry no band
  descriptions; their band order is :data:`BANDS`: B01 ... B12 with **B8A last** (the order of the published
  archive's GeoTIFFs as read by the widely used loaders, e.g. torchgeo's ``EuroSAT.all_band_names``; B8A is not
  between B08 and B09 as in Sentinel-2's own numbering). Files whose band descriptions name the bands are read by
  those names instead.
* **RGB**: class folders of 8-bit JPEG (or PNG) files holding B04, B03, B02 (red, green, blue) of the same L1C
  patches, scaled by the EuroSAT authors from digital numbers 0..2750 to 0..255 and clipped. The importer maps
  them back to digital numbers, ``DN = max(1, round(v * 2750 / 255))`` (DN 0 is Sentinel-2's no-data), and records
  the saturation in the manifest (``input_clip``: each band [0, 2750]); training copies it into the model card,
  and classify / classifypatches clip a real stack's bands to it before scaling, so a model trained on these
  pixels sees a Sentinel-2 stack (L1C, or L2A with the harmonised offset removed) the way it saw its training data.

Class values are 1..N in the folders' alphabetical order; the ten EuroSAT classes get readable names and colours
(:data:`CLASSES`), other folder names keep their name.
"""

import functools
import os
from typing import Any, Callable, Optional, Sequence

import numpy as np

from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.dataset import DatasetSpec

from ..errors import TrainingError
from .common import ImportOptions, PatchRecord, block_of, write_patch_dataset

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
#: the RGB layout's bands, in the order of the image channels
RGB_BANDS = ("B04", "B03", "B02")
#: the RGB layout's scaling: 8-bit value v = clip(DN * 255 / RGB_DN_MAX, 0, 255)
RGB_DN_MAX = 2750
RGB_EXT = (".jpg", ".jpeg", ".png")
#: folder -> (name, colour) for the ten EuroSAT classes (colours of the nearest CLC class)
CLASSES = {
    "AnnualCrop": ("Annual crop", "#ffffa8"),
    "Forest": ("Forest", "#00a600"),
    "HerbaceousVegetation": ("Herbaceous vegetation", "#ccf24d"),
    "Highway": ("Highway", "#cc0000"),
    "Industrial": ("Industrial", "#cc4df2"),
    "Pasture": ("Pasture", "#e6e64d"),
    "PermanentCrop": ("Permanent crop", "#f2a64d"),
    "Residential": ("Residential", "#e6004d"),
    "River": ("River", "#00ccf2"),
    "SeaLake": ("Sea or lake", "#80f2e6"),
}
TIF = (".tif", ".tiff")


def _class_folders(src):
    """(layout 'ms' or 'rgb', [(class folder, files)]) of the EuroSAT folder ``src``."""
    if not src or not os.path.isdir(src):
        raise TrainingError(f"EuroSAT folder '{src}' does not exist")
    folders = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)) and not d.startswith("."))
    if not folders:
        raise TrainingError(
            f"'{src}' holds no class folder: give the EuroSAT MS folder (EuroSATallBands/ds/images/"
            "remote_sensing/otherDatasets/sentinel_2/tif) or the EuroSAT RGB folder (2750/), with "
            "AnnualCrop/, Forest/, ..."
        )
    out, kinds = [], set()
    for d in folders:
        names = [f for f in os.listdir(os.path.join(src, d)) if not f.startswith(".")]
        tifs = sorted(f for f in names if f.lower().endswith(TIF))
        rgbs = sorted(f for f in names if f.lower().endswith(RGB_EXT))
        if not tifs and not rgbs:
            raise TrainingError(
                f"class folder '{d}' of '{src}' holds no GeoTIFF (.tif, EuroSAT MS) nor JPEG/PNG "
                "(EuroSAT RGB): remove it or add its patches"
            )
        if tifs and rgbs:
            raise TrainingError(
                f"class folder '{d}' of '{src}' mixes GeoTIFFs (EuroSAT MS) and JPEG/PNG images "
                "(EuroSAT RGB): import the two layouts into separate datasets"
            )
        kinds.add("ms" if tifs else "rgb")
        out.append((d, tifs or rgbs))
    if len(kinds) > 1:
        raise TrainingError(
            f"'{src}' mixes class folders of GeoTIFFs (EuroSAT MS) and of JPEG/PNG images (EuroSAT "
            "RGB): import the two layouts into separate datasets"
        )
    return kinds.pop(), out


def _band_order(ds, name):
    desc = [str(x or "").strip().upper() for x in ds.descriptions]
    if all(d in BANDS for d in desc) and len(set(desc)) == len(desc):
        return desc
    if ds.count != len(BANDS):
        raise TrainingError(
            f"patch '{name}' has {ds.count} bands, expected the {len(BANDS)} bands of EuroSAT MS ({', '.join(BANDS)})"
        )
    return list(BANDS)


def import_eurosat(
    src: str,
    out: str,
    bands: Optional[Sequence[str]] = None,
    options: Optional[ImportOptions] = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Import EuroSAT MS or RGB class folders under ``src`` into the dataset folder ``out``; returns the manifest.
    ``options``: the split and writing options (:class:`~.common.ImportOptions`)."""
    options = options or ImportOptions()
    block_size = options.block_size
    layout, folders = _class_folders(src)
    table = []
    for v, (d, _files) in enumerate(folders, start=1):
        name, color = CLASSES.get(d, (d, clc.default_palette(v)))
        table.append({"value": v, "code": d, "name": name, "color": color})
    if layout == "rgb":
        return _import_rgb(src, out, folders, table, bands, options, log)
    import rasterio

    bands = _chosen(bands, BANDS, "EuroSAT MS bands are")
    records, georef = [], True
    p: Any = None  # the patch size, from the first patch
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
                        raise TrainingError(
                            f"patch '{name}' is {ds.width} x {ds.height} pixels, the others "
                            f"{p} x {p}: EuroSAT patches share one size; remove it"
                        )
                    missing = [b for b in bands if b not in order]
                    if missing:
                        raise TrainingError(
                            f"patch '{name}' has no band {', '.join(missing)} (its bands: {', '.join(order)})"
                        )
                    wkt = ds.crs.to_wkt() if ds.crs else ""
                    b = ds.bounds
                    has_geo = bool(wkt) and not ds.transform.is_identity
                    res = abs(ds.transform.a) or 1.0
            except rasterio.errors.RasterioIOError as e:
                raise TrainingError(f"patch '{name}': cannot read '{path}': {e}")
            georef &= has_geo
            ring = [(b.left, b.top), (b.right, b.top), (b.right, b.bottom), (b.left, b.bottom), (b.left, b.top)]
            block = block_of(wkt, b.left, b.top, block_size * p * res) if has_geo else ("patch", name)
            records.append(
                PatchRecord(
                    name,
                    ring,
                    wkt,
                    block,
                    table[ci]["name"],
                    "",
                    functools.partial(_load, path, name, [order.index(x) for x in bands], target),
                )
            )
    if not georef:
        log(
            "some EuroSAT patches have no georeferencing: those are split one by one (random, seeded), not in "
            "spatial blocks"
        )
    log(
        f"EuroSAT: {len(records)} patches of {p} x {p} pixels in {len(table)} classes ("
        + ", ".join(f"{c['name']} {len(f)}" for c, (_d, f) in zip(table, folders))
        + f"), bands {', '.join(bands)}"
    )
    extra = {
        "resolution_m": 10.0,
        "source": {"format": "EuroSAT MS", "folder": os.path.abspath(src), "resampling": "none (10 m grid)"},
        "split_rule": {"block_size_patches": int(block_size), "georeferenced": bool(georef)},
    }
    return write_patch_dataset(out, records, _spec(bands, p, table), options, extra, log)


def rgb_to_dn(v: Any) -> np.ndarray:
    """8-bit EuroSAT RGB values -> Sentinel-2 L1C digital numbers (uint16): the inverse of the authors' linear
    scaling 0..2750 -> 0..255, at least 1 (DN 0 means no data)."""
    dn = np.rint(np.asarray(v, np.float64) * (RGB_DN_MAX / 255.0))
    return np.maximum(dn, 1).astype(np.uint16)


def dn_to_rgb(dn: Any) -> np.ndarray:
    """Sentinel-2 digital numbers -> the 8-bit values of EuroSAT RGB (clip(DN * 255 / 2750, 0, 255), rounded)."""
    return np.clip(np.rint(np.asarray(dn, np.float64) * (255.0 / RGB_DN_MAX)), 0, 255).astype(np.uint8)


def _chosen(bands, available, what):
    """``--bands`` (all of ``available`` when not given), each one of ``available`` and given once."""
    bands = list(bands or available)
    if any(b not in available for b in bands) or len(set(bands)) != len(bands):
        raise TrainingError(f"--bands {','.join(bands)}: {what} {', '.join(available)} (each once)")
    return bands


def _spec(bands, p, table):
    """The dataset a EuroSAT import writes: single-label patches without pixel labels."""
    return DatasetSpec(bands, p, table, task="singlelabel", with_labels=False)


def _import_rgb(src, out, folders, table, bands, options, log):
    bands = _chosen(bands, RGB_BANDS, "EuroSAT RGB images hold the bands")
    idx = [RGB_BANDS.index(b) for b in bands]
    first = os.path.join(src, folders[0][0], folders[0][1][0])
    p = _read_rgb(first, f"{folders[0][0]}/{folders[0][1][0]}").shape[1]
    records = []
    for ci, (d, files) in enumerate(folders):
        target = np.zeros(len(table), np.uint8)
        target[ci] = 1
        for f in files:
            name = f"{d}/{os.path.splitext(f)[0]}"
            records.append(
                PatchRecord(
                    name,
                    [(0, 0), (p, 0), (p, -p), (0, -p), (0, 0)],
                    "",
                    ("patch", name),
                    table[ci]["name"],
                    "",
                    functools.partial(_load_rgb, os.path.join(src, d, f), name, idx, p, target),
                )
            )
    log("EuroSAT RGB images carry no georeferencing: patches are split one by one (random, seeded)")
    log(
        f"EuroSAT RGB: {len(records)} patches of {p} x {p} pixels in {len(table)} classes ("
        + ", ".join(f"{c['name']} {len(f)}" for c, (_d, f) in zip(table, folders))
        + f"), bands "
        f"{', '.join(bands)}; 8-bit values mapped back to digital numbers (0..255 -> 0..{RGB_DN_MAX})"
    )
    extra = {
        "resolution_m": 10.0,
        "source": {
            "format": "EuroSAT RGB",
            "folder": os.path.abspath(src),
            "resampling": "none (10 m grid)",
            "scaling": f"8-bit v = clip(DN * 255 / {RGB_DN_MAX}, 0, 255) (EuroSAT authors); stored DN = "
            f"max(1, round(v * {RGB_DN_MAX} / 255))",
            "level": "L1C",
        },
        "input_clip": {b: [0, RGB_DN_MAX] for b in bands},
        "split_rule": {"georeferenced": False},
    }
    return write_patch_dataset(out, records, _spec(bands, p, table), options, extra, log)


def _read_rgb(path, name):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode != "RGB":
                raise TrainingError(
                    f"patch '{name}' is a {im.mode} image: EuroSAT RGB patches are 8-bit RGB (JPEG or PNG)"
                )
            a = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as e:
        raise TrainingError(f"patch '{name}': cannot read '{path}' as an image ({e}): remove or replace it")
    if a.ndim != 3 or a.shape[0] != a.shape[1]:
        raise TrainingError(f"patch '{name}' is {a.shape[1]} x {a.shape[0]} pixels: EuroSAT patches are square")
    return a.transpose(2, 0, 1)


def _load_rgb(path, name, idx, p, target):
    """(image (C, p, p) uint16 DN, target) of one EuroSAT RGB patch (top-level: ``--workers`` can run it)."""
    a = _read_rgb(path, name)
    if a.shape[1] != p:
        raise TrainingError(
            f"patch '{name}' is {a.shape[2]} x {a.shape[1]} pixels, the others {p} x {p}: EuroSAT "
            "patches share one size; remove it"
        )
    return rgb_to_dn(a[idx]), target


def _load(path, name, idx, target):
    """(image, target) of one EuroSAT patch (top-level: ``--workers`` processes can run it)."""
    import rasterio

    with rasterio.open(path) as ds:
        a = ds.read([i + 1 for i in idx])
    if a.dtype.kind not in "ui" or (a.size and (a.min() < 0 or a.max() > 65535)):
        raise TrainingError(
            f"patch '{name}' is {a.dtype} with values {a.min()}..{a.max()}: expected uint16 digital numbers"
        )
    return a.astype(np.uint16), target
