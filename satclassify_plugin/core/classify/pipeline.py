"""Streamed, tiled ONNX classification of a GDAL raster (QGIS env only).

Pipeline: a reader thread reads each tile's window (plus halo), scales it and fills batches; the
calling thread runs onnxruntime on each batch; a writer thread crops each tile's core, turns the
probabilities into class values / confidence / probabilities and writes them in row strips. Bounded
queues between the three keep memory flat whatever the raster size (GDAL and onnxruntime release the
GIL, so the three overlap). Outputs are written to temporary names and renamed when complete
(:class:`~.raster.AtomicOutput`): a cancel or failure leaves no partial file.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from osgeo import gdal

from .. import crs, raster
from ..contract.errors import SatClassifyError
from ..contract.feedback import Monitor
from .inference import CUDA_EP, TRT_EP, Model, input_bounds, load_model, map_bands, scale_coefficients
from .options import ClassifyOptions
from .tiling import Tile, choose_tiling, plan_tiles

DEFAULT_BATCH = 4
#: DEFLATE level 3: about 3x faster than the default 6 on class/confidence rasters, files ~10% larger
OUT_OPTIONS = tuple(raster.GTIFF_OPTIONS) + ("ZLEVEL=3",)
CONF_NODATA = 255
_STOP = object()


@dataclass
class ClassifyResult:
    outputs: List[Optional[str]]
    confidence: Optional[str]
    probabilities: Optional[str]
    provider: str
    providers: List[str]
    megapixels: float
    seconds: float
    tiles: int
    tile_size: int
    halo: int
    batch_size: int
    heads: list = field(default_factory=list)
    #: per head: pixels of each class value (index = value, 0 = nodata) in the class raster written, None for a
    #: head not written; counted as the tiles were written (``core.maps.legend.present_classes`` takes them)
    class_counts: List[Optional[np.ndarray]] = field(default_factory=list)
    #: seconds the inference thread spent in onnxruntime ("inference"), waiting for input ("wait_input")
    #: and for the writer ("wait_writer")
    stats: dict = field(default_factory=dict)

    @property
    def mpix_per_s(self) -> float:
        return self.megapixels / self.seconds if self.seconds > 0 else float("inf")

    def tool_results(self, outs: Dict[str, Optional[str]], heads: Sequence[Optional[str]]) -> Dict[str, object]:
        """What the classify tool and the ``satclassify classify`` command return: ``outs`` (OUTPUT, OUTPUT_2,
        CONFIDENCE, PROBABILITIES as given), the provider, the speed and the class rasters written (HEAD_OUTPUTS)."""
        return {
            "OUTPUT": outs["OUTPUT"],
            "OUTPUT_2": outs["OUTPUT_2"],
            "CONFIDENCE": outs["CONFIDENCE"],
            "PROBABILITIES": outs["PROBABILITIES"],
            "PROVIDER": self.provider,
            "MPIX_PER_S": self.mpix_per_s,
            "HEAD_OUTPUTS": [p for p in heads[: len(self.heads)] if p],
        }


def check_extent_area(extent: Sequence[float], given: str) -> None:
    """An EXTENT that was given, as (xmin, ymin, xmax, ymax) in the raster's CRS, must have an area: an extent of
    zero width or height is a mistake, never "the whole layer". ``given``: the value as the user wrote it."""
    xmin, ymin, xmax, ymax = [float(v) for v in extent]
    w, h = xmax - xmin, ymax - ymin
    if not (w > 0 and h > 0):
        raise SatClassifyError(
            f"EXTENT '{given}' has no area (zero width or height, here {w:g} x {h:g} map units in the layer's "
            "CRS): give xmin < xmax and ymin < ymax, or leave EXTENT empty to use the whole layer"
        )


def head_output_path(output: str, head_name: str, k: int) -> str:
    """The class raster of head ``k`` (0-based) written next to OUTPUT: ``<OUTPUT base>_<head name>.tif``."""
    base, ext = os.path.splitext(output or "")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", head_name).strip("_.") or f"head{k + 1}"
    return f"{base}_{name}{ext or '.tif'}"


def extent_to_window(ds: gdal.Dataset, extent: Sequence[float]) -> Tuple[int, int, int, int]:
    """Pixel window (xoff, yoff, xsize, ysize) of ``extent`` = (xmin, ymin, xmax, ymax) in the raster's CRS,
    rounded outward to whole pixels and clipped to the raster."""
    gt = ds.GetGeoTransform()
    crs.north_up(gt, "input raster")
    xmin, ymin, xmax, ymax = [float(v) for v in extent]
    if not (xmax > xmin and ymax > ymin):
        raise SatClassifyError(
            f"the extent ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) has no area (zero width or "
            "height): give an extent with xmin < xmax and ymin < ymax, or leave EXTENT empty to "
            "use the whole layer"
        )
    eps = 1e-6
    cx = sorted(((xmin - gt[0]) / gt[1], (xmax - gt[0]) / gt[1]))
    cy = sorted(((ymax - gt[3]) / gt[5], (ymin - gt[3]) / gt[5]))
    c0, c1 = math.floor(cx[0] + eps), math.ceil(cx[1] - eps)
    r0, r1 = math.floor(cy[0] + eps), math.ceil(cy[1] - eps)
    c0, r0 = max(c0, 0), max(r0, 0)
    c1, r1 = min(c1, ds.RasterXSize), min(r1, ds.RasterYSize)
    if c1 <= c0 or r1 <= r0:
        w, h = ds.RasterXSize, ds.RasterYSize
        bounds = (gt[0], gt[3] + gt[5] * h, gt[0] + gt[1] * w, gt[3])
        raise SatClassifyError(
            f"the extent ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the raster "
            f"({bounds[0]:g}, {min(bounds[1], bounds[3]):g}, {bounds[2]:g}, {max(bounds[1], bounds[3]):g}): "
            "choose an extent that overlaps the input layer"
        )
    return c0, r0, c1 - c0, r1 - r0


def _resampled(ds: gdal.Dataset, res: float, nodata: List[Optional[float]], log) -> gdal.Dataset:
    gt = ds.GetGeoTransform()
    px = abs(gt[1])
    alg = "average" if res > px else "bilinear"
    kw = dict(format="VRT", xRes=res, yRes=res, resampleAlg=alg, multithread=True)
    nd = [v for v in nodata if v is not None]
    if nd and len(set(nd)) == 1:
        kw["srcNodata"] = nd[0]
        kw["dstNodata"] = nd[0]
    try:
        out = gdal.Warp("", ds, **kw)
    except RuntimeError as e:
        raise SatClassifyError(f"cannot resample the raster to {res:.6g} map units: {e}")
    log(f"resampled the input from {px:g} to {res:.6g} map units per pixel ({alg}) through a VRT")
    return out


#: a raster whose ground pixels differ from the model's by more than this factor is refused (no resampling makes
#: such a run meaningful: 100 km pixels for a 10 m model); a smaller difference above 25 % is a warning
PIXEL_RATIO_LIMIT = 100.0


def check_pixel_size(
    ds: gdal.Dataset,
    res: Optional[float],
    log,
    resample: bool = False,
    fix: str = "set RESAMPLE to run it at the model's resolution",
) -> Optional[float]:
    """The raster's pixel size on the ground (core/crs.py) against the card's ``resolution_m``; the one check of
    classify and classifypatches. A geographic CRS is refused (pixels in degrees); pixels more than
    :data:`PIXEL_RATIO_LIMIT` times coarser than the model's are refused, as are pixels that much finer unless
    ``resample``; a difference above 25 % is a warning naming ``fix`` (none with ``resample``). A CRS whose map
    units are not ground metres (Web Mercator) is measured on the ground and logged. Returns the ground pixel size
    in metres (None when the card or the raster gives no scale)."""
    if res is None:
        return None
    g = crs.ground_of_raster(ds)
    if g is None:
        log(
            f"warning: the raster has no CRS, so its pixel size on the ground is unknown (the model was trained "
            f"on {res:g} m pixels): assign the raster's CRS to have it checked"
        )
        return None
    if g.geographic:
        raise SatClassifyError(
            f"unsupported CRS units: the raster's CRS ({g.crs_name}) is geographic (degrees) but the model "
            f"expects {res:g} m pixels; reproject the raster to a projected CRS in metres (e.g. UTM) first"
        )
    px = crs.pixel_size_m(g)
    if not g.metre_true:
        log(
            f"the raster's CRS ({g.crs_name}) has map units that are not ground metres here: one pixel of "
            f"{g.nominal_size:g} map units is {px:.3g} m on the ground at the raster's centre (measured on the "
            "ellipsoid); that is what is compared with the model's resolution"
        )
    if px > PIXEL_RATIO_LIMIT * res or (px * PIXEL_RATIO_LIMIT < res and not resample):
        how = "warp the raster to about {:g} m pixels first (Raster > Projections > Warp){}".format(
            res, "" if px > res else ", or set RESAMPLE"
        )
        raise SatClassifyError(
            f"the raster has {px:.4g} m pixels on the ground but the model was trained on {res:g} m pixels "
            f"({max(px / res, res / px):.3g}x {'coarser' if px > res else 'finer'}): its classes would be "
            f"meaningless; {how}"
        )
    if not resample and abs(px - res) > 0.25 * res:
        log(f"warning: the raster has {px:.4g} m pixels but the model was trained on {res:g} m pixels; {fix}")
    return px


def gdal_scaling(ds: gdal.Dataset, band_numbers: Sequence[int], log) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Per band (scale, offset) of the bands' GDAL scale/offset metadata (the raw value the card expects is
    stored * scale + offset, e.g. an L2A processing-baseline offset kept as GDAL offset), or None when no band
    has one (unset or the identity). Logged."""
    s = np.ones(len(band_numbers), np.float64)
    o = np.zeros(len(band_numbers), np.float64)
    for i, bn in enumerate(band_numbers):
        band = ds.GetRasterBand(bn)
        s[i] = band.GetScale() if band.GetScale() not in (None, 0) else 1.0
        o[i] = band.GetOffset() or 0.0
    if np.all(s == 1.0) and np.all(o == 0.0):
        return None
    log(
        "the raster's bands carry GDAL scale/offset metadata, applied before the model's preprocessing (value = "
        "stored x scale + offset): "
        + ", ".join(
            f"band {bn}: x {s[i]:g} {o[i]:+g}" for i, bn in enumerate(band_numbers) if (s[i], o[i]) != (1.0, 0.0)
        )
    )
    return s, o


def _fold_scaling(scale, gdal_so):
    """(a, b) of the card's preprocessing with the GDAL scale/offset folded in: (raw * s + o) * a + b."""
    if gdal_so is None:
        return scale
    a, b = scale
    s, o = gdal_so
    return (a * s).astype(np.float32), (b + a * o).astype(np.float32)


def negative_dn_invalid(ds: gdal.Dataset, band_numbers: Sequence[int], model: Model) -> bool:
    """A Sentinel-2 DN model on bands of a signed type: negative stored values are no valid DN (nodata)."""
    s2 = model.card.sentinel2_dn
    signed = (gdal.GDT_Int16, gdal.GDT_Int32, gdal.GDT_Float32, gdal.GDT_Float64) + tuple(
        getattr(gdal, n) for n in ("GDT_Int8", "GDT_Int64") if hasattr(gdal, n)
    )
    return s2 and any(ds.GetRasterBand(bn).DataType in signed for bn in band_numbers)


def invalid_pixels(
    raw: np.ndarray, nodata: Sequence[Optional[float]], is_float: bool, negative_invalid: bool
) -> Tuple[np.ndarray, int]:
    """(H, W) mask of the pixels of ``raw`` (C, H, W model bands) that hold no measurement: a band at its nodata
    value, NaN or +-inf (float bands), and with ``negative_invalid`` (:func:`negative_dn_invalid`) a negative
    value; and the count of pixels made invalid by that last rule alone (for the log). classify's batch reader
    and classifypatches' strips use it."""
    invalid = np.zeros(raw.shape[1:], dtype=bool)
    for i, v in enumerate(nodata):
        if v is not None:
            invalid |= raw[i] == v
    if is_float:
        invalid |= ~np.isfinite(raw).all(axis=0)
    negatives = 0
    if negative_invalid:  # not a Sentinel-2 DN (e.g. a -9999 fill in an Int16 stack)
        neg = (raw < 0).any(axis=0) & ~invalid
        negatives = int(np.count_nonzero(neg))
        if negatives:
            invalid |= neg
    return invalid, negatives


def invalidate_negative_dates(
    raw: np.ndarray, valid_channels: Sequence[int], ox: int = 0, oy: int = 0, core: Optional[Sequence[int]] = None
) -> int:
    """A multi-date input (channels date by date, each date's VALID channel last): a date with a negative value in
    any of its bands at a pixel is no observation there (a fill such as -9999 in an Int16 stack), written as the
    stack convention writes an invalid date: its bands 0 and its VALID 0. In place; returns how many pixels of the
    tile's core (``core`` = (x, y, w, h) at offset ``ox``, ``oy`` in ``raw``) lost a date this way (for the log)."""
    count = np.zeros(raw.shape[1:], bool)
    start = 0
    for v in valid_channels:
        neg = (raw[start:v] < 0).any(axis=0)
        if neg.any():
            raw[start : v + 1, neg] = 0
            count |= neg
        start = v + 1
    if core is not None:
        count = count[oy : oy + core[3], ox : ox + core[2]]
    return int(np.count_nonzero(count))


def _nodata_values(ds: gdal.Dataset, band_numbers: Sequence[int], model: Model) -> List[Optional[float]]:
    """Per model band: the raster band's nodata value, or 0 for Sentinel-2 DN stacks without one."""
    s2 = model.card.sentinel2_dn
    out = []
    for b in band_numbers:
        band = ds.GetRasterBand(b)
        v = band.GetNoDataValue()
        if v is None and s2 and band.DataType in (gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_UInt32, gdal.GDT_Int32):
            v = 0.0
        out.append(v)
    return out


class _StripWriter:
    """Collects tile cores of one tile row into a full-width strip and writes whole 256-row chunks, so
    every block is written once and complete (compressed GeoTIFF blocks are never rewritten)."""

    CHUNK = 256

    def __init__(self, ds: gdal.Dataset, nbands: int, x0: int, y0: int, width: int, fill: int):
        self.ds, self.nbands, self.x0, self.y0, self.width, self.fill = ds, nbands, x0, y0, width, fill
        self.row: Optional[np.ndarray] = None  # the tile row being collected (bands, rows, width)
        self.row_y: Optional[int] = None
        self.pending: List[np.ndarray] = []
        self.pending_rows = 0
        self.written = 0

    def put(self, tile: Tile, arr: np.ndarray) -> None:
        cx, cy, cw, ch = tile.core
        if self.row is None or self.row_y != cy:
            self._end_row()
            self.row = np.full((self.nbands, ch, self.width), self.fill, dtype=np.uint8)
            self.row_y = cy
        self.row[:, :, cx - self.x0 : cx - self.x0 + cw] = arr

    def _end_row(self):
        if self.row is not None:
            self.pending.append(self.row)
            self.pending_rows += self.row.shape[1]
            self.row = None
            self._write(final=False)

    def _write(self, final: bool):
        if not self.pending:
            return
        if self.pending_rows < self.CHUNK and not final:
            return
        buf = np.concatenate(self.pending, axis=1) if len(self.pending) > 1 else self.pending[0]
        n = buf.shape[1] if final else (buf.shape[1] // self.CHUNK) * self.CHUNK
        for i in range(self.nbands):
            self.ds.GetRasterBand(i + 1).WriteArray(buf[i, :n], 0, self.written)
        self.ds.FlushCache()
        self.written += n
        rest = buf[:, n:]
        self.pending = [rest] if rest.shape[1] else []
        self.pending_rows = rest.shape[1]

    def close(self):
        self._end_row()
        self._write(final=True)


@dataclass(frozen=True)
class Target:
    """One output raster of a run: ``kind`` "class" | "confidence" | "probabilities" of head ``head``."""

    kind: str
    head: int
    path: str


@dataclass
class ClassifyPlan:
    """Everything a run needs, decided before any pixel is read (:func:`plan_classify`): the raster to read
    (the input or its resampled VRT), the model, band mapping, nodata, tiles, scaling and the outputs."""

    ds: gdal.Dataset
    model: Model
    band_numbers: List[int]
    nodata: List[Optional[float]]
    window: Tuple[int, int, int, int]
    tile: int
    halo: int
    batch: int
    tiles: List[Tile]
    scale: Tuple[np.ndarray, np.ndarray]  # per band: reflectance = raw * a + b (standardised)
    geotransform: Tuple[float, ...]  # of the output window
    wkt: str
    targets: List[Target]
    #: a multi-date model: the input channels holding each date's validity; a pixel invalid on every date is nodata
    valid_any: Optional[List[int]] = None

    @property
    def heads(self):
        return self.model.card.heads


def _targets(
    outputs: Sequence[Optional[str]], heads, confidence: Optional[str], probabilities: Optional[str], log
) -> List[Target]:
    if not outputs or not outputs[0]:
        raise SatClassifyError("no output file given for the class raster (OUTPUT)")
    extra = [i for i, p in enumerate(outputs) if p and i >= len(heads)]
    if extra:
        raise SatClassifyError(
            f"an output was given for head {extra[0] + 1} but the model has {len(heads)} head(s) "
            f"({', '.join(h.name for h in heads)}); leave OUTPUT_{extra[0] + 1} empty"
        )
    for i, h in enumerate(heads):
        if i >= len(outputs) or not outputs[i]:
            log(f"head '{h.name}' is not written (no output given for it)")
    targets = [Target("class", i, p) for i, p in enumerate(outputs) if p and i < len(heads)]
    if confidence:
        targets.append(Target("confidence", 0, confidence))
    if probabilities:
        targets.append(Target("probabilities", 0, probabilities))
    return targets


def _open_input(input_path: str, model: Model, decode_threads: Optional[bool], log) -> gdal.Dataset:
    src = raster.open_raster(input_path, "input raster")
    if decode_threads is None:
        decode_threads = model.providers[0] in (CUDA_EP, TRT_EP)
    if decode_threads and src.GetDriver().ShortName == "GTiff":
        try:
            src = gdal.OpenEx(input_path, gdal.OF_RASTER | gdal.OF_READONLY, open_options=["NUM_THREADS=ALL_CPUS"])
            log("input blocks decoded on all CPU cores (GDAL NUM_THREADS)")
        except RuntimeError:  # keep the handle we have
            pass
    return src


def plan_classify(
    src: gdal.Dataset,
    model: Model,
    targets: List[Target],
    options: Optional[ClassifyOptions] = None,
    log: Callable[[str], None] = lambda m: None,
) -> ClassifyPlan:
    """Band mapping, nodata, CRS check, optional resampling, output window and tiles of one run."""
    options = options or ClassifyOptions()
    bands, resample = options.bands, options.resample
    card = model.card
    crs.north_up(src.GetGeoTransform(), "input raster")
    scale, valid_any = scale_coefficients(card), None
    if card.timeseries:  # a multi-date model: bands by name and date order (core/classify/temporal.py)
        from .temporal import temporal_inputs

        if bands and bands.strip():
            log("BANDS is ignored for a multi-date model: its bands are found by name on each date")
        t = temporal_inputs(card, raster.band_names(src), log)
        band_numbers, nodata, scale = t.band_numbers, t.nodata, t.scale
        model.feeds, valid_any = t.feeds, t.valid_channels
    else:
        band_numbers = map_bands(card.bands, raster.band_names(src), bands, log)
        log("model bands -> raster bands: " + ", ".join(f"{m}<-{b}" for m, b in zip(card.bands, band_numbers)))
        nodata = _nodata_values(src, band_numbers, model)
    # the bands' GDAL scale/offset (e.g. a processing-baseline offset kept as GDAL offset), multi-date ones too
    scale = _fold_scaling(scale, gdal_scaling(src, band_numbers, log))
    px = check_pixel_size(src, card.resolution_m, log, resample)
    ds = src
    res = card.resolution_m
    if resample and px is not None and res is not None:  # px is None without a card resolution or a CRS
        if abs(px - res) > 1e-9 * res:
            # the card's metres in map units (a CRS whose units are not ground metres: scaled at the centre)
            g = crs.ground_of_raster(src)
            assert g is not None  # check_pixel_size measured px on it
            ds = _resampled(src, res * g.nominal_size / px, nodata, log)
    if resample and card.resolution_m is None:
        log("RESAMPLE ignored: the model card gives no resolution_m")
    elif resample and px is None:
        log("RESAMPLE ignored: the raster has no CRS, so its pixel size in metres is unknown")
    extent = options.extent
    window = extent_to_window(ds, extent) if extent is not None else (0, 0, ds.RasterXSize, ds.RasterYSize)
    choice = choose_tiling(
        ds.RasterXSize,
        ds.RasterYSize,
        window,
        card.tile_size,
        card.halo,
        options.tile_size,
        options.batch_size,
        DEFAULT_BATCH,
        model.fixed_hw,
        model.batch_dim,
        model.size_multiple,
    )
    for note in choice.notes:
        log(note)
    tiles = plan_tiles(ds.RasterXSize, ds.RasterYSize, choice.shape, card.halo, window)
    x0, y0, ow, oh = window
    gt = ds.GetGeoTransform()
    log(
        f"{len(tiles)} tile(s) of {choice.shape[0]} x {choice.shape[1]} px (halo {card.halo}), batch {choice.batch}, "
        f"output {ow} x {oh} px; onnxruntime providers: {', '.join(model.providers)}"
    )
    return ClassifyPlan(
        ds=ds,
        model=model,
        band_numbers=list(band_numbers),
        nodata=nodata,
        window=window,
        tile=choice.tile,
        halo=card.halo,
        batch=choice.batch,
        tiles=tiles,
        scale=scale,
        geotransform=(gt[0] + x0 * gt[1], gt[1], 0.0, gt[3] + y0 * gt[5], 0.0, gt[5]),
        wkt=ds.GetProjection(),
        targets=targets,
        valid_any=valid_any,
    )


def open_model(
    model: Union[str, Model], options: Optional[ClassifyOptions] = None, monitor: Optional[Monitor] = None
) -> Model:
    """The model a run uses: ``model`` itself when it is loaded already (it must have been loaded for
    ``options.device``), else the ONNX file ``model`` loaded on ``options.device`` with ``options.threads``."""
    options = options or ClassifyOptions()
    if isinstance(model, Model):
        if model.device != options.device:
            raise SatClassifyError(
                f"the model '{model.path}' was loaded for DEVICE {model.device} but the run asks for DEVICE "
                f"{options.device}: load it with the run's options (open_model(path, options)) or pass its path"
            )
        return model
    return load_model(model, options.device, (monitor or Monitor()).info, options.threads)


def classify(
    input_path: str,
    model: Union[str, Model],
    outputs: Sequence[Optional[str]],
    confidence: Optional[str] = None,
    probabilities: Optional[str] = None,
    options: Optional[ClassifyOptions] = None,
    monitor: Optional[Monitor] = None,
) -> ClassifyResult:
    """Classify ``input_path`` with the ONNX model (a path, or a :class:`Model` from :func:`open_model`);
    ``outputs[h]`` is the class raster of head ``h`` (None = skip), ``confidence`` / ``probabilities`` those of the
    first head. The result says what was written and, per head, how many pixels each class value got."""
    if not outputs or not outputs[0]:
        raise SatClassifyError("no output file given for the class raster (OUTPUT)")
    options = options or ClassifyOptions()
    monitor = monitor or Monitor()
    model = open_model(model, options, monitor)  # the options were checked when made: before the model loads
    targets = _targets(outputs, model.card.heads, confidence, probabilities, monitor.info)
    plan = plan_classify(
        _open_input(input_path, model, options.decode_threads, monitor.info), model, targets, options, monitor.info
    )
    return run_plan(plan, monitor)


def run_plan(plan: ClassifyPlan, monitor: Optional[Monitor] = None) -> ClassifyResult:
    """Write the plan's outputs (each under a temporary name, renamed when complete)."""
    monitor = monitor or Monitor()
    log = monitor.info
    heads = plan.heads
    x0, y0, ow, oh = plan.window
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        tmp_paths = [stack.enter_context(raster.AtomicOutput(t.path)) for t in plan.targets]
        datasets = []
        writers = []
        try:
            for t, tmp in zip(plan.targets, tmp_paths):
                nb = heads[t.head].num_classes if t.kind == "probabilities" else 1
                fill = 0 if t.kind == "class" else CONF_NODATA
                out = raster.create_geotiff(
                    tmp,
                    ow,
                    oh,
                    nb,
                    gdal.GDT_Byte,
                    plan.geotransform,
                    plan.wkt,
                    nodata=fill,
                    options=OUT_OPTIONS,
                    **_output_metadata(t.kind, heads[t.head]),
                )
                datasets.append(out)
                writers.append(_StripWriter(out, nb, x0, y0, ow, fill))
            stats = _run_pipeline(plan, writers, monitor)
            negative_dn, scores = stats.pop("negative_dn"), stats.pop("scores")
            counts = stats.pop("class_counts")  # stats keeps the timings
            if negative_dn:
                log(
                    f"warning: {negative_dn} pixels hold a negative value in a model band, which is no "
                    "valid Sentinel-2 digital number (a fill value, or a stack written with another convention): "
                    + (
                        "that date is no observation there (as if its VALID were 0); a pixel without a valid date "
                        "is nodata (class 0)"
                        if plan.valid_any
                        else "they are nodata (class 0)"
                    )
                )
            check_scores(heads, scores, log)  # no class raster from a model that gave only NaN
            for out_ds in datasets:
                out_ds.FlushCache()
        finally:
            # close every output (drop all references) before AtomicOutput renames or removes it
            writers.clear()
            out = out_ds = None
            for i in range(len(datasets)):
                datasets[i] = None
            datasets.clear()
    seconds = time.perf_counter() - t_start
    mpix = ow * oh / 1e6
    written = {t.head: t.path for t in plan.targets if t.kind == "class"}
    model = plan.model
    res = ClassifyResult(
        outputs=[written.get(i) for i in range(max(written) + 1)],
        confidence=next((t.path for t in plan.targets if t.kind == "confidence"), None),
        probabilities=next((t.path for t in plan.targets if t.kind == "probabilities"), None),
        provider=model.providers[0],
        providers=list(model.providers),
        megapixels=mpix,
        seconds=seconds,
        tiles=len(plan.tiles),
        tile_size=plan.tile,
        halo=plan.halo,
        batch_size=plan.batch,
        heads=heads,
        stats=stats,
        class_counts=[counts.get(i) for i in range(len(heads))],
    )
    log(f"ran on {res.provider}: {mpix:.2f} MPix in {seconds:.2f} s = {res.mpix_per_s:.2f} MPix/s")
    if seconds > 0:
        log(
            "time of the inference thread: onnxruntime {:.0%}, waiting for input tiles {:.0%}, waiting for the "
            "writer {:.0%} (much waiting for input: reading/decoding is the bottleneck; for the writer: "
            "compression/disk)".format(
                stats["inference"] / seconds, stats["wait_input"] / seconds, stats["wait_writer"] / seconds
            )
        )
        log(
            "CPU time: reader thread {:.1f} s, writer thread {:.1f} s, whole process {:.1f} s in {:.1f} s (on a CPU "
            "run what the reader and writer take is taken from onnxruntime's threads)".format(
                stats["reader_cpu"], stats["writer_cpu"], stats["process_cpu"], seconds
            )
        )
    return res


def _output_metadata(kind: str, head) -> dict:
    """Band descriptions (and, for a class raster, the legend) of one output: ``create_geotiff`` sets them
    before any pixel is written (GDAL >= 3.10 refuses a colour table afterwards)."""
    if kind == "class":
        return {"descriptions": [head.name], "classes": head.classes}
    if kind == "confidence":
        return {"descriptions": [f"confidence {head.name} (max probability, %)"]}
    return {"descriptions": [f"{c.value} {c.name} (%)" for c in head.classes]}


def _read_runs(ds, group: Sequence[Tile], band_numbers):
    """(tile, its window as (bands, rows, cols)) for each tile of a batch, in order. Neighbouring tiles of
    one tile row are read with a single RasterIO over their union, so the compressed blocks they share
    (halo overlap) are decoded once instead of once per tile."""
    n_bands = len(band_numbers)
    i = 0
    while i < len(group):
        ry, rh = group[i].read[1], group[i].read[3]
        j = i + 1
        while j < len(group) and (group[j].read[1], group[j].read[3]) == (ry, rh):
            j += 1
        run = group[i:j]
        ux0 = min(t.read[0] for t in run)
        ux1 = max(t.read[0] + t.read[2] for t in run)
        u = ds.ReadAsArray(ux0, ry, ux1 - ux0, rh, band_list=list(band_numbers)).reshape(n_bands, rh, ux1 - ux0)
        for t in run:
            rx, rw = t.read[0], t.read[2]
            yield t, u[:, :, rx - ux0 : rx - ux0 + rw]
        i = j


class _BatchReader:
    """Reads the tiles of one batch into the model's input array (scaled, padded) and their nodata masks."""

    def __init__(self, plan: ClassifyPlan):
        self.plan = plan
        ds = plan.ds
        a, b = plan.scale
        self.a3, self.b3 = a[:, None, None], b[:, None, None]
        bounds = input_bounds(plan.model.card)  # the card's input_clip (None for a multi-date card)
        self.bounds = None if bounds is None else (bounds[0][:, None, None], bounds[1][:, None, None])
        self.is_float = any(
            ds.GetRasterBand(bn).DataType in (gdal.GDT_Float32, gdal.GDT_Float64) for bn in plan.band_numbers
        )
        self.tw, self.th = plan.tiles[0].size
        #: a Sentinel-2 DN model on signed bands: negative stored values are nodata (counted for the log); on a
        #: multi-date stack they make their date invalid at that pixel (:func:`invalidate_negative_dates`)
        negative = negative_dn_invalid(ds, plan.band_numbers, plan.model)
        self.negative_invalid = negative and not plan.valid_any
        self.negative_dates = negative and bool(plan.valid_any)
        self.negatives = 0

    def read(self, group: Sequence[Tile], stop: threading.Event):
        plan = self.plan
        nb = plan.model.batch_dim or len(group)
        x = np.zeros((nb, len(plan.band_numbers), self.th, self.tw), dtype=np.float32)
        masks = []
        for j, (t, raw) in enumerate(_read_runs(plan.ds, group, plan.band_numbers)):
            if stop.is_set():
                return None
            ox, oy = t.core_offset
            if self.negative_dates and plan.valid_any:  # negative_dates implies valid_any
                self.negatives += invalidate_negative_dates(raw, plan.valid_any, ox, oy, t.core)
            core = raw[:, oy : oy + t.core[3], ox : ox + t.core[2]]
            # NaN and +-inf, nodata values and negative DN are no measurement: those pixels get the outputs' nodata
            invalid, n_neg = invalid_pixels(core, plan.nodata, self.is_float, self.negative_invalid)
            self.negatives += n_neg
            if plan.valid_any:  # a multi-date stack: nodata where no date is valid (negative_invalid is off then)
                invalid |= ~(core[plan.valid_any] > 0).any(axis=0)
            masks.append(invalid)
            pr, pb = t.pad
            v = x[j] if not (pr or pb) else np.empty(raw.shape, np.float32)
            np.multiply(raw, self.a3, out=v, casting="unsafe")  # scale straight into the batch
            v += self.b3
            if self.bounds is not None:
                np.clip(v, *self.bounds, out=v)
            if self.is_float:
                np.nan_to_num(v, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            if pr or pb:
                x[j] = np.pad(v, ((0, 0), (0, pb), (0, pr)), mode="reflect")
        # drop the cached input blocks of this batch: memory stays flat whatever the raster width
        plan.ds.FlushCache()
        return x, masks


def _tile_array(kind: str, out, lut: np.ndarray, j: int, t: Tile, invalid: np.ndarray) -> np.ndarray:
    """(bands, rows, cols) uint8 of one target for the core of tile ``t`` (batch item ``j``) from a head's
    (argmax, max, probabilities) outputs."""
    idx, best, p = out
    ox, oy = t.core_offset
    cw, ch = t.core[2], t.core[3]
    if kind == "class":
        arr = np.take(lut, idx[j, oy : oy + ch, ox : ox + cw])
        np.putmask(arr, invalid, 0)
        return arr[None]
    if kind == "confidence":
        arr = np.clip(np.rint(best[j, oy : oy + ch, ox : ox + cw] * 100.0), 0, 100).astype(np.uint8)
        arr[invalid] = CONF_NODATA
        return arr[None]
    arr = np.clip(np.rint(p[j, :, oy : oy + ch, ox : ox + cw] * 100.0), 0, 100).astype(np.uint8)
    arr[:, invalid] = CONF_NODATA
    return arr


def _check_output_shapes(heads, outs, x: np.ndarray, tw: int, th: int) -> None:
    for h, o in zip(heads, [o[2] for o in outs]):
        if o.ndim != 4 or o.shape[1] != h.num_classes or o.shape[2:] != (th, tw) or o.shape[0] != x.shape[0]:
            raise SatClassifyError(
                f"the model's output '{h.output}' has shape {tuple(o.shape)} for an input of shape "
                f"{tuple(x.shape)}; expected ({x.shape[0]}, {h.num_classes}, {th}, {tw}) "
                f"(one probability per class of head '{h.name}')"
            )


def _run_pipeline(plan: ClassifyPlan, writers, monitor: Monitor):
    """Reader thread -> onnxruntime on this thread -> writer thread, with bounded queues between them. The writer
    counts the pixels of each class value it writes to a class raster (``stats["class_counts"]``, per head)."""
    return _Pipeline(plan, writers, monitor).run()


class _Pipeline:
    """One run's three stages and what they share: the queues (two batches each), the stop event, the first error
    of a thread, the timings, and what the writer counts (scores per head, pixels per class value)."""

    def __init__(self, plan: ClassifyPlan, writers, monitor: Monitor):
        self.plan, self.writers, self.monitor = plan, writers, monitor
        self.heads = plan.model.card.heads
        self.batches = _BatchReader(plan)
        self.stop = threading.Event()
        self.errors: List[BaseException] = []
        self.q_in: "queue.Queue" = queue.Queue(maxsize=2)
        self.q_out: "queue.Queue" = queue.Queue(maxsize=2)
        self.luts = [np.array([c.value for c in h.classes], dtype=np.uint8) for h in self.heads]
        self.used_heads = sorted({t.head for t in plan.targets})
        # per head: valid input pixels, of which the model scored non-finite; pixels per class value written
        self.scores = {h: [0, 0] for h in self.used_heads}
        self.counts = {t.head: np.zeros(256, np.int64) for t in plan.targets if t.kind == "class"}
        # seconds of the inference thread in onnxruntime / waiting, and CPU seconds of the reader, the writer and
        # the whole process (onnxruntime's own threads are the rest of the process's CPU)
        self.stats: Dict[str, Any] = {
            "inference": 0.0,
            "wait_input": 0.0,
            "wait_writer": 0.0,
            "reader_cpu": 0.0,
            "writer_cpu": 0.0,
        }

    def put(self, q, item) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q):
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return _STOP

    def reader(self):
        c0 = time.thread_time()
        tiles, batch = self.plan.tiles, self.plan.batch
        try:
            for s in range(0, len(tiles), batch):
                group = tiles[s : s + batch]
                read = self.batches.read(group, self.stop)
                if read is None or not self.put(self.q_in, (group,) + read):
                    return
            self.put(self.q_in, None)
        except BaseException as e:
            self.errors.append(e)
            self.stop.set()
        finally:
            self.stats["reader_cpu"] = time.thread_time() - c0

    def writer(self):
        c0 = time.thread_time()
        try:
            while True:
                item = self.get(self.q_out)
                if item is None or item is _STOP:
                    break
                self.write_batch(*item)
            if not self.stop.is_set():
                for w in self.writers:
                    w.close()
        except BaseException as e:
            self.errors.append(e)
            self.stop.set()
        finally:
            self.stats["writer_cpu"] = time.thread_time() - c0

    def write_batch(self, group, outs, masks):
        """``outs[h]`` = (argmax, max, probabilities or None) of head h, batch-wide; ``masks``: the tiles' nodata."""
        for j, t in enumerate(group):
            invalid = {h: _score_mask(outs[h], j, t, masks[j], self.scores[h]) for h in self.used_heads}
            for target, w in zip(self.plan.targets, self.writers):
                arr = _tile_array(target.kind, outs[target.head], self.luts[target.head], j, t, invalid[target.head])
                if target.kind == "class":
                    self.counts[target.head] += np.bincount(arr.ravel(), minlength=256)
                w.put(t, arr)

    def infer(self):
        """This thread: batches from the reader through onnxruntime to the writer, progress per batch."""
        model, tiles, stats = self.plan.model, self.plan.tiles, self.stats
        prob_heads = sorted({t.head for t in self.plan.targets if t.kind == "probabilities"})
        checked = False  # output shapes are checked on the first batch (the model is the same for all)
        done = 0
        while True:
            self.monitor.check()
            t0 = time.perf_counter()
            item = self.get(self.q_in)
            t1 = time.perf_counter()
            stats["wait_input"] += t1 - t0
            if item is _STOP:
                break
            if item is None:
                self.put(self.q_out, None)
                break
            group, x, masks = item
            # the first batch also brings every head's probabilities, to check their shapes once
            outs = model.run_top(x, prob_heads if checked else range(len(self.heads)))
            t2 = time.perf_counter()
            stats["inference"] += t2 - t1
            if not checked:
                _check_output_shapes(self.heads, outs, x, self.batches.tw, self.batches.th)
                checked = True
            ok = self.put(self.q_out, (group, outs, masks))
            stats["wait_writer"] += time.perf_counter() - t2
            if not ok:
                break
            done += len(group)
            self.monitor.progress(done / len(tiles))

    def run(self) -> Dict[str, Any]:
        cpu0 = time.process_time()
        threads = [
            threading.Thread(target=self.reader, name="satclassify-reader", daemon=True),
            threading.Thread(target=self.writer, name="satclassify-writer", daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            self.infer()
            threads[1].join()
        except BaseException:
            self.stop.set()
            raise
        finally:
            if self.errors:
                self.stop.set()
            for t in threads:
                t.join()
        if self.errors:
            raise self.errors[0]
        self.stats["process_cpu"] = time.process_time() - cpu0
        self.stats["scores"] = self.scores
        self.stats["negative_dn"] = self.batches.negatives
        self.stats["class_counts"] = self.counts
        return self.stats


def _score_mask(out, j: int, t: Tile, invalid: np.ndarray, count: list) -> np.ndarray:
    """The nodata mask of a tile's core for one head: the input's nodata, plus the pixels where the model's top
    score is not finite (NaN or infinite: no class can be read from them). ``count`` gets [valid pixels, of which
    non-finite] added."""
    best = out[1]
    ox, oy = t.core_offset
    finite = np.isfinite(best[j, oy : oy + t.core[3], ox : ox + t.core[2]])
    valid = ~invalid
    count[0] += int(np.count_nonzero(valid))
    bad = valid & ~finite
    n = int(np.count_nonzero(bad))
    if not n:
        return invalid
    count[1] += n
    return invalid | bad


def check_scores(heads, scores: dict, log) -> None:
    """After a run: refuse it when a head scored no valid pixel with finite numbers (the model is broken: NaN
    out), else warn how many pixels became nodata for non-finite scores."""
    for h, (valid, bad) in sorted(scores.items()):
        if not bad:
            continue
        name = heads[h].name
        if bad == valid:
            raise SatClassifyError(
                f"the model gave no finite score (NaN or infinite) for any of the {valid} valid pixels of head "
                f"'{name}': no class raster was written. The model or its card's preprocessing is broken (e.g. a "
                "std of 0, NaN weights, or input values outside what it was trained on): re-export the model, or "
                "check its mean/std and input_scale"
            )
        log(
            f"warning: the model gave non-finite scores (NaN or infinite) for {bad} of {valid} valid pixels "
            f"({100.0 * bad / valid:.2f} %) of head '{name}': those pixels are nodata (class 0, confidence 255), "
            "not a class"
        )
