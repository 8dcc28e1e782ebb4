"""BigEarthNet-S2 (v1.0) patch folders -> a multi-label SatClassify dataset.

Each patch folder ``<name>/`` holds ``<name>_B01.tif ... <name>_B12.tif`` and ``<name>_B8A.tif`` (10 m bands
120 x 120 pixels, 20 m bands 60 x 60, 60 m bands 20 x 20; BigEarthNet-S2 has no B10) and
``<name>_labels_metadata.json`` with ``labels`` (CLC level-3 class names as BigEarthNet spells them),
``coordinates`` {ulx, uly, lrx, lry}, ``projection`` (WKT) and ``acquisition_date``.

Nomenclatures (``--nomenclature``):

* 43 (default): the CLC level-3 classes BigEarthNet uses (every level-3 class but 335 Glaciers and perpetual
  snow); each class's ``value`` is its CLC grid code and ``code`` its CLC code, as in ``core.contract.clc`` (so
  the values agree with ``rasterizeclc`` at level 3). BigEarthNet's spellings that differ from the CLC legend
  are in :data:`ALIASES`.
* 19: the BigEarthNet-19 nomenclature of Sumbul et al., "BigEarthNet-MM: A Large-Scale, Multimodal,
  Multilabel Benchmark Archive for Remote Sensing Image Classification and Retrieval", IEEE Geoscience and
  Remote Sensing Magazine 9(3), 2021 (:data:`BEN19`: each new class and the CLC level-3 codes it merges;
  122 123 124 131 132 133 141 142 332 334 423 have no BigEarthNet-19 class). A patch left without any class is
  skipped (counted in the log and the manifest).

All bands are resampled to the 10 m grid (``common.upsample_bilinear``: bilinear, as fetchsentinel2/importsafe
resample 20 m / 60 m bands).
"""

import difflib
import functools
import json
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from satclassify_plugin.core.contract import clc
from satclassify_plugin.core.contract.dataset import DatasetSpec

from ..errors import TrainingError
from .common import ImportOptions, PatchRecord, block_of, read_list, upsample_bilinear, write_patch_dataset

#: the bands of a BigEarthNet-S2 patch and their pixel size (m)
BAND_RES = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
}
BANDS = tuple(BAND_RES)

#: BigEarthNet's spelling -> the CLC legend's (core/contract/data/clc_legend.csv), where they differ
ALIASES = {
    "Natural grassland": "Natural grasslands",
    "Transitional woodland/shrub": "Transitional woodland-shrub",
    "Bare rock": "Bare rocks",
    "Peatbogs": "Peat bogs",
}

#: the 43 labels of BigEarthNet-S2 as its metadata spells them (Sumbul et al. 2019, "BigEarthNet: A Large-Scale
#: Benchmark Archive for Remote Sensing Image Understanding", IGARSS)
LABELS_43 = (
    "Continuous urban fabric",
    "Discontinuous urban fabric",
    "Industrial or commercial units",
    "Road and rail networks and associated land",
    "Port areas",
    "Airports",
    "Mineral extraction sites",
    "Dump sites",
    "Construction sites",
    "Green urban areas",
    "Sport and leisure facilities",
    "Non-irrigated arable land",
    "Permanently irrigated land",
    "Rice fields",
    "Vineyards",
    "Fruit trees and berry plantations",
    "Olive groves",
    "Pastures",
    "Annual crops associated with permanent crops",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland",
    "Moors and heathland",
    "Sclerophyllous vegetation",
    "Transitional woodland/shrub",
    "Beaches, dunes, sands",
    "Bare rock",
    "Sparsely vegetated areas",
    "Burnt areas",
    "Inland marshes",
    "Peatbogs",
    "Salt marshes",
    "Salines",
    "Intertidal flats",
    "Water courses",
    "Water bodies",
    "Coastal lagoons",
    "Estuaries",
    "Sea and ocean",
)

#: BigEarthNet-19 (Sumbul et al. 2021, BigEarthNet-MM, IEEE GRSM, table of the new nomenclature): class name and
#: the CLC level-3 codes it merges, in the published order (value = position + 1)
BEN19 = (
    ("Urban fabric", (111, 112)),
    ("Industrial or commercial units", (121,)),
    ("Arable land", (211, 212, 213)),
    ("Permanent crops", (221, 222, 223, 241)),
    ("Pastures", (231,)),
    ("Complex cultivation patterns", (242,)),
    ("Land principally occupied by agriculture, with significant areas of natural vegetation", (243,)),
    ("Agro-forestry areas", (244,)),
    ("Broad-leaved forest", (311,)),
    ("Coniferous forest", (312,)),
    ("Mixed forest", (313,)),
    ("Natural grassland and sparsely vegetated areas", (321, 333)),
    ("Moors, heathland and sclerophyllous vegetation", (322, 323)),
    ("Transitional woodland, shrub", (324,)),
    ("Beaches, dunes, sands", (331,)),
    ("Inland wetlands", (411, 412)),
    ("Coastal wetlands", (421, 422)),
    ("Inland waters", (511, 512)),
    ("Marine waters", (521, 522, 523)),
)


def _norm(name):
    return re.sub(r"\s+", " ", str(name)).strip().lower()


def name_to_code() -> Dict[str, int]:
    """{normalised name: CLC code} of every CLC level-3 name and BigEarthNet spelling (:data:`ALIASES`)."""
    by_name = {_norm(e.level3): e.code for e in clc.legend()}
    for ben, legend_name in ALIASES.items():
        by_name[_norm(ben)] = by_name[_norm(legend_name)]
    return by_name


def clc_code(label: str, patch: str = "?") -> int:
    """The CLC code of a BigEarthNet label (case and spacing ignored); a clear error for an unknown name."""
    table = name_to_code()
    code = table.get(_norm(label))
    if code is None:
        close = difflib.get_close_matches(_norm(label), list(table), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise TrainingError(
            f"patch '{patch}': unknown label '{label}'{hint}: BigEarthNet labels are CLC level-3 "
            "class names (e.g. 'Non-irrigated arable land')"
        )
    return code


def nomenclature(n: int) -> Tuple[List[dict], Dict[int, int]]:
    """(class table [{value, code, name, color}], {CLC code: class index}) of nomenclature 43 or 19."""
    entries = {e.code: e for e in clc.legend()}
    if n == 43:
        codes = [clc_code(name) for name in LABELS_43]
        table = [
            {"value": entries[c].grid_code, "code": str(c), "name": entries[c].level3, "color": entries[c].color}
            for c in codes
        ]
        return table, {c: i for i, c in enumerate(codes)}
    if n == 19:
        table, index = [], {}
        for i, (name, group) in enumerate(BEN19):
            table.append(
                {
                    "value": i + 1,
                    "code": "+".join(str(c) for c in group),
                    "name": name,
                    "color": entries[group[0]].color,
                }
            )
            for c in group:
                index[c] = i
        return table, index
    raise TrainingError(f"--nomenclature must be 43 or 19, not {n}")


def _patch_folders(src):
    if not src or not os.path.isdir(src):
        raise TrainingError(f"BigEarthNet folder '{src}' does not exist")
    out = []
    for name in sorted(os.listdir(src)):
        folder = os.path.join(src, name)
        if os.path.isdir(folder) and os.path.isfile(os.path.join(folder, f"{name}_labels_metadata.json")):
            out.append((name, folder))
    if not out:
        raise TrainingError(
            f"'{src}' holds no BigEarthNet patch folder (<name>/<name>_labels_metadata.json with "
            "<name>_B01.tif ... <name>_B12.tif): give the folder of the extracted BigEarthNet-S2 "
            "archive (BigEarthNet-v1.0)"
        )
    return out


def _read_meta(name, folder):
    path = os.path.join(folder, f"{name}_labels_metadata.json")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise TrainingError(f"patch '{name}': cannot read {os.path.basename(path)}: {e}")
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list):
        raise TrainingError(f"patch '{name}': {os.path.basename(path)} has no 'labels' list")
    return meta


def _footprint(name, meta, band_file):
    """(ring, crs WKT, ulx, uly) from the metadata's coordinates/projection, else from a band's GeoTIFF."""
    c = meta.get("coordinates")
    wkt = meta.get("projection") or ""
    if isinstance(c, dict) and all(isinstance(c.get(k), (int, float)) for k in ("ulx", "uly", "lrx", "lry")):
        x0, y0, x1, y1 = float(c["ulx"]), float(c["uly"]), float(c["lrx"]), float(c["lry"])
    else:
        import rasterio

        with rasterio.open(band_file) as ds:
            x0, y1, x1, y0 = ds.bounds.left, ds.bounds.bottom, ds.bounds.right, ds.bounds.top
            wkt = wkt or (ds.crs.to_wkt() if ds.crs else "")
    if not wkt:
        import rasterio

        with rasterio.open(band_file) as ds:
            wkt = ds.crs.to_wkt() if ds.crs else ""
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], wkt, x0, y0


def _load(name, folder, bands, p, target):
    """(image (C, p, p) uint16 on the 10 m grid, target) of one patch (a top-level function: worker processes
    of ``--workers`` can run it)."""
    import rasterio

    img = np.empty((len(bands), p, p), np.uint16)
    for i, b in enumerate(bands):
        path = os.path.join(folder, f"{name}_{b}.tif")
        want = p // (BAND_RES[b] // 10)
        try:
            with rasterio.open(path) as ds:
                if ds.count < 1 or (ds.height, ds.width) != (want, want):
                    raise TrainingError(
                        f"patch '{name}': band {b} is {ds.width} x {ds.height} pixels, expected {want} x {want} "
                        f"(a {BAND_RES[b]} m band of a {p} x {p} patch at 10 m): the patch is not a "
                        "BigEarthNet-S2 patch of this archive's size; remove it or list it in --exclude"
                    )
                a = ds.read(1)
        except rasterio.errors.RasterioIOError as e:
            raise TrainingError(f"patch '{name}': cannot read band {b} ({os.path.basename(path)}): {e}")
        if a.dtype.kind not in "ui" or (a.size and (a.min() < 0 or a.max() > 65535)):
            raise TrainingError(f"patch '{name}': band {b} is {a.dtype}, expected integer digital numbers (uint16)")
        img[i] = upsample_bilinear(a.astype(np.uint16), p // want) if want != p else a
    return img, target


def _target(name, meta, table, index, nomenclature_n):
    """The multi-hot target of a patch's labels in the class table (labels outside a 19-class nomenclature are
    dropped; a label outside the 43 classes is refused)."""
    target = np.zeros(len(table), np.uint8)
    for lab in meta["labels"]:
        c = clc_code(lab, name)
        if c in index:
            target[index[c]] = 1
        elif nomenclature_n == 43:
            raise TrainingError(f"patch '{name}': label '{lab}' (CLC {c}) is not one of the 43 BigEarthNet classes")
    return target


def _read_patches(folders, bands, table, index, nomenclature_n, block_size):
    """Pass 1 over the patch folders: metadata, labels, band files, the size of the first patch (errors before
    anything is written). Returns (a PatchRecord per patch with a class, the count of patches without one, the
    patch size in 10 m pixels)."""
    p: Any = None  # the patch size, from the first patch
    records, no_label = [], 0
    for name, folder in folders:
        missing = [b for b in bands if not os.path.isfile(os.path.join(folder, f"{name}_{b}.tif"))]
        if missing:
            raise TrainingError(
                f"patch '{name}': band file(s) {', '.join(f'{name}_{b}.tif' for b in missing)} missing in '{folder}'"
            )
        meta = _read_meta(name, folder)
        target = _target(name, meta, table, index, nomenclature_n)
        if not target.any():
            no_label += 1
            continue
        import rasterio

        try:
            if p is None:
                ref = min(bands, key=lambda b: BAND_RES[b])  # the finest band imported
                with rasterio.open(os.path.join(folder, f"{name}_{ref}.tif")) as ds:
                    p = ds.height * (BAND_RES[ref] // 10)
                if any(p % (BAND_RES[b] // 10) for b in bands):
                    raise TrainingError(f"patch '{name}': {p} pixels at 10 m cannot hold whole 20 m / 60 m pixels")
            ring, wkt, x0, y0 = _footprint(name, meta, os.path.join(folder, f"{name}_{bands[0]}.tif"))
        except rasterio.errors.RasterioIOError as e:
            raise TrainingError(f"patch '{name}': cannot read its GeoTIFFs: {e}")
        names = "; ".join(table[i]["name"] for i in np.nonzero(target)[0])
        records.append(
            PatchRecord(
                name,
                ring,
                wkt,
                block_of(wkt, x0, y0, block_size * p * 10.0),
                names,
                str(meta.get("acquisition_date", "")),
                functools.partial(_load, name, folder, bands, p, target),
            )
        )
    return records, no_label, p


def import_bigearthnet(
    src: str,
    out: str,
    nomenclature_n: int = 43,
    bands: Optional[Sequence[str]] = None,
    exclude: Optional[str] = None,
    options: Optional[ImportOptions] = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Import the BigEarthNet-S2 patch folders under ``src`` into the dataset folder ``out``; returns the
    manifest. ``exclude``: a file listing patch names to leave out (e.g. BigEarthNet's lists of patches covered by
    seasonal snow or clouds and shadows). ``options``: the split and writing options
    (:class:`~.common.ImportOptions`)."""
    options = options or ImportOptions()
    block_size = options.block_size
    bands = list(bands or BANDS)
    bad = [b for b in bands if b not in BAND_RES]
    if bad or len(set(bands)) != len(bands):
        raise TrainingError(f"--bands {','.join(bands)}: BigEarthNet-S2 bands are {', '.join(BANDS)} (each once)")
    table, index = nomenclature(int(nomenclature_n))
    skip = read_list(exclude)
    folders = [(n, f) for n, f in _patch_folders(src) if n not in skip]
    if not folders:
        raise TrainingError(f"every patch folder of '{src}' is listed in --exclude: nothing to import")
    records, no_label, p = _read_patches(folders, bands, table, index, int(nomenclature_n), block_size)
    if not records:
        raise TrainingError(f"no patch of '{src}' has a label of the {nomenclature_n}-class nomenclature")
    log(
        f"BigEarthNet-S2: {len(records)} patches of {p} x {p} pixels at 10 m, bands {', '.join(bands)}, "
        f"{nomenclature_n}-class nomenclature"
        + (f"; {no_label} patches without a class of it skipped" if no_label else "")
        + (f"; {len(skip)} names in --exclude" if skip else "")
    )
    extra = {
        "resolution_m": 10.0,
        "source": {
            "format": "BigEarthNet-S2 v1.0",
            "folder": os.path.abspath(src),
            "nomenclature": int(nomenclature_n),
            "resampling": "bilinear to 10 m (20 m, 60 m bands)",
            "skipped_without_label": no_label,
            "excluded": len(skip),
        },
        "split_rule": {"block_size_patches": int(block_size), "block_size_m": block_size * p * 10.0},
    }
    spec = DatasetSpec(tuple(bands), p, tuple(table), task="multilabel", with_labels=False)
    return write_patch_dataset(out, records, spec, options, extra, log)
