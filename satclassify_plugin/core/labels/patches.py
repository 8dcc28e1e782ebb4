"""Image + label (+ mask) rasters -> training dataset folder with a spatial split (QGIS env only).

* Patches of ``patch_size`` pixels start every ``stride`` pixels from the image's top-left corner; a patch
  never crosses the raster edge (the last partial row/column of patches is left out).
* Label and mask rasters on another grid are warped to the image grid (nearest neighbour).
* Mask: nonzero = valid, 0 = invalid (clouds, nodata), as written by fetchsentinel2/importsafe. Pixels where
  any image band equals its nodata value are invalid too. Labels of invalid pixels are stored as 0 (no label),
  so training that ignores label 0 needs no mask; the mask is stored as well (masks-*.npy, 1 = valid).
* A patch is kept when its labelled fraction (valid pixels with a label > 0) is at least ``min_labelled`` and
  its invalid fraction at most ``max_masked``. With ``mask_is_noise`` the mask's nonzero pixels are the invalid ones
  (a noise mask such as rasterizeclc's MIXED raster, used as it is).
* Split: the image is cut into square blocks of ``block_size`` x ``block_size`` patches; whole blocks go to
  train, val or test (shuffled with ``seed``, filled until each split reaches its fraction of the patches),
  so no val/test patch shares a pixel with a train patch. With a stride below the patch size, patches that
  straddle two blocks are dropped. ``k_folds`` >= 2 gives every train block a fold id 0..k-1 (val/test: -1)
  for cross-validation.
* ``max_patches`` caps the number of patches (per split, in proportion); ``class_aware`` then prefers
  patches holding rare classes (weights = sum over classes of the patch's pixels / the class's pixels),
  otherwise the patches are drawn uniformly (seeded).
* The image is read in row strips of one patch height: memory does not grow with the raster.
* Point labels (a label raster of rasterizelabels on points, ``SATCLASSIFY_LABELS=points``, or ``layout="points"``):
  one patch centred on each labelled pixel, its class the patch's one-hot target; a "singlelabel" dataset without
  label shards; val/test patches sharing pixels with a train patch are dropped (:func:`.plan.drop_overlapping`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from osgeo import gdal, ogr

from .. import crs, raster
from ..contract import clc
from ..contract.dataset import FOOTPRINTS, DatasetSpec, DatasetWriter
from ..contract.errors import SatClassifyError
from ..contract.feedback import Canceled, Monitor
from ..contract.timeseries import StackLayout, dataset_entry, parse_stack
from .plan import (
    SPLITS,
    Candidate,
    PatchRecord,
    PatchSettings,
    SplitPlan,
    drop_overlapping,
    patch_targets,
    plan_splits,
)

gdal.UseExceptions()
ogr.UseExceptions()

CANCELED = "cancelled by the user: the dataset folder was not written"
INT_TYPES = {
    gdal.GDT_Byte: (0, 255),
    gdal.GDT_UInt16: (0, 65535),
    gdal.GDT_Int16: (-32768, 32767),
    gdal.GDT_UInt32: (0, 2**32 - 1),
    gdal.GDT_Int32: (-(2**31), 2**31 - 1),
}


@dataclass
class PatchResult:
    folder: str
    footprints: str
    counts: Dict[str, int]
    manifest: dict
    classes: List[dict] = field(default_factory=list)


def _open_aligned(path: str, what: str, image: gdal.Dataset, log) -> gdal.Dataset:
    ds = raster.open_raster(path, what)
    if ds.RasterCount != 1:
        log(f"{what} '{path}' has {ds.RasterCount} bands: using band 1")
    if not raster.same_grid(ds, image):
        if not ds.GetProjection() and image.GetProjection():
            raise SatClassifyError(
                f"{what} '{path}' has no CRS and is not on the image grid: "
                "assign its CRS or rasterize it on the image grid"
            )
        log(f"{what} is on another grid: warped to the image grid (nearest neighbour)")
        ds = raster.warp_to_grid(ds, image, resample="near")
    return ds


def build_patches(
    image: str,
    labels: str,
    output_folder: str,
    mask: Optional[str] = None,
    settings: Optional[PatchSettings] = None,
    overwrite: bool = False,
    monitor: Optional[Monitor] = None,
    **options,
) -> PatchResult:
    """Write the dataset folder. ``settings`` (or the same names as keywords, e.g. ``patch_size=64``) are the
    user's choices (:class:`~.plan.PatchSettings`)."""
    monitor = monitor or Monitor()
    log = monitor.info
    s = settings or PatchSettings(**options)
    if not output_folder:
        raise SatClassifyError("no output folder given")
    src = _Sources.open(image, labels, mask, s, log)
    if src.point_labels:
        candidates = _point_candidates(src, s, monitor.sub(0.0, 0.3))
    else:
        candidates = _candidates(src, s, monitor.sub(0.0, 0.3))
    plan = plan_splits(candidates, s)
    for note in plan.notes:
        log(note)
    if src.point_labels:
        n = drop_overlapping(candidates, plan, s.patch_size)
        if n:
            log(f"{n} val/test patches dropped: they share pixels with a train patch (points closer than a patch)")
    return _write_dataset(src, s, candidates, plan, output_folder, overwrite, monitor)


@dataclass
class _Sources:
    """The opened rasters of one run (label and mask on the image grid) and the class table."""

    image: str
    labels: str
    mask: Optional[str]
    img: gdal.Dataset
    lab_ds: gdal.Dataset
    mask_ds: Optional[gdal.Dataset]
    bands: List[str]
    nodatas: List[Optional[float]]
    classes: List[clc.ClassInfo]
    allowed: np.ndarray  # (256,) bool: label values of the table (and 0)
    vindex: np.ndarray  # (256,) class value -> histogram column (0 = no label)
    patch_size: int
    layout: Optional[StackLayout] = None  # a multi-date stack (core.contract.timeseries): validity from VALID@<date>
    mask_is_noise: bool = False  # the mask's nonzero pixels are the ones to drop (a noise mask such as MIXED)
    point_labels: bool = False  # one patch centred on each labelled pixel, a patch-level target (singlelabel)
    class_table: Optional[dict] = None  # where own labels' class table came from (rasterizelabels' metadata)

    @property
    def grid(self):
        return raster.grid_of(self.img)

    @property
    def with_masks(self) -> bool:
        return self.mask_ds is not None or any(nd is not None for nd in self.nodatas) or self.layout is not None

    def read_labels(self, r0: int) -> np.ndarray:
        w = self.img.RasterXSize
        p = self.patch_size
        lab = _read_labels(self.lab_ds.GetRasterBand(1), r0, w, p, self.allowed, self.labels)
        self.lab_ds.FlushCache()
        return lab

    def read_valid(self, r0: int, c0: int = 0, width: Optional[int] = None) -> Optional[np.ndarray]:
        if self.mask_ds is None:
            return None
        band = self.mask_ds.GetRasterBand(1)
        m = band.ReadAsArray(c0, r0, self.img.RasterXSize if width is None else width, self.patch_size)
        self.mask_ds.FlushCache()
        # a noise mask (rasterizeclc's MIXED: 0 = pure, its nodata value) keeps its zero pixels
        return (m == 0) if self.mask_is_noise else (m != 0)

    @classmethod
    def open(cls, image: str, labels: str, mask: Optional[str], s: PatchSettings, log) -> "_Sources":
        p = s.patch_size
        img = raster.open_raster(image, "image")
        dt = img.GetRasterBand(1).DataType
        if dt not in INT_TYPES:
            raise SatClassifyError(
                f"image '{image}' is {gdal.GetDataTypeName(dt)}: datasets store uint16 digital "
                "numbers (reflectance x 10000, as written by fetchsentinel2/importsafe); "
                "convert the image first"
            )
        w, h = img.RasterXSize, img.RasterYSize
        if w < p or h < p:
            raise SatClassifyError(
                f"image is {w} x {h} pixels, smaller than one {p} x {p} patch: choose a smaller patch size"
            )
        bands = [n or f"band{i + 1}" for i, n in enumerate(raster.band_names(img))]
        if len(set(bands)) != len(bands):
            bands = [f"band{i + 1}" for i in range(len(bands))]
            log("WARNING: the image's band names are not unique: bands are named band1, band2, ...")
        nodatas = [img.GetRasterBand(i + 1).GetNoDataValue() for i in range(img.RasterCount)]
        layout = parse_stack(bands)  # a multi-date stack: a pixel is valid when at least one date is
        if layout is not None:
            nodatas = [None] * len(bands)  # a cloudy date is 0 there, which its VALID band says
            log(
                f"multi-date stack: {layout.num_dates} dates ({', '.join(layout.dates)}) of {', '.join(layout.bands)}"
                " + VALID; images (N, T*(C+1), H, W); a pixel is labelled when it is valid on at least one date"
            )
        lab_ds = _open_aligned(labels, "label raster", img, log)
        lab_raw = raster.open_raster(labels, "label raster")
        ldt = lab_raw.GetRasterBand(1).DataType
        if ldt not in INT_TYPES:
            raise SatClassifyError(
                f"label raster '{labels}' is {gdal.GetDataTypeName(ldt)}: labels must be "
                "integer class values 0..255 (0 = no label), e.g. the output of rasterizeclc"
            )
        if s.clc_level:
            classes = clc.classes(s.clc_level)
        else:
            classes = raster.classes_from_raster(lab_raw)
            if not classes:
                raise SatClassifyError(
                    f"label raster '{labels}' has no class names (category names / colour "
                    "table): choose a CLC level for its classes, or write it with rasterizeclc"
                )
        point_labels = s.layout == "points" or (
            s.layout == "auto" and lab_raw.GetMetadataItem("SATCLASSIFY_LABELS") == "points"
        )
        if point_labels:
            log(
                "point labels: one patch centred on each labelled pixel, its class the patch's label (a patch-label "
                "dataset, task singlelabel)"
                + (" (the label raster holds point labels: rasterizelabels on points)" if s.layout == "auto" else "")
            )
            if s.target_fraction > 0:
                raise SatClassifyError(
                    "TARGET_FRACTION makes multi-label targets from pixel labels: with point labels "
                    "each patch has its point's class already; set it to 0"
                )
        table_info = None
        if not s.clc_level and lab_raw.GetMetadataItem("SATCLASSIFY_CLASS_TABLE"):
            try:
                table_info = json.loads(lab_raw.GetMetadataItem("SATCLASSIFY_CLASS_TABLE"))
            except ValueError:
                table_info = None
        lab_raw = None
        values = [c.value for c in classes]
        allowed = np.zeros(256, bool)
        allowed[values] = True
        allowed[0] = True
        vindex = np.zeros(256, np.int64)
        vindex[values] = np.arange(1, len(values) + 1)
        mask_ds = _open_aligned(mask, "mask raster", img, log) if mask else None
        return cls(
            image,
            labels,
            mask,
            img,
            lab_ds,
            mask_ds,
            bands,
            nodatas,
            classes,
            allowed,
            vindex,
            p,
            layout,
            bool(s.mask_is_noise),
            point_labels,
            table_info,
        )

    def histogram(self, patch_labels: np.ndarray) -> np.ndarray:
        return np.bincount(self.vindex[patch_labels].ravel(), minlength=len(self.classes) + 1)


def _candidates(src: _Sources, s: PatchSettings, monitor: Monitor) -> List[Candidate]:
    """Pass 1: labels (+ mask), one strip of patch rows at a time -> the positions worth a patch."""
    p = s.patch_size
    rows0, cols0 = s.positions(src.img.RasterXSize, src.img.RasterYSize)
    out: List[Candidate] = []
    straddle = below = 0
    for i, r0 in enumerate(rows0):
        if monitor.canceled():
            raise Canceled(CANCELED)
        lab = src.read_labels(r0)
        valid = src.read_valid(r0)
        if valid is not None:
            lab = np.where(valid, lab, 0)
        for c0 in cols0:
            if s.straddles(r0, c0):
                straddle += 1
                continue
            hist = src.histogram(lab[:, c0 : c0 + p])
            labelled = 1.0 - hist[0] / float(p * p)
            masked = 0.0 if valid is None else 1.0 - valid[:, c0 : c0 + p].mean()
            if labelled < s.min_labelled or masked > s.max_masked:
                below += 1
                continue
            out.append(Candidate(r0, c0, hist, labelled, masked))
        monitor.progress((i + 1) / len(rows0))
    log = monitor.info
    log(
        f"{len(rows0) * len(cols0)} patch positions ({p} px, stride {s.stride}): {len(out)} kept, {below} below "
        f"MIN_LABELLED {s.min_labelled} or above MAX_MASKED {s.max_masked}"
        + (f", {straddle} straddling split blocks (stride < patch size)" if straddle else "")
    )
    if not out:
        raise SatClassifyError(
            f"no patch has at least {s.min_labelled:.0%} labelled pixels"
            + (f" and at most {s.max_masked:.0%} masked pixels" if src.mask_ds is not None else "")
            + ": lower MIN_LABELLED / raise MAX_MASKED, or check that the labels overlap the image"
        )
    return out


def _point_candidates(src: _Sources, s: PatchSettings, monitor: Monitor) -> List[Candidate]:
    """Pass 1 for point labels: every labelled pixel -> the patch centred on it (pixel (p // 2, p // 2) of the patch),
    kept when it lies wholly inside the raster and its masked fraction (MASK) is at most MAX_MASKED."""
    p = s.patch_size
    half = p // 2
    w, h = src.img.RasterXSize, src.img.RasterYSize
    band = src.lab_ds.GetRasterBand(1)
    rows = max(1, (8 * 2**20) // max(1, w))
    found: List[Tuple[int, int, int]] = []  # (row, column, label) of every labelled pixel
    for y0 in range(0, h, rows):
        if monitor.canceled():
            raise Canceled(CANCELED)
        r = min(rows, h - y0)
        lab = band.ReadAsArray(0, y0, w, r)
        src.lab_ds.FlushCache()
        big = lab.astype(np.int64)
        bad = (big < 0) | (big > 255) | ~src.allowed[np.clip(big, 0, 255)]
        if bad.any():
            raise SatClassifyError(
                f"label raster '{src.labels}' holds value {int(big[bad][0])} (row "
                f"{y0 + int(np.nonzero(bad)[0][0])}), which is not in its class table"
            )
        rr, cc = np.nonzero(lab)
        found.extend(zip((rr + y0).tolist(), cc.tolist(), lab[rr, cc].tolist()))
        monitor.progress(0.5 * (y0 + r) / h)
    out: List[Candidate] = []
    edge = masked_out = 0
    for n, (r, c, v) in enumerate(found):
        r0, c0 = r - half, c - half
        if r0 < 0 or c0 < 0 or r0 + p > h or c0 + p > w:
            edge += 1
            continue
        valid = src.read_valid(r0, c0, p)
        masked = 0.0 if valid is None else 1.0 - valid.mean()
        if masked > s.max_masked:
            masked_out += 1
            continue
        hist = np.zeros(len(src.classes) + 1, np.int64)
        hist[src.vindex[v]] = 1
        out.append(Candidate(r0, c0, hist, 1.0, masked))
        if n % 256 == 0:
            monitor.progress(0.5 + 0.5 * (n + 1) / len(found))
    monitor.info(
        f"{len(found)} labelled pixels (points): {len(out)} patches of {p} px centred on them"
        + (f", {edge} too close to the raster edge for a whole patch" if edge else "")
        + (f", {masked_out} above MAX_MASKED {s.max_masked}" if masked_out else "")
    )
    if not out:
        raise SatClassifyError(
            f"no point label has a whole {p} x {p} patch around it inside the image"
            + (f" with at most {s.max_masked:.0%} masked pixels" if masked_out else "")
            + ": use a smaller PATCH_SIZE, raise MAX_MASKED, or check that the points lie on the "
            "image"
        )
    return out


def _patch_pixels(src: _Sources, strip: np.ndarray, c0: int, r0: int, p: int) -> np.ndarray:
    pim = strip[:, :, c0 : c0 + p]
    if pim.dtype != np.uint16:
        if pim.size and (pim.min() < 0 or pim.max() > 65535):
            raise SatClassifyError(
                f"image '{src.image}' holds values {pim.min()}..{pim.max()} near row {r0}, column {c0}: "
                "datasets store uint16 digital numbers 0..65535"
            )
        pim = pim.astype(np.uint16)
    return pim


def _write_dataset(
    src: _Sources,
    s: PatchSettings,
    candidates: List[Candidate],
    plan: SplitPlan,
    output_folder: str,
    overwrite: bool,
    monitor: Monitor,
) -> PatchResult:
    """Pass 2: image strips -> shards in the staging folder; footprints and manifest; moved in on success."""
    log = monitor.info
    p = s.patch_size
    w, h, gt, wkt = src.grid
    by_row: Dict[int, List[int]] = {}
    for i in plan.selected():
        by_row.setdefault(candidates[i].row, []).append(i)
    out_folder = os.path.abspath(output_folder)
    records: List[PatchRecord] = []
    dropped_nodata = 0
    classes = src.classes
    spec = DatasetSpec(
        tuple(src.bands),
        p,
        tuple(c.to_dict() for c in classes),
        crs_wkt=wkt,
        shard_size=s.shard_size,
        resolution_m=ground_resolution(gt, wkt, w, h, log),
        with_masks=src.with_masks,
        splits=SPLITS,
        task="singlelabel" if src.point_labels else "multilabel" if s.target_fraction > 0 else "segmentation",
        with_labels=not src.point_labels,
    )
    with DatasetWriter(out_folder, spec, overwrite=overwrite, expected_patches=int(plan.keep.sum())) as writer:
        if src.point_labels:
            dropped_nodata = _write_point_patches(src, s, candidates, plan, writer, records, monitor)
        for n_row, (r0, idxs) in enumerate(sorted(by_row.items()) if not src.point_labels else ()):
            if monitor.canceled():
                raise Canceled(CANCELED)
            strip = src.img.ReadAsArray(0, r0, w, p)
            src.img.FlushCache()  # drop the strip's blocks from GDAL's cache: memory stays flat
            if strip.ndim == 2:
                strip = strip[None]
            lab = src.read_labels(r0)
            valid = _validity(src, strip, src.read_valid(r0))
            for i in sorted(idxs, key=lambda j: candidates[j].col):
                c0 = candidates[i].col
                pim = _patch_pixels(src, strip, c0, r0, p)
                pv = valid[:, c0 : c0 + p]
                pl = np.where(pv, lab[:, c0 : c0 + p], 0).astype(np.uint8)
                masked = 1.0 - pv.mean()
                labelled = (pl > 0).mean()
                if masked > s.max_masked or labelled < s.min_labelled:
                    dropped_nodata += 1
                    continue
                split = SPLITS[plan.split_of[i]]
                hist = src.histogram(pl)
                target = patch_targets(hist, s.target_fraction) if s.target_fraction > 0 else None
                shard, pos = writer.add(split, pim, pl, pv.astype(np.uint8) if src.with_masks else None, target=target)
                records.append(
                    PatchRecord(split, plan.fold_of[i], shard, pos, r0, c0, labelled, masked, hist[1:] / float(p * p))
                )
            monitor.progress(0.3 + 0.65 * (n_row + 1) / max(1, len(by_row)))
        if dropped_nodata:
            log(
                f"{dropped_nodata} patches dropped because image nodata pixels exceed MAX_MASKED or leave too "
                "few labelled pixels"
            )
        counts = writer.counts()
        if counts.get("train", 0) == 0:
            raise SatClassifyError("no train patch is left (image nodata): check the image and MAX_MASKED")
        _write_footprints(writer.stage_path(FOOTPRINTS), records, classes, gt, wkt, p)
        manifest = writer.close(extra=_manifest_extra(src, s, records, gt, w, h))  # everything moves in together
    _log_summary(manifest, classes, log)
    monitor.progress(1.0)
    return PatchResult(
        out_folder,
        os.path.join(out_folder, FOOTPRINTS),
        {sp: manifest["splits"][sp]["patches"] for sp in SPLITS},
        manifest,
        [c.to_dict() for c in classes],
    )


def _validity(src: _Sources, pixels: np.ndarray, mask_valid: Optional[np.ndarray]) -> np.ndarray:
    """Valid pixels of an image strip or window (bands, rows, cols): the mask's, no band at its nodata value, and for
    a multi-date stack valid on at least one date."""
    valid = np.ones(pixels.shape[1:], bool)
    if mask_valid is not None:
        valid &= mask_valid
    for b, nd in enumerate(src.nodatas):
        if nd is not None:
            valid &= pixels[b] != nd
    if src.layout is not None:  # valid on at least one date
        valid &= (pixels[[src.layout.valid_index(d) for d in src.layout.dates]] > 0).any(axis=0)
    return valid


def _write_point_patches(
    src: _Sources,
    s: PatchSettings,
    candidates: List[Candidate],
    plan: SplitPlan,
    writer,
    records: List[PatchRecord],
    monitor: Monitor,
) -> int:
    """Pass 2 for point labels: each selected patch read as its own window (points lie anywhere), its point's class
    as a one-hot target; returns the patches dropped for image nodata above MAX_MASKED."""
    p = s.patch_size
    order = sorted(plan.selected(), key=lambda j: (candidates[j].row, candidates[j].col))
    dropped = 0
    for n, i in enumerate(order):
        if n % 64 == 0 and monitor.canceled():
            raise Canceled(CANCELED)
        c = candidates[i]
        win = src.img.ReadAsArray(c.col, c.row, p, p)
        if win.ndim == 2:
            win = win[None]
        pv = _validity(src, win, src.read_valid(c.row, c.col, p))
        masked = 1.0 - pv.mean()
        if masked > s.max_masked:
            dropped += 1
            continue
        pim = _patch_pixels(src, win, 0, c.row, p)
        target = (c.hist[1:] > 0).astype(np.uint8)
        split = SPLITS[plan.split_of[i]]
        shard, pos = writer.add(split, pim, None, pv.astype(np.uint8) if src.with_masks else None, target=target)
        records.append(PatchRecord(split, plan.fold_of[i], shard, pos, c.row, c.col, 1.0, masked, target.astype(float)))
        if n % 64 == 0:
            src.img.FlushCache()
            monitor.progress(0.3 + 0.65 * (n + 1) / max(1, len(order)))
    return dropped


def ground_resolution(gt, wkt, w: int, h: int, log) -> Optional[float]:
    """The image's pixel size in ground metres for the manifest's ``resolution_m`` (training copies it into the model
    card, where classify checks a raster's pixels against it): the nominal size in a metre CRS such as UTM, the size
    measured on the ellipsoid at the image's centre otherwise (Web Mercator, degrees; core/crs.py), 3 significant
    digits. None (logged) without a CRS."""
    g = crs.ground_of(gt, wkt, w, h)
    if g is None:
        log(
            "warning: the image has no CRS, so the dataset records no pixel size (resolution_m): a model trained on "
            "it cannot check the pixel size of the rasters it classifies"
        )
        return None
    px = float(f"{crs.pixel_size_m(g):.3g}")
    if not g.metre_true:
        log(
            f"the image's CRS ({g.crs_name}) has map units that are not ground metres: its pixels are {px:g} m on the "
            "ground at its centre (recorded as the dataset's resolution_m)"
        )
    return px


def _manifest_extra(src: _Sources, s: PatchSettings, records: List[PatchRecord], gt, w: int, h: int) -> dict:
    return {
        "source_files": {
            "image": os.path.abspath(src.image),
            "labels": os.path.abspath(src.labels),
            "mask": os.path.abspath(src.mask) if src.mask else None,
        },
        "split_rule": {
            "type": "spatial_blocks",
            "block_size_patches": s.block_size,
            "block_size_px": s.block_px,
            "val_fraction": s.val_fraction,
            "test_fraction": s.test_fraction,
            "seed": s.seed,
        },
        "stride": s.stride,
        "min_labelled": s.min_labelled,
        "max_masked": s.max_masked,
        "mask_is_noise": bool(s.mask_is_noise),
        "k_folds": s.k_folds if s.k_folds >= 2 else 0,
        "folds": {"train": [r.fold for r in records if r.split == "train"]},
        "positions": {sp: [[r.row, r.col] for r in records if r.split == sp] for sp in SPLITS},
        "geotransform": list(gt),
        "image_size": [w, h],
        "mask_rule": "masks-*.npy: 1 = valid; labels are 0 where invalid",
        "patch_rule": (
            {
                "type": "centred_on_points",
                "centre_pixel": [s.patch_size // 2, s.patch_size // 2],
                "target": "the class of the labelled pixel (point) at the centre",
            }
            if src.point_labels
            else {"type": "grid"}
        ),
        "sampling": {"max_patches": s.max_patches, "class_aware": bool(s.class_aware)},
        **({"timeseries": dataset_entry(src.layout)} if src.layout is not None else {}),
        **({"class_table": src.class_table} if src.class_table else {}),
        **(
            {"target_rule": {"type": "class_fraction", "min_fraction": s.target_fraction, "of": "labelled pixels"}}
            if s.target_fraction > 0
            else {}
        ),
    }


def _log_summary(manifest: dict, classes, log) -> None:
    present = [c for c in classes if any(manifest["splits"][sp]["class_counts"][str(c.value)] for sp in SPLITS)]
    if len(present) == 1:
        log(
            f"WARNING: the patches hold a single class ({present[0].value} {present[0].name}): a model trained on "
            "them cannot learn to tell classes apart. Check the label raster (its extent, the CLC level, MASK) or "
            "cover an area with several land-cover classes"
        )
    for sp in SPLITS:
        info = manifest["splits"][sp]
        total = sum(info["class_counts"].values()) or 1
        hist_txt = ", ".join(
            f"{c.name} {100.0 * info['class_counts'][str(c.value)] / total:.1f}%"
            for c in classes
            if info["class_counts"][str(c.value)]
        )
        log(f"{sp}: {info['patches']} patches" + (f"; classes: {hist_txt}" if info["patches"] else ""))


def _read_labels(band, r0, w, p, allowed, path) -> np.ndarray:
    lab = band.ReadAsArray(0, r0, w, p)
    if lab.dtype != np.uint8:
        lab = lab.astype(np.int64)
    bad = ~allowed[lab] if lab.dtype == np.uint8 else ((lab < 0) | (lab > 255) | ~allowed[np.clip(lab, 0, 255)])
    if bad.any():
        v = int(lab[bad][0])
        raise SatClassifyError(
            f"label raster '{path}' holds value {v} (row {r0 + int(np.nonzero(bad)[0][0])}), "
            "which is not in its class table: give the label raster class names, "
            "or choose the matching CLC level"
        )
    return lab.astype(np.uint8)


def _write_footprints(path, records, classes, gt, wkt, p):
    fields = (
        ("split", ogr.OFTString),
        ("fold", ogr.OFTInteger),
        ("shard", ogr.OFTInteger),
        ("index", ogr.OFTInteger),
        ("row", ogr.OFTInteger),
        ("col", ogr.OFTInteger),
        ("labelled", ogr.OFTReal),
        ("masked", ogr.OFTReal),
    )
    features = (
        (
            r.row,
            r.col,
            {
                "split": r.split,
                "fold": int(r.fold),
                "shard": int(r.shard),
                "index": int(r.index),
                "row": int(r.row),
                "col": int(r.col),
                "labelled": float(r.labelled),
                "masked": float(r.masked),
            },
            [round(float(v), 6) for v in r.fractions],
        )
        for r in records
    )
    raster.write_squares(path, "patches", wkt, gt, p, fields, "frac_", classes, features)
