"""Cloud and cloud-shadow masks for Sentinel-2 stacks from a detector made for Sentinel-2: ukis-csmask.

ukis-csmask (DLR, Apache 2.0; Wieland et al. 2019, 2022) ships four ONNX U-Nets (efficientnet-b4 encoder) in its
package: Level-1C and Level-2A, each with 4 bands (B02 B03 B04 B08) or 6 bands (+ B11 B12). It classifies each
pixel as clear, cloud or cloud shadow. The package recommends about 30 m pixels, so a 10 m stack is averaged to
30 m blocks (3 x 3, nodata left out) for the detector and its classes are repeated back onto the 10 m grid:
3-4 times faster than at 10 m, and the same agreement with a reference mask (docs/sentinel2.md). Large stacks
go to the detector in windows (``WINDOW`` working pixels, ``MARGIN`` of context on each side), so memory stays
bounded for a whole tile.

The detector is imported lazily (``import ukis_csmask`` loads onnxruntime and scipy); :func:`available` tells
whether it can be, and :func:`missing_message` says what to install. This module imports no qgis.

Outputs follow the stack conventions (docs/DESIGN.md): MASK is uint8, 1 = valid, 0 = invalid (cloud, cloud
shadow, nodata); the class raster is uint8, 0 = nodata, 1 clear, 2 cloud, 3 cloud shadow, with a colour table
and category names set before the pixels.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..contract.errors import SatClassifyError

DETECTOR = "ukis-csmask"
MODULE = "ukis_csmask"
#: the four bands every model needs; B11 and B12 too select the 6-band model
REQUIRED = ("B02", "B03", "B04", "B08")
SWIR = ("B11", "B12")
#: ESA band name -> the detector's band name
DETECTOR_NAMES = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir16", "B12": "swir22"}

NODATA, CLEAR, CLOUD, SHADOW = 0, 1, 2, 3
CLASSES = [
    {"value": CLEAR, "name": "clear", "color": "#2ca02c"},
    {"value": CLOUD, "name": "cloud", "color": "#e8e8e8"},
    {"value": SHADOW, "name": "cloud shadow", "color": "#4d4d4d"},
]

#: how a stack's MASK is made: ``auto`` SCL where the product has it, the detector otherwise (L1C);
#: ``detector`` the detector for every product; ``both`` SCL and the detector (L2A: a pixel is invalid by
#: either); ``none`` SCL only, nodata only without SCL (the behaviour before the detector)
MODES = ("auto", "detector", "both", "none")

WORK_RESOLUTION = 30.0  # m: what the package recommends
WINDOW = 2048  # working pixels per detector call (61 km at 30 m)
MARGIN = 64  # working pixels of context on each side of a window
TILE = 256  # the models' tile size; smaller images are padded up to it
#: plausible median reflectance of B02 over the valid pixels of a scene (clear land about 0.03-0.3, cloud
#: up to about 1); outside it the stack's scale is wrong
SCALE_RANGE = (0.002, 1.5)


def available() -> bool:
    """True when the detector package can be imported."""
    try:
        return importlib.util.find_spec(MODULE) is not None
    except (ImportError, ValueError):
        return False


def missing_message(what: str = "the cloud mask") -> str:
    return (
        f"{what} needs the Python package {DETECTOR} (a cloud and cloud-shadow detector for Sentinel-2), which "
        "QGIS's Python cannot import: install it with Plugins > SatClassify > Install Python dependencies, or "
        f"'python3 -m pip install --user {DETECTOR}'"
    )


def version() -> str:
    try:
        from importlib.metadata import version as _v

        return _v(DETECTOR)
    except Exception:  # noqa: BLE001 - metadata absent (vendored copy): the name alone
        return "?"


def detector_bands(names: Sequence[str]) -> List[str]:
    """The bands the detector takes from a stack with bands ``names``: B02 B03 B04 B08, plus B11 B12 when both
    are there (the 6-band model). Missing ones raise an error naming them."""
    have = set(names)
    missing = [b for b in REQUIRED if b not in have]
    if missing:
        raise SatClassifyError(
            f"the cloud detector needs the bands {', '.join(REQUIRED)} (10 m; B11 and B12 improve it) but the stack "
            f"has no {', '.join(missing)} (its bands: {', '.join(names) or 'none named'}); name the bands in the "
            "GDAL band descriptions (B02, B03, ...) or make the stack with those bands"
        )
    return list(REQUIRED) + (list(SWIR) if all(b in have for b in SWIR) else [])


def model_name(bands: Sequence[str], level: str) -> str:
    return f"{DETECTOR} {version()} {len(bands)}-band {level.upper()} model"


def level_of(metadata: Mapping[str, str], names: Sequence[str]) -> Optional[str]:
    """``"L1C"`` / ``"L2A"`` from a stack's metadata (products read) or its bands (SCL exists only in L2A); None
    when it cannot be told."""
    md = {str(k).upper(): str(v) for k, v in (metadata or {}).items()}
    text = " ".join(md.get(k, "") for k in ("SATCLASSIFY_LEVEL", "SATCLASSIFY_PRODUCTS", "PRODUCT_TYPE")).upper()
    l1c, l2a = ("MSIL1C" in text or "L1C" in text.split()), ("MSIL2A" in text or "L2A" in text.split())
    if l1c != l2a:
        return "L1C" if l1c else "L2A"
    if "SCL" in names:
        return "L2A"
    return None


def check_scale(b02: np.ndarray, valid: np.ndarray, scale: float) -> None:
    """Refuse a stack whose values are not reflectance / ``scale`` (e.g. reflectance 0..1 stored as floats, or
    radiance): the median of B02 over the valid pixels must be a plausible reflectance."""
    v = b02[valid]
    if v.size == 0:
        return
    step = max(1, v.size // 200_000)
    med = float(np.median(v[::step])) * scale
    lo, hi = SCALE_RANGE
    if med < lo:
        raise SatClassifyError(
            f"the stack's values look like reflectance 0..1, not digital numbers: the median of B02 is "
            f"{med / scale:.4g}, i.e. reflectance {med:.2g} with the scale {scale:g}. The detector needs "
            f"reflectance = DN x {scale:g} (Sentinel-2 DN / 10000): multiply the bands by 10000, or set SCALE "
            "to 1 for a stack of reflectance"
        )
    if med > hi:
        raise SatClassifyError(
            f"the stack's values are too large for Sentinel-2 reflectance: the median of B02 is {med / scale:.4g}, "
            f"i.e. reflectance {med:.3g} with the scale {scale:g}. The detector needs reflectance = DN x {scale:g} "
            "(Sentinel-2 DN / 10000, as the SatClassify tools write it): check the stack, or set SCALE"
        )


def _block_mean(a: np.ndarray, ok: np.ndarray, f: int, scale: float) -> np.ndarray:
    """Mean reflectance of the valid pixels of each f x f block (NaN where a block has none), float32."""
    h, w = a.shape
    hh, ww = -(-h // f), -(-w // f)
    out = np.empty((hh, ww), np.float32)
    rows = max(f, (4096 // f) * f)
    for r0 in range(0, h, rows):  # strips: a whole tile never becomes one float64 copy
        blk = a[r0 : r0 + rows].astype(np.float32)
        m = ok[r0 : r0 + rows]
        bh = blk.shape[0]
        ph, pw = -(-bh // f) * f - bh, ww * f - w
        blk = np.pad(np.where(m, blk, 0.0).astype(np.float32), ((0, ph), (0, pw)))
        cnt = np.pad(m, ((0, ph), (0, pw))).astype(np.float32)
        s = blk.reshape(-1, f, ww, f).sum(axis=(1, 3))
        n = cnt.reshape(-1, f, ww, f).sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[r0 // f : r0 // f + s.shape[0]] = np.where(n > 0, s / n * scale, np.nan)
    return out


def _providers():
    import onnxruntime as ort

    avail = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail] or avail


def _run_detector(img: np.ndarray, order: Sequence[str], level: str, threads: int) -> np.ndarray:
    """The detector's classes (0 clear, 1 cloud, 2 shadow) for ``img`` (rows, cols, bands) reflectance."""
    from ukis_csmask.mask import CSmask

    h, w = img.shape[:2]
    ph, pw = max(0, TILE - h), max(0, TILE - w)
    if ph or pw:  # the models work on 256 x 256 tiles
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # invalid_buffer=1: the package's own buffered mask is not used (0 would dilate until nothing changes)
        m = CSmask(
            np.ascontiguousarray(img, np.float32),
            band_order=list(order),
            product_level=level.lower(),
            nodata_value=None,
            invalid_buffer=1,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
            providers=_providers(),
        )
    return np.asarray(m.csm)[:h, :w, 0]


def detect(
    arrays: Mapping[str, np.ndarray],
    level: str,
    pixel_size: float,
    scale: float = 1e-4,
    work_resolution: float = WORK_RESOLUTION,
    nodata: Optional[np.ndarray] = None,
    threads: int = 0,
    monitor=None,
) -> np.ndarray:
    """Classes (uint8: 0 nodata, 1 clear, 2 cloud, 3 cloud shadow) of a single-date stack.

    ``arrays``: band name -> 2-D values (all the same shape) with reflectance = value x ``scale``; value 0 (and
    non-finite) is nodata. ``level``: ``"L1C"`` or ``"L2A"`` (the detector has a model for each).
    ``pixel_size``: metres; the bands are averaged to ``work_resolution`` (when it is coarser) for the detector.
    ``nodata``: an extra bool mask of pixels to treat as nodata.
    """
    level = str(level).upper()
    if level not in ("L1C", "L2A"):
        raise SatClassifyError(f"product level '{level}' is neither L1C nor L2A")
    if not available():
        raise SatClassifyError(missing_message())
    bands = detector_bands(list(arrays))
    first = np.asarray(arrays[bands[0]])
    h, w = first.shape
    bad = np.zeros((h, w), bool) if nodata is None else np.asarray(nodata, bool).copy()
    for b in bands:
        a = np.asarray(arrays[b])
        if a.shape != (h, w):
            raise SatClassifyError(f"band {b} is {a.shape[1]} x {a.shape[0]} pixels, {bands[0]} {w} x {h}")
        bad |= a == 0
        if a.dtype.kind == "f":
            bad |= ~np.isfinite(a)
    ok = ~bad
    out = np.zeros((h, w), np.uint8)
    if not ok.any():
        return out
    check_scale(np.asarray(arrays["B02"]), ok, scale)
    f = max(1, int(round(work_resolution / pixel_size))) if pixel_size > 0 else 1
    planes = []
    for b in bands:
        p = _block_mean(np.asarray(arrays[b]), ok, f, scale)
        fill = np.nanmedian(p) if np.isfinite(p).any() else 0.0
        planes.append(np.where(np.isfinite(p), p, fill).astype(np.float32))  # nodata: a neutral value
    img = np.dstack(planes)
    del planes
    order = [DETECTOR_NAMES[b] for b in bands]
    hh, ww = img.shape[:2]
    csm = np.zeros((hh, ww), np.uint8)
    wins = [(r, c) for r in range(0, hh, WINDOW) for c in range(0, ww, WINDOW)]
    for k, (r, c) in enumerate(wins):
        if monitor is not None:
            monitor.check()
        r0, c0 = max(0, r - MARGIN), max(0, c - MARGIN)
        r1, c1 = min(hh, r + WINDOW + MARGIN), min(ww, c + WINDOW + MARGIN)
        res = _run_detector(img[r0:r1, c0:c1], order, level, threads)
        rr, cc = min(hh, r + WINDOW), min(ww, c + WINDOW)
        csm[r:rr, c:cc] = res[r - r0 : rr - r0, c - c0 : cc - c0]
        if monitor is not None:
            monitor.progress((k + 1) / len(wins))
    del img
    classes = np.array([CLEAR, CLOUD, SHADOW], np.uint8)[np.minimum(csm, 2)]
    if f > 1:
        classes = np.repeat(np.repeat(classes, f, axis=0), f, axis=1)[:h, :w]
    out[:] = classes
    out[bad] = NODATA
    return out


def valid_from(classes: np.ndarray, buffer_px: int = 0) -> np.ndarray:
    """bool validity of detector classes: clear pixels, less ``buffer_px`` pixels around cloud and shadow."""
    invalid_cs = (classes == CLOUD) | (classes == SHADOW)
    if buffer_px > 0 and invalid_cs.any():
        from scipy import ndimage  # a dependency of the detector

        invalid_cs = ndimage.binary_dilation(invalid_cs, structure=np.ones((3, 3), bool), iterations=int(buffer_px))
    return (classes == CLEAR) & ~invalid_cs


def shares(classes: np.ndarray) -> Dict[str, float]:
    """Share of cloud and of cloud shadow among the pixels with data."""
    n = int(np.count_nonzero(classes))
    if n == 0:
        return {"cloud": 0.0, "cloud shadow": 0.0}
    return {
        "cloud": float(np.count_nonzero(classes == CLOUD)) / n,
        "cloud shadow": float(np.count_nonzero(classes == SHADOW)) / n,
    }


def buffer_pixels(buffer_m: float, pixel_size: float) -> int:
    return int(math.ceil(buffer_m / pixel_size - 1e-9)) if buffer_m > 0 and pixel_size > 0 else 0


def rule(bands: Sequence[str], level: str, buffer_m: float = 0.0) -> str:
    """The MASK's SATCLASSIFY_MASK text for a detector mask."""
    return (
        f"1 = valid, 0 = invalid (cloud or cloud shadow by the {model_name(bands, level)} at "
        f"{WORK_RESOLUTION:g} m" + (f", buffered {buffer_m:g} m" if buffer_m > 0 else "") + ", or nodata)"
    )


# ---------------------------------------------------------------------------------------------------------
# the stack writer's part (core/s2/stack.py build_stack)


class StackClouds:
    """What :func:`~satclassify_plugin.core.s2.stack.build_stack` does about clouds for one stack.

    ``mode`` (one of :data:`MODES`) and whether the product has SCL decide: ``use_scl`` (SCL into the mask) and
    ``active`` (run the detector). The bands the detector needs are kept as the stack writes them
    (:meth:`keep`), the others read by :meth:`run` with the writer's reader.
    """

    def __init__(
        self, mode: str, has_scl: bool, level: str, requested: Sequence[str], product_bands: Sequence[str], log=None
    ):
        mode = (mode or "auto").lower()
        if mode not in MODES:
            raise SatClassifyError(f"cloud mask mode '{mode}' is none of {', '.join(MODES)}")
        self.mode, self.level, self.log = mode, level, log or (lambda m: None)
        self.use_scl = has_scl and mode in ("auto", "both", "none")
        want = mode in ("detector", "both") or (mode == "auto" and not has_scl)
        self.active = False
        self.note = ""
        self.classes: Optional[np.ndarray] = None  # the last run's detector classes
        if not want:
            return
        if not available():
            if mode == "auto":  # an L1C stack still gets its nodata mask; the log says what to install
                self.note = "no cloud detector: " + missing_message("masking clouds in an L1C stack")
                self.log(self.note)
                return
            raise SatClassifyError(missing_message(f"CLOUD_MASK = {mode}"))
        # the 4 bands the detector needs are read for it when not requested; B11 B12 only when requested
        have = [b for b in requested if b != "SCL"] + [b for b in REQUIRED if b in product_bands]
        self.bands = detector_bands(list(dict.fromkeys(have)))
        self.active = True
        self._kept: Dict[str, np.ndarray] = {}

    def keep(self, band: str, arr: np.ndarray) -> None:
        if self.active and band in self.bands:
            self._kept[band] = arr

    def run(self, read, pixel_size: float, monitor=None, level: Optional[str] = None, label: str = "") -> np.ndarray:
        """The detector's validity (bool) on the stack's grid; ``read(band)`` reads a band not kept.

        A multi-date stack calls it once per date (core/s2/timeseries.py): ``level`` that date's product level
        (default: the stack's), ``label`` (the date) heads its log lines."""
        level = (level or self.level).upper()
        head = f"{label}: " if label else ""
        arrays = {b: (self._kept[b] if b in self._kept else read(b)) for b in self.bands}
        self.log(
            f"{head}cloud and shadow detection: {model_name(self.bands, level)} on "
            f"{', '.join(self.bands)} at {WORK_RESOLUTION:g} m"
        )
        # progress stays where the stack writer left it (the end); Cancel is still honoured
        self.classes = classes = detect(arrays, level, pixel_size, monitor=monitor.sub(1.0, 1.0) if monitor else None)
        self._kept = {}
        s = shares(classes)
        self.log(f"{head}detector: {100 * s['cloud']:.1f} % cloud, {100 * s['cloud shadow']:.1f} % cloud shadow")
        return valid_from(classes)

    @property
    def detector(self) -> str:
        return model_name(self.bands, self.level) if self.active else ""

    def rule(self) -> str:
        """The MASK's SATCLASSIFY_MASK text."""
        scl = "SCL 0,1,3,8,9,10,11"
        if not self.active:
            return (
                f"1 = valid, 0 = invalid ({scl} or nodata)"
                if self.use_scl
                else "1 = valid, 0 = nodata (no SCL in this product" + (", no cloud detector)" if self.note else ")")
            )
        det = f"cloud or cloud shadow by the {model_name(self.bands, self.level)}"
        return f"1 = valid, 0 = invalid ({(scl + ', ') if self.use_scl else ''}{det}, or nodata)"


# ---------------------------------------------------------------------------------------------------------
# any stack on disk (satclassify:cloudmask)


def stack_scale(ds, given: Optional[float] = None) -> float:
    """Reflectance per stored value: ``given``, else the stack's SATCLASSIFY_SCALE, else the GDAL band scale
    of B02 when set, else 0.0001 (Sentinel-2 DN)."""
    if given:
        return float(given)
    md = ds.GetMetadata() or {}
    try:
        v = float(md.get("SATCLASSIFY_SCALE", ""))
        if v > 0:
            return v
    except ValueError:
        pass
    return 1e-4


def cloudmask_file(
    path: str,
    mask_output: Optional[str],
    classes_output: Optional[str] = None,
    level: str = "auto",
    buffer_m: float = 0.0,
    scale: Optional[float] = None,
    monitor=None,
    threads: int = 0,
) -> Dict[str, object]:
    """Detect clouds and shadows in the single-date stack ``path`` (bands named B02... in the GDAL band
    descriptions) and write MASK (uint8, 1 = valid) and/or the class raster, atomically, on the stack's grid.
    ``level``: ``"auto"`` (from the stack's metadata), ``"L1C"`` or ``"L2A"``. Returns a summary."""
    from osgeo import gdal

    from .. import crs, raster
    from ..contract.timeseries import is_multidate
    from .products import MASK_CLASSES, parse_bands

    if not mask_output and not classes_output:
        raise SatClassifyError("no output: give MASK and/or CLASSES")
    ds = raster.open_raster(path, "stack")
    raw = raster.band_names(ds)
    if is_multidate(raw):
        raise SatClassifyError(
            "the stack is a multi-date stack (bands <band>@<date>): its VALID@<date> bands already mask each date; "
            "run the cloud mask on a single-date stack (importsafe or fetchsentinel2 without INTERVAL)"
        )
    names: List[str] = []
    for n in raw:
        try:
            names.append(parse_bands([n])[0] if n else "")
        except SatClassifyError:
            names.append(n or "")
    bands = detector_bands([n for n in names if n])
    if level in (None, "", "auto"):
        found = level_of(ds.GetMetadata() or {}, names)
        if found is None:
            raise SatClassifyError(
                "cannot tell whether the stack is Level-1C (top of atmosphere) or Level-2A (surface reflectance): "
                "its metadata names no product; choose LEVEL (the detector has one model for each)"
            )
        level = found
    level = level.upper()
    sc = stack_scale(ds, scale)
    g = crs.ground_of_raster(ds)
    pixel = crs.pixel_size_m(g) if g is not None else abs(ds.GetGeoTransform()[1])
    w, h, gt, wkt = ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform(), ds.GetProjection()
    arrays = {}
    nodata = np.zeros((h, w), bool)
    for b in bands:
        if monitor is not None:
            monitor.check()
        band = ds.GetRasterBand(names.index(b) + 1)
        a = band.ReadAsArray()
        nd = band.GetNoDataValue()
        if nd is not None and nd != 0 and math.isfinite(nd):
            nodata |= a == nd
        arrays[b] = a
        band = None
    ds = None
    if monitor is not None:
        monitor.info(
            f"cloud and shadow detection: {model_name(bands, level)} on {', '.join(bands)} "
            f"({w} x {h} pixels of {pixel:g} m, averaged to {WORK_RESOLUTION:g} m)"
        )
    classes = detect(
        arrays,
        level,
        pixel,
        scale=sc,
        nodata=nodata,
        threads=threads,
        monitor=monitor.sub(0.0, 0.9) if monitor is not None else None,
    )
    del arrays
    bpx = buffer_pixels(buffer_m, pixel)
    valid = valid_from(classes, bpx)
    the_rule = rule(bands, level, bpx * pixel if bpx else 0.0)
    md = {
        "SATCLASSIFY_MASK": the_rule,
        "SATCLASSIFY_CLOUD_DETECTOR": model_name(bands, level),
        "SATCLASSIFY_SOURCE_STACK": path,
    }
    if mask_output:
        with raster.AtomicOutput(mask_output) as tmp:
            m = raster.create_geotiff(
                tmp,
                w,
                h,
                1,
                gdal.GDT_Byte,
                gt,
                wkt,
                descriptions=["valid"],
                classes=MASK_CLASSES,
                nodata_name="invalid",
                metadata=md,
            )
            m.GetRasterBand(1).WriteArray(valid.astype(np.uint8))
            m.FlushCache()
            m = None
    if classes_output:
        with raster.AtomicOutput(classes_output) as tmp:
            c = raster.create_geotiff(
                tmp,
                w,
                h,
                1,
                gdal.GDT_Byte,
                gt,
                wkt,
                nodata=0,
                descriptions=["cloud class"],
                classes=CLASSES,
                nodata_name="nodata",
                metadata={**md, "SATCLASSIFY_MASK": "0 = nodata, 1 = clear, 2 = cloud, 3 = cloud shadow"},
            )
            c.GetRasterBand(1).WriteArray(classes)
            c.FlushCache()
            c = None
    s = shares(classes)
    data = int(np.count_nonzero(classes))
    return {
        "width": w,
        "height": h,
        "level": level,
        "bands": bands,
        "scale": sc,
        "pixel_size": pixel,
        "detector": model_name(bands, level),
        "cloud_fraction": s["cloud"],
        "shadow_fraction": s["cloud shadow"],
        "valid_fraction": float(valid.mean()) if valid.size else 0.0,
        "data_pixels": data,
        "buffer_px": bpx,
    }
