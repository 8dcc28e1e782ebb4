"""Small BigEarthNet-S2-style and EuroSAT-style archives written by the tests themselves (rasterio: the training
env), with the pixels and labels they hold, so a test can check every imported value.

``python -m tests.benchmark_archives bigearthnet DIR`` writes the default 6-patch archive (used by the QGIS-env
round trip through the training env)."""

import json
import os
import sys

import numpy as np

BEN_RES = {
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
#: the band order of the published EuroSAT MS GeoTIFFs (B8A last; torchgeo's EuroSAT.all_band_names)
EUROSAT_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
UTM33 = 32633
UTM34 = 32634

#: class means (DN) per label for B02 B03 B04 B08, so a model can learn them: forest, water, arable
SIGNATURE = {
    "Coniferous forest": (300, 500, 250, 3500),
    "Water bodies": (700, 600, 400, 150),
    "Non-irrigated arable land": (900, 1000, 1100, 2600),
}


def _write(path, a, crs, x0, y0, res, descriptions=None):
    import rasterio
    from rasterio.transform import from_origin

    a = np.asarray(a)
    if a.ndim == 2:
        a = a[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=a.shape[2],
        height=a.shape[1],
        count=a.shape[0],
        dtype=a.dtype.name,
        crs=f"EPSG:{crs}" if crs else None,
        transform=from_origin(x0, y0, res, res) if crs else None,
    ) as ds:
        ds.write(a)
        if descriptions:
            for i, d in enumerate(descriptions, start=1):
                ds.set_band_description(i, d)


def ben_patch(root, name, labels, x0, y0, crs=UTM33, p=24, seed=0, sizes=None, skip_band=None, meta=True):
    """One BigEarthNet-S2 patch folder; returns {band: native-resolution array}. Pixels are random around the
    SIGNATURE of the first label that has one (10 m bands), random elsewhere."""
    import rasterio.crs

    rng = np.random.default_rng(seed)
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    sig = next((SIGNATURE[lab] for lab in labels if lab in SIGNATURE), None)
    bands = {}
    for b, res in BEN_RES.items():
        n = (sizes or {}).get(b, p * 10 // res)
        base = dict(zip(("B02", "B03", "B04", "B08"), sig)).get(b, 1500) if sig else 1500
        a = np.clip(rng.normal(base, 120, (n, n)), 1, 20000).astype(np.uint16)
        bands[b] = a
        if b != skip_band:
            _write(os.path.join(folder, f"{name}_{b}.tif"), a, crs, x0, y0, res)
    if meta:
        wkt = rasterio.crs.CRS.from_epsg(crs).to_wkt()
        with open(os.path.join(folder, f"{name}_labels_metadata.json"), "w") as f:
            json.dump(
                {
                    "labels": list(labels),
                    "coordinates": {"ulx": x0, "uly": y0, "lrx": x0 + p * 10, "lry": y0 - p * 10},
                    "projection": wkt,
                    "tile_source": "S2A_MSIL1C_test",
                    "acquisition_date": "2017-06-13 10:10:31",
                },
                f,
            )
    return bands


#: the default archive: (name, labels, x0, y0, crs); two far-apart groups in UTM 33 and one patch in UTM 34
BEN_PATCHES = (
    ("S2A_MSIL2A_20170613T101031_0_45", ["Coniferous forest", "Water bodies"], 500000, 5000000, UTM33),
    ("S2A_MSIL2A_20170613T101031_0_46", ["Coniferous forest", "Peatbogs"], 500240, 5000000, UTM33),
    ("S2A_MSIL2A_20170613T101031_1_45", ["Water bodies", "Transitional woodland/shrub"], 500000, 4999760, UTM33),
    ("S2B_MSIL2A_20180525T94030_10_3", ["Non-irrigated arable land", "Natural grassland"], 600000, 5100000, UTM33),
    (
        "S2B_MSIL2A_20180525T94030_10_4",
        ["Non-irrigated arable land", "Bare rock", "Sea and ocean"],
        600240,
        5100000,
        UTM33,
    ),
    ("S2B_MSIL2A_20180525T94030_77_9", ["Coniferous forest", "Non-irrigated arable land"], 400000, 5200000, UTM34),
)


def bigearthnet_archive(root, p=24, patches=BEN_PATCHES):
    """Write the patches; returns {name: (labels, bands)}."""
    os.makedirs(root, exist_ok=True)
    return {
        name: (labels, ben_patch(root, name, labels, x0, y0, crs, p=p, seed=i))
        for i, (name, labels, x0, y0, crs) in enumerate(patches)
    }


def eurosat_archive(
    root, classes=("Forest", "Residential", "SeaLake"), per_class=3, p=16, descriptions=False, crs=UTM33
):
    """EuroSAT MS-style class folders of 13-band GeoTIFFs; returns {"Class/Class_i": (class, array (13, p, p))}."""
    rng = np.random.default_rng(7)
    out = {}
    for ci, c in enumerate(classes):
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            a = np.clip(rng.normal(800 + 900 * ci, 150, (13, p, p)), 1, 20000).astype(np.uint16)
            _write(
                os.path.join(root, c, f"{c}_{i + 1}.tif"),
                a,
                crs,
                300000 + 5000 * i,
                5500000 - 5000 * ci,
                10,
                list(EUROSAT_BANDS) if descriptions else None,
            )
            out[f"{c}/{c}_{i + 1}"] = (c, a)
    return out


def eurosat_rgb_archive(root, classes=("Forest", "Residential", "SeaLake"), per_class=3, p=16, ext=".png"):
    """EuroSAT RGB-style class folders of 8-bit RGB images (B04, B03, B02); returns {"Class/Class_i": (class,
    array (3, p, p) uint8 as decoded)}."""
    from PIL import Image

    rng = np.random.default_rng(11)
    out = {}
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 256, (p, p, 3)).astype(np.uint8)
            a[0, 0] = (0, 128, 255)  # the extremes: 0 -> DN 1 (0 is no-data), 255 -> DN 2750
            path = os.path.join(root, c, f"{c}_{i + 1}{ext}")
            Image.fromarray(a, "RGB").save(path)
            with Image.open(path) as im:
                out[f"{c}/{c}_{i + 1}"] = (c, np.asarray(im).transpose(2, 0, 1).copy())
    return out


def upsample_reference(a, f):
    """Bilinear between pixel centres, edges repeated, halves rounded up: one pixel at a time in exact fractions
    (independent of the importer's vectorised integer code)."""
    import math
    from fractions import Fraction

    n = a.shape[0]
    out = np.zeros((n * f, n * f), np.int64)

    def pos(i):
        return min(max(Fraction(2 * i + 1, 2 * f) - Fraction(1, 2), Fraction(0)), Fraction(n - 1))

    for i in range(n * f):
        y = pos(i)
        y0 = math.floor(y)
        y1, wy = min(y0 + 1, n - 1), y - y0
        for j in range(n * f):
            x = pos(j)
            x0 = math.floor(x)
            x1, wx = min(x0 + 1, n - 1), x - x0
            v = (
                int(a[y0, x0]) * (1 - wy) * (1 - wx)
                + int(a[y0, x1]) * (1 - wy) * wx
                + int(a[y1, x0]) * wy * (1 - wx)
                + int(a[y1, x1]) * wy * wx
            )
            out[i, j] = math.floor(v + Fraction(1, 2))
    return out


if __name__ == "__main__":
    kind, folder = sys.argv[1], sys.argv[2]
    if kind == "bigearthnet":
        bigearthnet_archive(folder)
    else:
        eurosat_archive(folder)
