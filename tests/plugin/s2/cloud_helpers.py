"""A cloudy Sentinel-2 scene for the cloud-mask tests: the embedded sample's landscape (scripts/make_sample.py:
fields, forest, water, village at typical reflectances) with a textured bright cloud blob and, to its
south-east, a darkened cloud shadow, both with known outlines. Made here, nothing downloaded."""

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BANDS = ("B02", "B03", "B04", "B08")
#: top-of-atmosphere reflectance of a thick cloud (bright and nearly white in all four bands)
CLOUD_REFLECTANCE = {"B02": 0.42, "B03": 0.40, "B04": 0.40, "B08": 0.45}
SKIP_REASON = "the cloud detector ukis-csmask is not installed (requirements-qgis.txt)"


def detector_installed():
    from satclassify_plugin.core.s2 import clouds

    return clouds.available()


def _box(a, k):
    """Mean over a k x k box (edges padded by reflection), numpy only."""
    lo, hi = k // 2, k - 1 - k // 2
    p = np.pad(a, ((lo + 1, hi), (lo + 1, hi)), mode="reflect").astype(np.float64)
    c = p.cumsum(0).cumsum(1)
    return ((c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)).astype(np.float32)


def _texture(size, rng, scales=(96, 48, 24, 12, 6)):
    """Smooth random texture in 0..1 (sums of box-filtered noise at several scales)."""
    acc = np.zeros((size, size), np.float32)
    for i, s in enumerate(scales):
        n = rng.normal(0, 1, (size // s + 2, size // s + 2)).astype(np.float32)
        acc += _box(np.kron(n, np.ones((s, s), np.float32))[:size, :size], s) * 0.5**i
    return (acc - acc.min()) / (acc.max() - acc.min())


def landscape(tmp_dir, size=768, seed=7):
    """The sample's 4 bands (uint16 DN = reflectance x 10000), (4, size, size)."""
    from osgeo import gdal

    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        from make_sample import make_sample
    finally:
        sys.path.pop(0)
    img, _ = make_sample(str(tmp_dir), size=size, seed=seed)
    return gdal.Open(img).ReadAsArray()


def cloudy(base, seed=3, cloud=True, shadow=True):
    """``base`` (4, n, n) DN -> (band -> DN uint16, cloud truth, shadow truth). The cloud is centred at
    (0.35 n, 0.35 n), the shadow at (0.65 n, 0.6 n), each about 0.4 n across with ragged edges."""
    n = base.shape[1]
    rng = np.random.default_rng(seed)
    tex = _texture(n, rng)
    yy, xx = np.mgrid[0:n, 0:n]
    alpha = np.clip((1.0 - np.hypot(yy - 0.35 * n, xx - 0.35 * n) / (0.2 * n)) * 3 + (tex - 0.5) * 1.5, 0, 1)
    alpha = alpha if cloud else np.zeros_like(alpha)
    salpha = np.clip((1.0 - np.hypot(yy - 0.65 * n, xx - 0.6 * n) / (0.2 * n)) * 3 + (tex - 0.5) * 1.5, 0, 1)
    salpha = salpha * (alpha < 0.5) if shadow else np.zeros_like(salpha)
    out = {}
    for i, b in enumerate(BANDS):
        r = base[i].astype(np.float32) / 10000.0 * (1 - 0.7 * salpha)
        r = (1 - alpha) * r + alpha * CLOUD_REFLECTANCE[b] * (0.8 + 0.4 * tex)
        out[b] = np.where(base[i] == 0, 0, np.clip(np.round(r * 10000), 1, 65535)).astype(np.uint16)  # 0: nodata
    return out, alpha > 0.5, salpha > 0.5


def write_stack(
    path,
    arrays,
    bands=BANDS,
    origin=(600000.0, 5340000.0),
    pixel=10.0,
    epsg=32632,
    metadata=None,
    dtype=None,
    scale=1.0,
    descriptions=None,
):
    """A GeoTIFF stack of ``arrays`` (band names as GDAL band descriptions); ``scale`` multiplies the values
    (``dtype`` float32 for a reflectance stack)."""
    from osgeo import gdal, osr

    first = arrays[bands[0]]
    h, w = first.shape
    gdt = gdal.GDT_Float32 if dtype == "float32" else gdal.GDT_UInt16
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, len(bands), gdt)
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    if metadata:
        ds.SetMetadata(metadata)
    for i, b in enumerate(bands):
        band = ds.GetRasterBand(i + 1)
        band.SetDescription((descriptions or bands)[i])
        band.SetNoDataValue(0)
        a = arrays[b].astype(np.float32) * scale if dtype == "float32" else arrays[b]
        band.WriteArray(a)
    ds = None
    return str(path)
