"""How a Sentinel-2 stack opens in QGIS: natural colour (B04/B03/B02) with a 2-98 % cumulative-count stretch.

QGIS 3.22 ignores GDAL's colour interpretation when it picks the bands of a multiband raster (it draws bands
1-2-3, i.e. B02 as red in a B02 B03 B04 B08 stack). What every QGIS from 3.22 to 4.x does honour is a style file
``<name>.qml`` beside ``<name>.tif``: it loads it as the layer's default style. So a stack gets

* a ``.qml`` sidecar (:func:`write_stack_style`) with a ``multibandcolor`` renderer, red/green/blue = the bands
  named B04/B03/B02 in the band descriptions, each stretched min-max between the 2 % and 98 % points of its
  cumulative histogram (:func:`band_percentiles`, computed here from the pixels, nodata 0 left out, blockwise
  and subsampled so any raster size fits in memory);
* GDAL colour interpretation Red/Green/Blue on those bands (:func:`set_colour_interpretation`), a hint for
  newer QGIS and other software.

The colour-infrared combination (B08/B04/B03, vegetation red) is :data:`COMBINATIONS` ``"colour infrared"``;
the algorithms add it as a second named style of the loaded layer (Layers panel > right-click > Styles).

The QML carries :data:`~satclassify_plugin.core.contract.paths.STYLE_MARKER`, so the output guard knows a style
it may replace from a user's own (which it never overwrites).
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple
from xml.sax.saxutils import quoteattr

import numpy as np
from osgeo import gdal

from .. import raster
from ..contract.paths import STYLE_MARKER, is_own_style, style_sidecar

gdal.UseExceptions()

#: named band combinations: (red, green, blue) band names, alternatives in order of preference
COMBINATIONS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[str, ...]]] = {
    "natural colour": (("B04",), ("B03",), ("B02",)),
    "colour infrared": (("B08", "B8A"), ("B04",), ("B03",)),
}
DEFAULT_COMBINATION = "natural colour"
CUT = (2.0, 98.0)  # % of the cumulative count (QGIS's "Cumulative count cut" defaults)
#: at most this many pixels per band are counted (a regular subsample beyond)
SAMPLE_PIXELS = 4_000_000


def combination_bands(names: Sequence[str], combination: str = DEFAULT_COMBINATION) -> Optional[List[int]]:
    """1-based (red, green, blue) band numbers of ``combination`` from the band descriptions; None when a band
    is missing."""
    upper = [str(n).strip().upper() for n in names]
    out = []
    for choices in COMBINATIONS[combination]:
        found = next((upper.index(c) + 1 for c in choices if c in upper), None)
        if found is None:
            return None
        out.append(found)
    return out


def percentiles_from_counts(
    counts: np.ndarray, lower: float = CUT[0], upper: float = CUT[1], offset: int = 0
) -> Optional[Tuple[float, float]]:
    """The values at ``lower`` / ``upper`` % of a histogram of integer values (``counts[i]`` = pixels of value
    ``i + offset``): the smallest value whose cumulative count reaches that share. None for an empty histogram."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return None
    cum = np.cumsum(counts)
    lo = int(np.searchsorted(cum, total * lower / 100.0, side="left"))
    hi = int(np.searchsorted(cum, total * upper / 100.0, side="left"))
    lo, hi = min(lo, len(counts) - 1), min(hi, len(counts) - 1)
    return float(lo + offset), float(hi + offset)


def _step(width: int, height: int, max_pixels: int) -> int:
    return max(1, int(math.ceil(math.sqrt(width * height / float(max_pixels)))))


def band_percentiles(
    ds: gdal.Dataset,
    band: int,
    lower: float = CUT[0],
    upper: float = CUT[1],
    nodata: Optional[float] = 0,
    max_pixels: int = SAMPLE_PIXELS,
    block: int = 1024,
) -> Optional[Tuple[float, float]]:
    """(min, max) of a 2-98 % cumulative-count stretch of band ``band`` (1-based), ``nodata`` left out.

    Read in windows of ``block`` rows and columns, every k-th pixel in both directions where the band has more
    than ``max_pixels`` pixels (k from the ratio): memory stays at one window. Integer bands (uint8/uint16, the
    stacks) are counted exactly in a histogram; other types go through :func:`numpy.percentile` of the sample.
    None when the band holds only nodata."""
    b = ds.GetRasterBand(band)
    w, h = ds.RasterXSize, ds.RasterYSize
    k = _step(w, h, max_pixels)
    integer = b.DataType in (gdal.GDT_Byte, gdal.GDT_UInt16)
    counts = np.zeros(65536 if b.DataType == gdal.GDT_UInt16 else 256, np.int64) if integer else None
    samples = []
    span = block * k  # source pixels per window side, a multiple of k so the subsample grid is regular
    for y in range(0, h, span):
        for x in range(0, w, span):
            xs, ys = min(span, w - x), min(span, h - y)
            bx, by = max(1, -(-xs // k)), max(1, -(-ys // k))
            a = b.ReadAsArray(x, y, xs, ys, buf_xsize=bx, buf_ysize=by)
            if a is None:
                continue
            if counts is not None:
                counts += np.bincount(a.ravel(), minlength=counts.size)[: counts.size]
            else:
                v = a.ravel().astype(np.float64)
                samples.append(v[np.isfinite(v) & ((v != nodata) if nodata is not None else True)])
    if counts is not None:
        return _cut_of_counts(counts, nodata, lower, upper)
    return _cut_of_values(np.concatenate(samples) if samples else np.zeros(0), lower, upper)


def _cut_of_counts(counts: np.ndarray, nodata: Optional[float], lower: float, upper: float):
    if nodata is not None and float(nodata).is_integer() and 0 <= int(nodata) < counts.size:
        counts[int(nodata)] = 0
    return percentiles_from_counts(counts, lower, upper)


def _cut_of_values(v: np.ndarray, lower: float, upper: float):
    if v.size == 0:
        return None
    return float(np.percentile(v, lower)), float(np.percentile(v, upper))


def array_cut(
    arr: np.ndarray, nodata: Optional[float] = 0, lower: float = CUT[0], upper: float = CUT[1]
) -> Optional[Tuple[float, float]]:
    """:func:`band_percentiles` of a band already in memory (a stack being written): exact for uint8/uint16
    (a histogram, no copy of the array), :func:`numpy.percentile` of the valid values otherwise."""
    a = np.asarray(arr)
    if a.dtype in (np.uint8, np.uint16):
        return _cut_of_counts(
            np.bincount(a.ravel(), minlength=256 if a.dtype == np.uint8 else 65536), nodata, lower, upper
        )
    v = a.ravel().astype(np.float64)
    return _cut_of_values(v[np.isfinite(v) & ((v != nodata) if nodata is not None else True)], lower, upper)


def _num(v: float) -> str:
    return f"{v:.10g}"


def multiband_qml(
    rgb: Sequence[Tuple[int, float, float]],
    lower: float = CUT[0],
    upper: float = CUT[1],
    name: str = DEFAULT_COMBINATION,
) -> str:
    """A QGIS layer style (.qml) with a multiband colour renderer: ``rgb`` = [(band, min, max)] for red, green
    and blue, min-max stretch, recorded as a cumulative cut of ``lower``-``upper`` % over the whole raster (what
    the Symbology panel then shows). Readable by QGIS 3.22 to 4.x."""
    (r, rmin, rmax), (g, gmin, gmax), (b, bmin, bmax) = rgb

    def ce(tag, lo, hi):
        return (
            f"      <{tag}>\n        <minValue>{_num(lo)}</minValue>\n        <maxValue>{_num(hi)}</maxValue>\n"
            f"        <algorithm>StretchToMinimumMaximum</algorithm>\n      </{tag}>\n"
        )

    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.22.0" styleCategories="AllStyleCategories" hasScaleBasedVisibilityFlag="0" '
        'minScale="1e+08" maxScale="0">\n'
        '  <customproperties>\n    <Option type="Map">\n'
        f'      <Option type="QString" name="{STYLE_MARKER}" value={quoteattr(name)}/>\n'
        "    </Option>\n  </customproperties>\n"
        "  <pipe>\n"
        f'    <rasterrenderer type="multibandcolor" opacity="1" alphaBand="-1" redBand="{r}" greenBand="{g}" '
        f'blueBand="{b}" nodataColor="">\n'
        "      <minMaxOrigin>\n        <limits>CumulativeCut</limits>\n        <extent>WholeRaster</extent>\n"
        "        <statAccuracy>Exact</statAccuracy>\n"
        f"        <cumulativeCutLower>{_num(lower / 100.0)}</cumulativeCutLower>\n"
        f"        <cumulativeCutUpper>{_num(upper / 100.0)}</cumulativeCutUpper>\n"
        "        <stdDevFactor>2</stdDevFactor>\n      </minMaxOrigin>\n"
        + ce("redContrastEnhancement", rmin, rmax)
        + ce("greenContrastEnhancement", gmin, gmax)
        + ce("blueContrastEnhancement", bmin, bmax)
        + "    </rasterrenderer>\n"
        '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
        '    <huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0" colorizeRed="255" '
        'colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>\n'
        '    <rasterresampler maxOversampling="2"/>\n'
        "    <resamplingStage>resamplingFilter</resamplingStage>\n"
        "  </pipe>\n"
        "  <blendMode>0</blendMode>\n"
        "</qgis>\n"
    )


def styles_from_cuts(names: Sequence[str], cut: Callable[[int], Optional[Tuple[float, float]]]) -> Dict[str, str]:
    """QML text of every combination the bands ``names`` allow, e.g. {"natural colour": ..., "colour infrared":
    ...}; ``cut(band)`` gives a band's (min, max) stretch (None: all nodata, drawn 0-1), asked once per band."""
    cache: Dict[int, Tuple[float, float]] = {}
    out = {}
    for combo in COMBINATIONS:
        bands = combination_bands(names, combo)
        if bands is None:
            continue
        rgb = []
        for bnum in bands:
            if bnum not in cache:
                lo, hi = cut(bnum) or (0.0, 1.0)
                cache[bnum] = (lo, hi if hi > lo else lo + 1.0)
            rgb.append((bnum, *cache[bnum]))
        out[combo] = multiband_qml(rgb, name=combo)
    return out


def stack_styles(ds: gdal.Dataset, nodata: Optional[float] = 0) -> Dict[str, str]:
    """:func:`styles_from_cuts` of a raster, each band's stretch from its pixels (:func:`band_percentiles`)."""
    return styles_from_cuts(raster.band_names(ds), lambda b: band_percentiles(ds, b, nodata=nodata))


def set_colour_interpretation(ds: gdal.Dataset, names: Sequence[str]) -> Optional[List[int]]:
    """Red/Green/Blue colour interpretation on the natural-colour bands (before any pixel is written: GDAL >=
    3.10), grey on the others. Returns the (red, green, blue) band numbers, None without B04/B03/B02."""
    bands = combination_bands(names)
    if bands is None:
        return None
    interp = dict(zip(bands, (gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand)))
    for i in range(ds.RasterCount):
        ds.GetRasterBand(i + 1).SetColorInterpretation(interp.get(i + 1, gdal.GCI_GrayIndex))
    return bands


def styles_of(path: str) -> Dict[str, str]:
    """:func:`stack_styles` of the raster file ``path`` (its band 1 nodata, else 0, left out)."""
    ds = raster.open_raster(path, "stack")
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    styles = stack_styles(ds, nodata=0 if nodata is None else nodata)
    ds = None
    return styles


def write_stack_style(tif: str, source: Optional[str] = None) -> Optional[Dict[str, str]]:
    """Write the natural-colour style of the stack ``tif`` to ``<tif base>.qml`` (the style QGIS loads with the
    raster), atomically (temporary name, then renamed). ``source``: the file to compute it from when ``tif``
    does not exist yet (a stack still under its temporary name). Returns the styles (:func:`stack_styles`), or
    None when the stack has no B04/B03/B02 (nothing written)."""
    styles = styles_of(source or tif)
    if DEFAULT_COMBINATION not in styles:
        return None
    with raster.AtomicOutput(style_sidecar(tif)) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(styles[DEFAULT_COMBINATION])
    return styles


def drop_own_style(output: str) -> bool:
    """Remove the style SatClassify wrote beside ``output`` earlier (never a user's own): for a stack written
    without natural-colour bands, or a multi-date stack, which that style would draw wrongly."""
    final = style_sidecar(output)
    if os.path.isfile(final) and is_own_style(final):
        os.remove(final)
        return True
    return False


@contextlib.contextmanager
def style_beside(output: str, bands: Sequence[str]) -> Iterator[Callable[[dict], Dict[str, str]]]:
    """Context of a stack write: yields ``write(cuts) -> styles``, to call once the stack is written, with
    ``cuts`` = {band number: (min, max)} (:func:`array_cut` of each band as it was written). The natural-colour
    ``.qml`` goes under a temporary name too and is renamed onto ``<output base>.qml`` when the block ends
    without error: enter this *before* the stack's :class:`~satclassify_plugin.core.raster.AtomicOutput`, so the
    stack is renamed first and the style after it.
    Without B04/B03/B02 nothing is written, and a style SatClassify wrote earlier for that name is removed (it
    would name bands the new stack does not have)."""
    final = style_sidecar(output)
    if combination_bands(bands) is None:
        yield lambda _cuts: {}
        drop_own_style(output)
        return
    with raster.AtomicOutput(final) as qtmp:

        def write(cuts: Dict[int, Optional[Tuple[float, float]]]) -> Dict[str, str]:
            styles = styles_from_cuts(bands, cuts.get)
            with open(qtmp, "w", encoding="utf-8") as f:
                f.write(styles[DEFAULT_COMBINATION])
            return styles

        yield write


__all__ = [
    "COMBINATIONS",
    "CUT",
    "array_cut",
    "band_percentiles",
    "combination_bands",
    "drop_own_style",
    "multiband_qml",
    "percentiles_from_counts",
    "set_colour_interpretation",
    "stack_styles",
    "style_beside",
    "styles_from_cuts",
    "styles_of",
    "write_stack_style",
]
