"""GDAL side of the Sentinel-2 tools (QGIS env only): AOI window reads, mosaics, stack + mask writing, SAFE import.

Reading: every band of every tile is warped by GDAL straight onto the output grid, so only the blocks of
a cloud-optimised GeoTIFF that cover the AOI are requested (``/vsicurl/`` HTTP range reads); a SAFE
product is read in place through ``/vsizip/`` (never extracted). Resampling onto the 10 m grid: nearest
neighbour when the source pixel size equals the output's (the values are copied unchanged), bilinear
for 20 m / 60 m reflectance bands, nearest for SCL (classes must not be averaged). Nodata (DN 0) is
excluded from interpolation.

Harmonisation (see :mod:`.s2`): each tile's DN get the tile's offset (-1000 for baseline >= 04.00 unless
the provider already applied it) *before* mosaicking, so tiles of different baselines agree.
Mosaic: the tiles of one date are combined in the order given (first valid pixel wins).
Mask: uint8, 1 = valid, 0 = invalid (SCL 0, 1, 3, 8, 9, 10, 11, or any requested band at nodata);
without SCL (L1C) only the nodata rule applies.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import xml.etree.ElementTree as ET
import zipfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, TypedDict

import numpy as np
from osgeo import gdal, ogr, osr

from .. import crs, raster
from ..contract.errors import SatClassifyError
from ..net import Canceled, Deadlines, Monitor, host_of
from . import style
from .clouds import StackClouds
from .products import (
    BAND_ID,
    BAND_RESOLUTION,
    MASK_CLASSES,
    QUANTIFICATION,
    Scene,
    format_baseline,
    harmonise,
    offset_applies,
    scl_mask,
)

gdal.UseExceptions()
ogr.UseExceptions()
osr.UseExceptions()

#: GDAL settings for remote reads (applied only inside :func:`gdal_remote_config`, with the deadline options
#: of :meth:`~satclassify_plugin.core.net.Deadlines.gdal_options`: GDAL_HTTP_TIMEOUT, GDAL_HTTP_CONNECTTIMEOUT,
#: GDAL_HTTP_LOW_SPEED_TIME/LIMIT, GDAL_HTTP_MAX_RETRY).
REMOTE_CONFIG = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.jp2",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
    "CPL_VSIL_CURL_USE_HEAD": "YES",
}
MAX_SIDE = 40000  # pixels: beyond this the AOI is surely a mistake (400 km at 10 m)


@contextlib.contextmanager
def gdal_remote_config(**overrides: object) -> Iterator[None]:
    """Set GDAL config options for HTTP reads (:data:`REMOTE_CONFIG` and the deadline policy, by default
    :meth:`Deadlines.from_env` with 3 retries; callers pass ``HttpClient.gdal_options()``; an override None unsets
    that option), restoring the previous values afterwards."""
    opts: Dict[str, Optional[str]] = {**REMOTE_CONFIG, **Deadlines.from_env().gdal_options(3)}
    opts.update({k: None if v is None else str(v) for k, v in overrides.items()})  # None: unset
    old = {k: gdal.GetConfigOption(k) for k in opts}
    try:
        for k, v in opts.items():
            gdal.SetConfigOption(k, v)
        yield
    finally:
        for k, v in old.items():
            gdal.SetConfigOption(k, v)


def vsi_path(href: str) -> str:
    """A GDAL path for an asset href: http(s) -> /vsicurl/, s3:// -> /vsis3/, local paths unchanged."""
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("s3://"):
        return "/vsis3/" + href[5:]
    if href.startswith("file://"):
        return href[7:]
    return href


# ---------------------------------------------------------------------------------------------------------
# geometry


def geometry_from_wkt(wkt: str, what: str = "area of interest") -> ogr.Geometry:
    try:
        g = ogr.CreateGeometryFromWkt(wkt)
    except RuntimeError as e:
        raise SatClassifyError(f"invalid {what} geometry: {e}")
    if g is None or g.IsEmpty():
        raise SatClassifyError(f"the {what} is empty")
    return g


def utm_epsg(lon: float, lat: float) -> int:
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def aoi_cover(footprint: Optional[dict], aoi_wkt: str) -> Optional[float]:
    """% of the AOI (WKT, EPSG:4326 lon/lat) inside a GeoJSON footprint, measured in the AOI's UTM zone."""
    if not footprint:
        return None
    import json

    try:
        fp = ogr.CreateGeometryFromJson(json.dumps(footprint))
    except (RuntimeError, TypeError, ValueError):
        return None
    if fp is None or fp.IsEmpty():
        return None
    aoi = geometry_from_wkt(aoi_wkt)
    c = aoi.Centroid()
    ct = osr.CoordinateTransformation(raster.srs_from_epsg(4326), raster.srs_from_epsg(utm_epsg(c.GetX(), c.GetY())))
    a, f = aoi.Clone(), fp.Clone()
    a.Transform(ct)
    f.Transform(ct)
    if not f.IsValid():
        f = f.Buffer(0)
    area = a.GetArea()
    if area <= 0:  # a point or a line: inside or not
        return 100.0 if f.Intersects(a) else 0.0
    return round(100.0 * min(a.Intersection(f).GetArea() / area, 1.0), 2)


def bbox_wkt(xmin: float, ymin: float, xmax: float, ymax: float) -> str:
    return f"POLYGON(({xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}))"


# ---------------------------------------------------------------------------------------------------------
# stack building

_CURL_TIMEOUT = re.compile(r"Operation too slow|Operation timed out|Timeout was reached|timed out", re.I)


@contextlib.contextmanager
def _remote_read(path: str, what: str) -> Iterator[None]:
    """Run a GDAL read of ``path``; a /vsicurl/ read that hit the deadline policy (curl: GDAL_HTTP_TIMEOUT or
    the low-speed rule) raises the policy's message naming the host, any other failure "cannot read ...".
    curl's reason reaches only GDAL's debug messages, so they are collected (thread-locally) while reading."""
    remote = path.startswith("/vsicurl/")
    notes: List[str] = []
    if remote:
        old_debug = gdal.GetThreadLocalConfigOption("CPL_DEBUG", None)
        gdal.SetThreadLocalConfigOption("CPL_DEBUG", "ON")
        gdal.PushErrorHandler(lambda cls, no, msg: notes.append(str(msg)))
    try:
        try:
            yield
        except RuntimeError as e:
            timeout = next((n for n in notes if _CURL_TIMEOUT.search(n)), None) if remote else None
            if timeout is not None:
                policy = Deadlines.from_gdal_options(gdal.GetConfigOption)
                url = _short(path)
                say = policy.stalled if "too slow" in timeout.lower() else policy.exceeded
                raise SatClassifyError(say(host_of(url), f"reading {what}")) from e
            raise SatClassifyError(f"cannot read {what} ({_short(path)}): {e}") from e
    finally:
        if remote:
            gdal.PopErrorHandler()
            gdal.SetThreadLocalConfigOption("CPL_DEBUG", old_debug)


def _open(path: str, what: str) -> gdal.Dataset:
    with _remote_read(path, what):
        ds = gdal.Open(path)
    if ds is None:
        raise SatClassifyError(f"cannot read {what} ({_short(path)})")
    return ds


def _short(path: str) -> str:
    return re.sub(r"^/vsicurl/", "", path)


def _extent_in(ds: gdal.Dataset, dst: osr.SpatialReference) -> Tuple[float, float, float, float]:
    w, h, gt, wkt = raster.grid_of(ds)
    xs = [gt[0], gt[0] + gt[1] * w]
    ys = [gt[3], gt[3] + gt[5] * h]
    src = raster.srs_of(ds)
    if src is None or src.IsSame(dst):
        return min(xs), min(ys), max(xs), max(ys)
    ct = osr.CoordinateTransformation(src, dst)
    return ct.TransformBounds(min(xs), min(ys), max(xs), max(ys), 21)


Grid = Tuple[osr.SpatialReference, Tuple[float, float, float, float], int, int]  # SRS, bounds, width, height


def target_grid(
    scenes: Sequence[Scene], bands: Sequence[str], aoi_wkt: Optional[str], target_epsg: Optional[int], resolution: float
) -> Grid:
    """Output SRS, bounds (snapped to ``resolution``), width and height."""
    first = _open(scenes[0].assets[bands[0]], f"band {bands[0]} of {scenes[0].id}")
    if target_epsg:
        dst = raster.srs_from_epsg(target_epsg)
    else:
        dst = raster.srs_of(first)
        if dst is None:
            dst = raster.srs_from_epsg(scenes[0].epsg) if scenes[0].epsg else None
        if dst is None:
            raise SatClassifyError(f"{scenes[0].id} has no coordinate reference system: set TARGET_CRS")
    if aoi_wkt:
        g = geometry_from_wkt(aoi_wkt)
        g.Transform(osr.CoordinateTransformation(raster.srs_from_epsg(4326), dst))
        xmin, xmax, ymin, ymax = g.GetEnvelope()
        # keep only the part the tiles cover
        ext = [_extent_in(_open(s.assets[bands[0]], f"band {bands[0]} of {s.id}"), dst) for s in scenes]
        ux = (min(e[0] for e in ext), min(e[1] for e in ext), max(e[2] for e in ext), max(e[3] for e in ext))
        xmin, ymin, xmax, ymax = max(xmin, ux[0]), max(ymin, ux[1]), min(xmax, ux[2]), min(ymax, ux[3])
        if xmin >= xmax or ymin >= ymax:
            raise SatClassifyError(
                "the area of interest lies outside the product footprint: choose another product or extent"
            )
    else:
        ext = [_extent_in(_open(s.assets[bands[0]], f"band {bands[0]} of {s.id}"), dst) for s in scenes]
        xmin, ymin = min(e[0] for e in ext), min(e[1] for e in ext)
        xmax, ymax = max(e[2] for e in ext), max(e[3] for e in ext)
    r = float(resolution)
    # snap outwards to the grid; 1e-4 pixel (1 mm at 10 m) absorbs the round trip of an extent given in the
    # output CRS through EPSG:4326, so such an extent is kept exactly
    xmin, ymin = math.floor(xmin / r + 1e-4) * r, math.floor(ymin / r + 1e-4) * r
    xmax, ymax = math.ceil(xmax / r - 1e-4) * r, math.ceil(ymax / r - 1e-4) * r
    w, h = int(round((xmax - xmin) / r)), int(round((ymax - ymin) / r))
    if w <= 0 or h <= 0:
        raise SatClassifyError("the area of interest is smaller than one pixel")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise SatClassifyError(f"the area of interest is too large ({w} x {h} pixels at {r:g} m): use a smaller extent")
    g = crs.ground_of((xmin, r, 0.0, ymax, 0.0, -r), dst, w, h)
    if g is not None and not g.metre_true:  # Web Mercator, degrees: r map units are not r ground metres
        raise SatClassifyError(
            f"TARGET_CRS {dst.GetName()}: its map units are not ground metres over the area of interest (a pixel "
            f"of {r:g} map units is {g.size_m:.3g} m on the ground at its centre, measured on the ellipsoid), so the "
            f"stack would not have {r:g} m pixels: choose a projected CRS in metres, such as the area's UTM zone "
            "(EPSG:326xx north, 327xx south) or EPSG:3035 in Europe, or leave TARGET_CRS empty (the product's own "
            "UTM zone); reproject the stack afterwards for a web map"
        )
    return dst, (xmin, ymin, xmax, ymax), w, h


def _warp_band(path: str, dst: osr.SpatialReference, bounds, w: int, h: int, band: str, what: str) -> np.ndarray:
    src = _open(path, what)
    gt = src.GetGeoTransform()
    src_srs = raster.srs_of(src)
    same_res = src_srs is not None and src_srs.IsSame(dst) and abs(abs(gt[1]) - (bounds[2] - bounds[0]) / w) < 1e-6
    resample = "near" if (band == "SCL" or same_res) else "bilinear"
    with _remote_read(path, what):
        out = gdal.Warp(
            "",
            src,
            format="MEM",
            outputBounds=bounds,
            width=w,
            height=h,
            dstSRS=dst.ExportToWkt(),
            resampleAlg=resample,
            srcNodata=0,
            dstNodata=0,
            outputType=gdal.GDT_UInt16,
            multithread=False,
        )
    if out is None:
        raise SatClassifyError(f"cannot read {what} ({_short(path)})")
    return out.GetRasterBand(1).ReadAsArray()


def mosaic_band(
    scenes: Sequence[Scene], band: str, dst: osr.SpatialReference, bounds, w: int, h: int, mon: Monitor
) -> np.ndarray:
    """``band`` of the tiles ``scenes`` (one overpass) on the grid, harmonised per tile; the first valid pixel
    wins (tiles in the order given). Also used by the multi-date stacks (:mod:`.timeseries`)."""
    acc = np.zeros((h, w), np.uint16)
    for s in scenes:
        mon.check()
        arr = _warp_band(s.assets[band], dst, bounds, w, h, band, f"band {band} of {s.id}")
        arr = harmonise(arr, s.offset_for(band))
        fill = acc == 0
        acc[fill] = arr[fill]
    return acc


def build_stack(
    scenes: Sequence[Scene],
    bands: Sequence[str],
    output: str,
    mask_output: Optional[str] = None,
    aoi_wkt: Optional[str] = None,
    target_epsg: Optional[int] = None,
    resolution: float = 10.0,
    monitor: Optional[Monitor] = None,
    metadata: Optional[Dict[str, str]] = None,
    clouds: str = "auto",
) -> Dict[str, object]:
    """Read ``bands`` of the tiles ``scenes`` (one date) onto one grid and write the uint16 stack (+ mask).

    Each scene's ``assets`` maps band -> GDAL-readable path; ``scene.offset_for(band)`` gives its offset.
    ``clouds``: how the mask treats clouds (:data:`.clouds.MODES`; auto = SCL, or the detector without SCL).
    Returns a summary: width, height, epsg, bounds, offsets, valid fraction.
    """
    mon = monitor or Monitor()
    scenes = list(scenes)
    bands = list(bands)
    if not scenes:
        raise SatClassifyError("no product to read")
    for s in scenes:
        missing = [b for b in bands if b not in s.assets]
        if missing:
            raise SatClassifyError(
                f"product {s.id} has no band {', '.join(missing)} (available: {', '.join(sorted(s.assets)) or 'none'})"
            )
    has_scl = all("SCL" in s.assets for s in scenes)
    dst, bounds, w, h = target_grid(scenes, bands, aoi_wkt, target_epsg, resolution)
    gt = (bounds[0], float(resolution), 0.0, bounds[3], 0.0, -float(resolution))
    steps = len(bands) + (0 if ("SCL" in bands or not has_scl) else 1)
    step = [0]

    def read(band: str) -> np.ndarray:
        acc = mosaic_band(scenes, band, dst, bounds, w, h, mon)
        step[0] += 1
        mon.progress(step[0] / steps)
        mon.info(f"read {band} ({w} x {h} pixels from {len(scenes)} tile(s))")
        return acc

    valid = np.ones((h, w), bool)
    # clouds: SCL and/or the cloud detector (core/s2/clouds.py) -----------------------------------------
    cm = (
        StackClouds(
            clouds,
            has_scl,
            scenes[0].product_type or "L1C",
            bands,
            [b for b in BAND_RESOLUTION if all(b in s.assets for s in scenes)],
            log=mon.info,
        )
        if mask_output
        else None
    )
    steps += len([b for b in cm.bands if b not in bands]) if cm is not None and cm.active else 0
    scl = read("SCL") if has_scl and (cm is None or cm.use_scl or "SCL" in bands) else None
    if scl is not None and (cm is None or cm.use_scl):
        valid &= scl_mask(scl).astype(bool)
    md = {
        "SATCLASSIFY_SCALE": str(1.0 / QUANTIFICATION),
        "SATCLASSIFY_BANDS": ",".join(bands),
        "SATCLASSIFY_PRODUCTS": ",".join(s.id for s in scenes),
        "SATCLASSIFY_BASELINES": ",".join(format_baseline(s.baseline) or "unknown" for s in scenes),
        "SATCLASSIFY_OFFSETS": ",".join(f"{s.id}:{s.offset_for(bands[0])}" for s in scenes),
        "SATCLASSIFY_HARMONISATION": "DN = max(DN_product + BOA_ADD_OFFSET, 1) for baseline >= 04.00; "
        "reflectance = DN / 10000; 0 = nodata",
    }
    if metadata:
        md.update({k: str(v) for k, v in metadata.items()})
    with stack_outputs(output, mask_output, bands, bands, w, h, gt, dst.ExportToWkt(), md) as out:
        cuts = {}  # the 2-98 % stretch of each band, for the style
        for i, b in enumerate(bands):
            arr = scl if (b == "SCL" and scl is not None) else read(b)
            if b != "SCL":
                valid &= arr != 0
                cuts[i + 1] = style.array_cut(arr)
                if cm is not None:
                    cm.keep(b, arr)
            out.ds.GetRasterBand(i + 1).WriteArray(arr)
        styles = out.finish(cuts)
        if cm is not None and cm.active:
            valid &= cm.run(read, float(resolution), monitor=mon)
        out.write_mask(valid, MASK_CLASSES, "invalid", cm.rule() if cm is not None else "")
        mon.check()
    epsg = dst.GetAuthorityCode(None)
    return {
        "width": w,
        "height": h,
        "bounds": bounds,
        "epsg": int(epsg) if epsg else None,
        "offsets": {s.id: s.offset_for(bands[0]) for s in scenes},
        "has_scl": has_scl,
        "cloud_detector": cm.detector if cm is not None else "",
        "valid_fraction": float(valid.mean()) if valid.size else 0.0,
        "styles": styles,
    }


class _StackOut:
    """The open outputs of one stack write (see :func:`stack_outputs`)."""

    def __init__(self, ds, mask_tmp, write_style, w, h, gt, wkt):
        self.ds, self._mask_tmp, self._write_style = ds, mask_tmp, write_style
        self._grid = (w, h, gt, wkt)

    def finish(self, cuts) -> dict:
        """Close the stack and write its style (``cuts``: band number -> 2-98 % stretch); the style names."""
        self.ds.FlushCache()
        self.ds = None
        return self._write_style(cuts)

    def write_mask(self, valid: np.ndarray, classes, nodata_name: str, rule: str) -> None:
        if not self._mask_tmp:
            return
        w, h, gt, wkt = self._grid
        m = raster.create_geotiff(
            self._mask_tmp,
            w,
            h,
            1,
            gdal.GDT_Byte,
            gt,
            wkt,
            descriptions=["valid"],
            classes=classes,
            nodata_name=nodata_name,
            metadata={"SATCLASSIFY_MASK": rule},
        )
        m.GetRasterBand(1).WriteArray(valid.astype(np.uint8))
        m.FlushCache()
        m = None


@contextlib.contextmanager
def stack_outputs(
    output: str,
    mask_output: Optional[str],
    names: Sequence[str],
    style_bands: Sequence[str],
    w: int,
    h: int,
    gt,
    wkt: str,
    metadata: Dict[str, str],
):
    """A uint16 stack (band descriptions ``names``, nodata 0) and its optional mask, written under temporary
    names and renamed together on success, with the natural-colour ``.qml`` of ``style_bands`` (renamed after
    the stack); nothing is left on an error or cancel."""
    with contextlib.ExitStack() as stack:
        write_style = stack.enter_context(style.style_beside(output, style_bands))  # renamed after the stack
        tmp = stack.enter_context(raster.AtomicOutput(output))
        mtmp = stack.enter_context(raster.AtomicOutput(mask_output)) if mask_output else None
        ds = raster.create_geotiff(
            tmp, w, h, len(names), gdal.GDT_UInt16, gt, wkt, nodata=0, descriptions=list(names), metadata=metadata
        )
        style.set_colour_interpretation(ds, style_bands)
        out = _StackOut(ds, mtmp, write_style, w, h, gt, wkt)
        try:
            yield out
        finally:
            out.ds = ds = None


# ---------------------------------------------------------------------------------------------------------
# SAFE products

_MTD_RE = re.compile(r"(^|/)MTD_MSIL(1C|2A)\.xml$")


def check_zip_members(zf: zipfile.ZipFile, label: str) -> None:
    """Reject archives whose entries would land outside the product folder (zip-slip) or are links."""
    for info in zf.infolist():
        name = info.filename
        norm = name.replace("\\", "/")
        parts = [p for p in norm.split("/") if p not in ("", ".")]
        mode = (info.external_attr >> 16) & 0o170000
        if (
            norm.startswith("/")
            or re.match(r"^[A-Za-z]:", norm)
            or ".." in parts
            or "\x00" in name
            or mode == stat.S_IFLNK
        ):
            raise SatClassifyError(
                f"unsafe archive '{label}': entry '{name}' points outside the product folder "
                "(zip-slip) or is a link; the archive was rejected, nothing was extracted"
            )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_all(root: ET.Element, name: str) -> List[ET.Element]:
    return [e for e in root.iter() if _local(e.tag) == name]


def _text(root: ET.Element, name: str) -> Optional[str]:
    for e in _find_all(root, name):
        if e.text and e.text.strip():
            return e.text.strip()
    return None


class ProductMetadata(TypedDict):
    """What :func:`parse_product_mtd` reads from MTD_MSIL2A.xml / MTD_MSIL1C.xml ("" or None where absent)."""

    level: str  # "L2A" or "L1C"
    product_type: str
    baseline: str
    offsets: Dict[str, int]  # band -> BOA_ADD_OFFSET / RADIO_ADD_OFFSET
    image_files: List[str]
    platform: str
    datetime: str
    product_uri: str
    cloud: Optional[float]
    quantification: Optional[float]


def parse_product_mtd(xml_bytes: bytes) -> ProductMetadata:
    """Fields of MTD_MSIL2A.xml / MTD_MSIL1C.xml that the tools use."""
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as err:
        raise SatClassifyError(f"the product metadata (MTD_MSIL*.xml) is not valid XML: {err}")
    level = "L2A" if "Level-2A" in root.tag else ("L1C" if "Level-1C" in root.tag else None)
    ptype = _text(root, "PRODUCT_TYPE") or ""
    if level is None:
        level = "L2A" if "2A" in ptype else ("L1C" if "1C" in ptype else None)
    if level is None:
        raise SatClassifyError("the product metadata is neither a Level-2A nor a Level-1C product")
    offsets: Dict[str, int] = {}
    inv = {v: k for k, v in BAND_ID.items()}
    for tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
        for e in _find_all(root, tag):
            try:
                offsets[inv[int(e.get("band_id", "-1"))]] = int(float((e.text or "").strip()))  # no text: ValueError
            except (KeyError, ValueError):
                raise SatClassifyError(
                    f"malformed {tag} in the product metadata: band_id={e.get('band_id')!r} value={e.text!r}"
                )
    files = [e.text.strip() for e in _find_all(root, "IMAGE_FILE") if e.text and e.text.strip()]
    if not files:
        raise SatClassifyError("the product metadata lists no IMAGE_FILE: the SAFE product is incomplete")
    cloud = _text(root, "Cloud_Coverage_Assessment")
    quant = _text(root, "BOA_QUANTIFICATION_VALUE") or _text(root, "QUANTIFICATION_VALUE")
    return {
        "level": level,
        "product_type": ptype,
        "baseline": _text(root, "PROCESSING_BASELINE") or "",
        "offsets": offsets,
        "image_files": files,
        "platform": (_text(root, "SPACECRAFT_NAME") or "").lower(),
        "datetime": _text(root, "PRODUCT_START_TIME") or "",
        "product_uri": _text(root, "PRODUCT_URI") or "",
        "cloud": float(cloud) if cloud else None,
        "quantification": float(quant) if quant else None,
    }


def _band_file(files: Sequence[str], band: str, level: str) -> Optional[str]:
    res = BAND_RESOLUTION[band]
    if level == "L2A":
        for r in [res] + [x for x in (10, 20, 60) if x > res]:
            for f in files:
                if f.endswith(f"_{band}_{r}m"):
                    return f
        return None
    for f in files:
        if f.endswith(f"_{band}"):
            return f
    return None


def _starts_like_zip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


def open_safe(path: str) -> Scene:
    """A SAFE product (folder, its MTD file, or a .zip) as a :class:`Scene` whose assets are GDAL paths
    (``/vsizip/...`` for archives: nothing is extracted)."""
    if not path or not os.path.exists(path):
        raise SatClassifyError(f"SAFE product '{path}' does not exist")
    path = os.path.abspath(path)
    if (
        os.path.isfile(path)
        and not zipfile.is_zipfile(path)
        and (path.lower().endswith(".zip") or _starts_like_zip(path))
    ):
        size = os.path.getsize(path)
        raise SatClassifyError(
            f"'{os.path.basename(path)}' is not a readable zip archive ({'empty' if size == 0 else f'{size} bytes'}: "
            "truncated or damaged, e.g. an interrupted download): download the product again"
        )
    if os.path.isfile(path) and zipfile.is_zipfile(path):
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise SatClassifyError(
                f"'{os.path.basename(path)}' is a damaged zip archive ({e}): download the product again"
            )
        with zf:
            check_zip_members(zf, os.path.basename(path))
            names = [n for n in zf.namelist() if _MTD_RE.search(n)]
            if not names:
                raise SatClassifyError(
                    f"'{os.path.basename(path)}' holds no MTD_MSIL2A.xml or MTD_MSIL1C.xml: "
                    "is it a Sentinel-2 SAFE zip?"
                )
            mtd_name = min(names, key=lambda n: n.count("/"))
            mtd = parse_product_mtd(zf.read(mtd_name))
            members = set(zf.namelist())
        base = mtd_name.rsplit("/", 1)[0] + "/" if "/" in mtd_name else ""
        prefix = "/vsizip/" + path + "/" + base
        exists = lambda rel: (base + rel) in members  # noqa: E731
        label = os.path.basename(path)
    else:
        folder = path
        if os.path.isfile(path):
            if not _MTD_RE.search(os.path.basename(path)):
                raise SatClassifyError(f"'{path}' is neither a SAFE folder, its MTD_MSIL*.xml nor a .zip")
            folder = os.path.dirname(path)
        cands = [f for f in os.listdir(folder) if _MTD_RE.search(f)]
        if not cands:
            subs = [os.path.join(folder, d) for d in os.listdir(folder) if d.endswith(".SAFE")]
            cands_sub = [(d, f) for d in subs if os.path.isdir(d) for f in os.listdir(d) if _MTD_RE.search(f)]
            if not cands_sub:
                raise SatClassifyError(
                    f"'{path}' holds no MTD_MSIL2A.xml or MTD_MSIL1C.xml: choose the .SAFE folder or the product zip"
                )
            folder, name = cands_sub[0]
            cands = [name]
        with open(os.path.join(folder, cands[0]), "rb") as f:
            mtd = parse_product_mtd(f.read())
        real = os.path.realpath(folder)
        prefix = folder + os.sep

        def exists(rel):
            p = os.path.realpath(os.path.join(folder, rel))
            return p.startswith(real + os.sep) and os.path.isfile(p)

        label = os.path.basename(folder)
    level = str(mtd["level"])
    assets: Dict[str, str] = {}
    for band in BAND_RESOLUTION:
        if band == "SCL" and level != "L2A":
            continue
        rel = _band_file(mtd["image_files"], band, level)
        if rel is None:
            continue
        rel_jp2 = rel + ".jp2"
        if ".." in rel.replace("\\", "/").split("/") or rel.startswith("/"):
            raise SatClassifyError(f"the product metadata of '{label}' points outside the product: {rel}")
        if not exists(rel_jp2):
            raise SatClassifyError(f"'{label}' is incomplete: {rel_jp2} listed in the metadata is missing")
        assets[band] = prefix + rel_jp2
    m = re.search(r"_T(\d{2}[A-Z]{3})_", " ".join(mtd["image_files"][:1]))
    tile = m.group(1) if m else ""
    uri = str(mtd["product_uri"] or label)
    sid = uri[:-5] if uri.endswith(".SAFE") else (uri[:-4] if uri.endswith(".zip") else uri)
    return Scene(
        id=sid,
        datetime=str(mtd["datetime"]),
        platform=str(mtd["platform"]),
        tile_id=tile,
        cloud=mtd["cloud"],
        baseline=format_baseline(mtd["baseline"]) or str(mtd["baseline"]),
        source="SAFE",
        product_type=level,
        offset_applied=False,
        assets=assets,
        offsets=dict(mtd["offsets"]),
        extra={"path": path},
    )


def import_safe(
    path: str,
    output: str,
    mask_output: Optional[str],
    bands: Sequence[str],
    aoi_wkt: Optional[str] = None,
    target_epsg: Optional[int] = None,
    monitor: Optional[Monitor] = None,
    clouds: str = "auto",
) -> Dict[str, object]:
    """SAFE folder/zip -> uint16 stack (+ mask) with the offset rule applied from the product metadata."""
    scenes = [open_safe(p) for p in ([path] if isinstance(path, str) else list(path))]
    bands = list(bands)
    for s in scenes:
        missing = [b for b in bands if b not in s.assets]
        if missing:
            hint = " (SCL exists only in L2A products)" if "SCL" in missing and s.product_type == "L1C" else ""
            raise SatClassifyError(f"product {s.id} has no band {', '.join(missing)}{hint}")
    summary = build_stack(
        scenes,
        bands,
        output,
        mask_output,
        aoi_wkt=aoi_wkt,
        target_epsg=target_epsg,
        monitor=monitor,
        metadata={"SATCLASSIFY_SOURCE": "SAFE"},
        clouds=clouds,
    )
    summary["scenes"] = scenes
    summary["offset_rule"] = {s.id: offset_applies(s.baseline) for s in scenes}
    return summary


__all__ = [
    "Canceled",
    "aoi_cover",
    "bbox_wkt",
    "build_stack",
    "check_zip_members",
    "gdal_remote_config",
    "geometry_from_wkt",
    "import_safe",
    "open_safe",
    "parse_product_mtd",
    "utm_epsg",
    "vsi_path",
]
