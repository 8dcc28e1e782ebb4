"""Image + label (+ mask) rasters -> training dataset folder with a spatial split (QGIS env only).

* Patches of ``patch_size`` pixels start every ``stride`` pixels from the image's top-left corner; a patch
  never crosses the raster edge (the last partial row/column of patches is left out).
* Label and mask rasters on another grid are warped to the image grid (nearest neighbour).
* Mask: nonzero = valid, 0 = invalid (clouds, nodata), as written by fetchsentinel2/importsafe. Pixels where
  any image band equals its nodata value are invalid too. Labels of invalid pixels are stored as 0 (no label),
  so training that ignores label 0 needs no mask; the mask is stored as well (masks-*.npy, 1 = valid).
* A patch is kept when its labelled fraction (valid pixels with a label > 0) is at least ``min_labelled`` and
  its invalid fraction at most ``max_masked``.
* Split: the image is cut into square blocks of ``block_size`` x ``block_size`` patches; whole blocks go to
  train, val or test (shuffled with ``seed``, filled until each split reaches its fraction of the patches),
  so no val/test patch shares a pixel with a train patch. With a stride below the patch size, patches that
  straddle two blocks are dropped. ``k_folds`` >= 2 gives every train block a fold id 0..k-1 (val/test: -1)
  for cross-validation.
* ``max_patches`` caps the number of patches (per split, in proportion); ``class_aware`` then prefers
  patches holding rare classes (weights = sum over classes of the patch's pixels / the class's pixels),
  otherwise the patches are drawn uniformly (seeded).
* The image is read in row strips of one patch height: memory does not grow with the raster.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
from osgeo import gdal, ogr, osr

from .. import raster
from ..contract import clc
from ..contract.dataset import FOOTPRINTS, DatasetWriter
from ..contract.errors import SatClassifyError
from ..contract.feedback import Canceled

gdal.UseExceptions()
ogr.UseExceptions()

SPLITS = ("train", "val", "test")
INT_TYPES = {gdal.GDT_Byte: (0, 255), gdal.GDT_UInt16: (0, 65535), gdal.GDT_Int16: (-32768, 32767),
             gdal.GDT_UInt32: (0, 2 ** 32 - 1), gdal.GDT_Int32: (-2 ** 31, 2 ** 31 - 1)}


@dataclass
class PatchResult:
    folder: str
    footprints: str
    counts: Dict[str, int]
    manifest: dict
    classes: List[dict] = field(default_factory=list)


def classes_from_raster(ds: gdal.Dataset) -> List[clc.ClassInfo]:
    """Class table from a class raster's category names and colour table; CLC codes when the names match."""
    names = raster.category_names(ds)
    band = ds.GetRasterBand(1)
    ct = band.GetColorTable()
    out = []
    for v, name in enumerate(names):
        if v == 0 or not name:
            continue
        if ct is not None and v < ct.GetCount():
            r, g, b = ct.GetColorEntry(v)[:3]
            color = f"#{r:02x}{g:02x}{b:02x}"
        else:
            color = clc.default_palette(v)
        out.append(clc.ClassInfo(v, str(v), name, color))
    for level in (3, 2, 1):  # a CLC raster written by rasterizeclc: keep the CLC codes
        table = {c.value: c for c in clc.classes(level)}
        if out and all(c.value in table and table[c.value].name == c.name for c in out):
            return [clc.ClassInfo(c.value, table[c.value].code, c.name, c.color) for c in out]
    return out


def _open_aligned(path: str, what: str, image: gdal.Dataset, log) -> gdal.Dataset:
    ds = raster.open_raster(path, what)
    if ds.RasterCount != 1:
        log(f"{what} '{path}' has {ds.RasterCount} bands: using band 1")
    if not raster.same_grid(ds, image):
        if not ds.GetProjection() and image.GetProjection():
            raise SatClassifyError(f"{what} '{path}' has no CRS and is not on the image grid: "
                                   "assign its CRS or rasterize it on the image grid")
        log(f"{what} is on another grid: warped to the image grid (nearest neighbour)")
        ds = raster.warp_to_grid(ds, image, resample="near")
    return ds


def build_patches(image: str, labels: str, output_folder: str, mask: Optional[str] = None, patch_size: int = 256,
                  stride: int = 0, min_labelled: float = 0.5, max_masked: float = 0.0, block_size: int = 4,
                  val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0, k_folds: int = 0,
                  clc_level: int = 0, max_patches: int = 0, class_aware: bool = False, shard_size: int = 256,
                  overwrite: bool = False, progress: Optional[Callable[[float], None]] = None,
                  is_canceled: Optional[Callable[[], bool]] = None,
                  log: Optional[Callable[[str], None]] = None) -> PatchResult:
    log = log or (lambda m: None)
    progress = progress or (lambda f: None)
    is_canceled = is_canceled or (lambda: False)
    p = int(patch_size)
    stride = int(stride) or p
    if p < 8:
        raise SatClassifyError(f"patch size must be at least 8 pixels, not {patch_size}")
    if stride < 1:
        raise SatClassifyError(f"stride must be positive, not {stride}")
    if not 0.0 <= min_labelled <= 1.0 or not 0.0 <= max_masked <= 1.0:
        raise SatClassifyError("MIN_LABELLED and MAX_MASKED are fractions between 0 and 1")
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1.0:
        raise SatClassifyError(f"val fraction {val_fraction} + test fraction {test_fraction} must be below 1 "
                               "(the rest is train)")
    if int(block_size) < 1:
        raise SatClassifyError(f"block size must be at least 1 patch, not {block_size}")
    if int(k_folds) == 1 or int(k_folds) < 0:
        raise SatClassifyError(f"K_FOLDS must be 0 (no folds) or at least 2, not {k_folds}")
    if not output_folder:
        raise SatClassifyError("no output folder given")

    img = raster.open_raster(image, "image")
    dt = img.GetRasterBand(1).DataType
    if dt not in INT_TYPES:
        raise SatClassifyError(f"image '{image}' is {gdal.GetDataTypeName(dt)}: datasets store uint16 digital "
                               "numbers (reflectance x 10000, as written by fetchsentinel2/importsafe); "
                               "convert the image first")
    w, h, gt, wkt = raster.grid_of(img)
    if w < p or h < p:
        raise SatClassifyError(f"image is {w} x {h} pixels, smaller than one {p} x {p} patch: "
                               "choose a smaller patch size")
    names = raster.band_names(img)
    bands = [n or f"band{i + 1}" for i, n in enumerate(names)]
    if len(set(bands)) != len(bands):
        bands = [f"band{i + 1}" for i in range(len(bands))]
        log("WARNING: the image's band names are not unique: bands are named band1, band2, ...")
    nodatas = [img.GetRasterBand(i + 1).GetNoDataValue() for i in range(img.RasterCount)]
    lab_ds = _open_aligned(labels, "label raster", img, log)
    lab_raw = raster.open_raster(labels, "label raster")
    ldt = lab_raw.GetRasterBand(1).DataType
    if ldt not in INT_TYPES:
        raise SatClassifyError(f"label raster '{labels}' is {gdal.GetDataTypeName(ldt)}: labels must be integer "
                               "class values 0..255 (0 = no label), e.g. the output of rasterizeclc")
    if clc_level:
        classes = clc.classes(int(clc_level))
    else:
        classes = classes_from_raster(lab_raw)
        if not classes:
            raise SatClassifyError(f"label raster '{labels}' has no class names (category names / colour table): "
                                   "choose a CLC level for its classes, or write it with rasterizeclc")
    lab_raw = None
    values = [c.value for c in classes]
    allowed = np.zeros(256, bool)
    allowed[values] = True
    allowed[0] = True
    mask_ds = _open_aligned(mask, "mask raster", img, log) if mask else None
    with_masks = mask_ds is not None or any(nd is not None for nd in nodatas)
    lab_band = lab_ds.GetRasterBand(1)
    mask_band = mask_ds.GetRasterBand(1) if mask_ds is not None else None

    # -- pass 1: labels (+ mask) -> candidate patches ------------------------------------------------
    bpx = int(block_size) * p
    rows0 = list(range(0, h - p + 1, stride))
    cols0 = list(range(0, w - p + 1, stride))
    nvals = len(values)
    vindex = np.zeros(256, np.int64)  # class value -> column in the histograms (0 = no label)
    vindex[values] = np.arange(1, nvals + 1)
    cand_rc, cand_hist, cand_lab, cand_masked = [], [], [], []
    straddle = 0
    below = 0
    for i, r0 in enumerate(rows0):
        if is_canceled():
            raise Canceled("cancelled by the user: the dataset folder was not written")
        lab = _read_labels(lab_band, r0, w, p, allowed, labels)
        valid = mask_band.ReadAsArray(0, r0, w, p) != 0 if mask_band is not None else None
        lab_ds.FlushCache()
        if mask_ds is not None:
            mask_ds.FlushCache()
        if valid is not None:
            lab = np.where(valid, lab, 0)
        for c0 in cols0:
            if r0 // bpx != (r0 + p - 1) // bpx or c0 // bpx != (c0 + p - 1) // bpx:
                straddle += 1
                continue
            pl = lab[:, c0:c0 + p]
            hist = np.bincount(vindex[pl].ravel(), minlength=nvals + 1)
            labelled = 1.0 - hist[0] / float(p * p)
            masked = 0.0 if valid is None else 1.0 - valid[:, c0:c0 + p].mean()
            if labelled < min_labelled or masked > max_masked:
                below += 1
                continue
            cand_rc.append((r0, c0))
            cand_hist.append(hist)
            cand_lab.append(labelled)
            cand_masked.append(masked)
        progress(0.3 * (i + 1) / len(rows0))
    ncand = len(cand_rc)
    log(f"{len(rows0) * len(cols0)} patch positions ({p} px, stride {stride}): {ncand} kept, {below} below "
        f"MIN_LABELLED {min_labelled} or above MAX_MASKED {max_masked}"
        + (f", {straddle} straddling split blocks (stride < patch size)" if straddle else ""))
    if ncand == 0:
        raise SatClassifyError(f"no patch has at least {min_labelled:.0%} labelled pixels"
                               + (f" and at most {max_masked:.0%} masked pixels" if mask_ds is not None else "")
                               + ": lower MIN_LABELLED / raise MAX_MASKED, or check that the labels overlap the image")
    hists = np.array(cand_hist, np.int64)

    # -- split by blocks -------------------------------------------------------------------------
    block_of = [(r0 // bpx, c0 // bpx) for r0, c0 in cand_rc]
    blocks = sorted(set(block_of))
    rng = np.random.default_rng(int(seed))
    order = [blocks[i] for i in rng.permutation(len(blocks))]
    per_block: Dict[tuple, List[int]] = {}
    for idx, b in enumerate(block_of):
        per_block.setdefault(b, []).append(idx)
    target = {"val": val_fraction * ncand, "test": test_fraction * ncand}
    got = {"train": 0, "val": 0, "test": 0}
    block_split: Dict[tuple, str] = {}
    for b in order:
        n = len(per_block[b])
        if got["val"] < target["val"] and target["val"] > 0:
            s = "val"
        elif got["test"] < target["test"] and target["test"] > 0:
            s = "test"
        else:
            s = "train"
        block_split[b] = s
        got[s] += n
    if got["train"] == 0:
        raise SatClassifyError(f"only {len(blocks)} spatial block(s) of {block_size} x {block_size} patches hold "
                               "patches, none is left for training: lower BLOCK_SIZE or PATCH_SIZE, or the val/test "
                               "fractions")
    train_blocks = [b for b in order if block_split[b] == "train"]
    k = int(k_folds)
    if k >= 2 and len(train_blocks) < k:
        raise SatClassifyError(f"{k} folds need at least {k} train blocks, there are {len(train_blocks)}: lower "
                               "K_FOLDS or BLOCK_SIZE")
    block_fold = {b: (i % k if k >= 2 else -1) for i, b in enumerate(train_blocks)}
    split_of = np.array([SPLITS.index(block_split[b]) for b in block_of])
    log(f"{len(blocks)} spatial blocks of {block_size} x {block_size} patches ({bpx} px): "
        + ", ".join(f"{s} {sum(1 for b in blocks if block_split[b] == s)}" for s in SPLITS))

    # -- optional sampling -----------------------------------------------------------------------
    keep = np.ones(ncand, bool)
    if max_patches and ncand > int(max_patches):
        keep[:] = False
        class_px = hists[:, 1:].sum(axis=0).astype(np.float64)
        for si in range(3):
            idx = np.nonzero(split_of == si)[0]
            if idx.size == 0:
                continue
            quota = max(1, int(round(int(max_patches) * idx.size / ncand)))
            if quota >= idx.size:
                keep[idx] = True
                continue
            if class_aware:
                wts = (hists[idx, 1:] / np.maximum(class_px, 1.0)).sum(axis=1) + 1e-12
            else:
                wts = np.ones(idx.size)
            keys = rng.random(idx.size) ** (1.0 / wts)
            keep[idx[np.argsort(-keys)[:quota]]] = True
        log(f"sampling ({'class-aware' if class_aware else 'uniform'}): {int(keep.sum())} of {ncand} patches kept "
            f"(MAX_PATCHES {max_patches})")

    # -- pass 2: image strips -> shards ----------------------------------------------------------
    sel = [i for i in range(ncand) if keep[i]]
    by_row: Dict[int, List[int]] = {}
    for i in sel:
        by_row.setdefault(cand_rc[i][0], []).append(i)
    out_folder = os.path.abspath(output_folder)
    records = []
    dropped_nodata = 0
    with DatasetWriter(out_folder, bands, p, classes, crs_wkt=wkt, shard_size=shard_size, with_masks=with_masks,
                       overwrite=overwrite, splits=SPLITS, expected_patches=len(sel)) as writer:
        for n_row, (r0, idxs) in enumerate(sorted(by_row.items())):
            if is_canceled():
                raise Canceled("cancelled by the user: the dataset folder was not written")
            strip = img.ReadAsArray(0, r0, w, p)
            img.FlushCache()  # drop the strip's blocks from GDAL's cache: memory stays flat
            if strip.ndim == 2:
                strip = strip[None]
            lab = _read_labels(lab_band, r0, w, p, allowed, labels)
            valid = np.ones((p, w), bool)
            if mask_band is not None:
                valid &= mask_band.ReadAsArray(0, r0, w, p) != 0
            for b, nd in enumerate(nodatas):
                if nd is not None:
                    valid &= strip[b] != nd
            for i in sorted(idxs, key=lambda j: cand_rc[j][1]):
                c0 = cand_rc[i][1]
                pim = strip[:, :, c0:c0 + p]
                if pim.dtype != np.uint16:
                    if pim.size and (pim.min() < 0 or pim.max() > 65535):
                        raise SatClassifyError(
                            f"image '{image}' holds values {pim.min()}..{pim.max()} near row {r0}, column {c0}: "
                            "datasets store uint16 digital numbers 0..65535")
                    pim = pim.astype(np.uint16)
                pv = valid[:, c0:c0 + p]
                pl = np.where(pv, lab[:, c0:c0 + p], 0).astype(np.uint8)
                masked = 1.0 - pv.mean()
                labelled = (pl > 0).mean()
                if masked > max_masked or labelled < min_labelled:
                    dropped_nodata += 1
                    continue
                split = SPLITS[split_of[i]]
                shard, pos = writer.add(split, pim, pl, pv.astype(np.uint8) if with_masks else None)
                hist = np.bincount(vindex[pl].ravel(), minlength=nvals + 1)
                records.append((split, block_fold.get(block_of[i], -1), shard, pos, r0, c0, labelled, masked,
                                hist[1:] / float(p * p)))
            progress(0.3 + 0.65 * (n_row + 1) / max(1, len(by_row)))
        if dropped_nodata:
            log(f"{dropped_nodata} patches dropped because image nodata pixels exceed MAX_MASKED or leave too "
                "few labelled pixels")
        counts = writer.counts()
        if counts.get("train", 0) == 0:
            raise SatClassifyError("no train patch is left (image nodata): check the image and MAX_MASKED")
        _write_footprints(writer.stage_path(FOOTPRINTS), records, classes, gt, wkt, p)
        positions = {s: [[r[4], r[5]] for r in records if r[0] == s] for s in SPLITS}
        folds = [r[1] for r in records if r[0] == "train"]
        extra = {
            "source_files": {"image": os.path.abspath(image), "labels": os.path.abspath(labels),
                             "mask": os.path.abspath(mask) if mask else None},
            "split_rule": {"type": "spatial_blocks", "block_size_patches": int(block_size),
                           "block_size_px": bpx, "val_fraction": val_fraction, "test_fraction": test_fraction,
                           "seed": int(seed)},
            "stride": stride, "min_labelled": min_labelled, "max_masked": max_masked,
            "k_folds": k if k >= 2 else 0, "folds": {"train": folds},
            "positions": positions, "geotransform": list(gt), "image_size": [w, h],
            "mask_rule": "masks-*.npy: 1 = valid; labels are 0 where invalid",
            "sampling": {"max_patches": int(max_patches), "class_aware": bool(class_aware)},
        }
        manifest = writer.close(extra=extra)  # shards, footprints and manifest move in together
    present = [c for c in classes if any(manifest["splits"][s]["class_counts"][str(c.value)] for s in SPLITS)]
    if len(present) == 1:
        log(f"WARNING: the patches hold a single class ({present[0].value} {present[0].name}): a model trained on "
            "them cannot learn to tell classes apart. Check the label raster (its extent, the CLC level, MASK) or "
            "cover an area with several land-cover classes")
    for s in SPLITS:
        info = manifest["splits"][s]
        total = sum(info["class_counts"].values()) or 1
        hist_txt = ", ".join(f"{c.name} {100.0 * info['class_counts'][str(c.value)] / total:.1f}%"
                             for c in classes if info["class_counts"][str(c.value)])
        log(f"{s}: {info['patches']} patches" + (f"; classes: {hist_txt}" if info["patches"] else ""))
    progress(1.0)
    return PatchResult(out_folder, os.path.join(out_folder, FOOTPRINTS),
                       {s: manifest["splits"][s]["patches"] for s in SPLITS}, manifest,
                       [c.to_dict() for c in classes])


def _read_labels(band, r0, w, p, allowed, path) -> np.ndarray:
    lab = band.ReadAsArray(0, r0, w, p)
    if lab.dtype != np.uint8:
        lab = lab.astype(np.int64)
    bad = ~allowed[lab] if lab.dtype == np.uint8 else ((lab < 0) | (lab > 255) | ~allowed[np.clip(lab, 0, 255)])
    if bad.any():
        v = int(lab[bad][0])
        raise SatClassifyError(f"label raster '{path}' holds value {v} (row {r0 + int(np.nonzero(bad)[0][0])}), "
                               "which is not in its class table: give the label raster class names, "
                               "or choose the matching CLC level")
    return lab.astype(np.uint8)


def _write_footprints(path, records, classes, gt, wkt, p):
    drv = ogr.GetDriverByName("GPKG")
    ds = drv.CreateDataSource(path)
    srs = None
    if wkt:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(wkt)
    lyr = ds.CreateLayer("patches", srs, ogr.wkbPolygon)
    for name, t in (("split", ogr.OFTString), ("fold", ogr.OFTInteger), ("shard", ogr.OFTInteger),
                    ("index", ogr.OFTInteger), ("row", ogr.OFTInteger), ("col", ogr.OFTInteger),
                    ("labelled", ogr.OFTReal), ("masked", ogr.OFTReal)):
        lyr.CreateField(ogr.FieldDefn(name, t))
    for c in classes:
        fd = ogr.FieldDefn(f"frac_{c.value}", ogr.OFTReal)
        fd.SetAlternativeName(c.name)
        lyr.CreateField(fd)
    defn = lyr.GetLayerDefn()
    lyr.StartTransaction()
    for split, fold, shard, pos, r0, c0, labelled, masked, fr in records:
        x0, y0 = gt[0] + c0 * gt[1], gt[3] + r0 * gt[5]
        x1, y1 = gt[0] + (c0 + p) * gt[1], gt[3] + (r0 + p) * gt[5]
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):
            ring.AddPoint_2D(x, y)
        poly = ogr.Geometry(ogr.wkbPolygon)
        poly.AddGeometry(ring)
        f = ogr.Feature(defn)
        f.SetGeometryDirectly(poly)
        f.SetField("split", split)
        f.SetField("fold", int(fold))
        f.SetField("shard", int(shard))
        f.SetField("index", int(pos))
        f.SetField("row", int(r0))
        f.SetField("col", int(c0))
        f.SetField("labelled", float(labelled))
        f.SetField("masked", float(masked))
        for c, v in zip(classes, fr):
            f.SetField(f"frac_{c.value}", round(float(v), 6))
        lyr.CreateFeature(f)
    lyr.CommitTransaction()
    ds = None
