#!/usr/bin/env python3
"""Generate the embedded SatClassify sample scene (synthetic, deterministic, about 2 MB).

Writes into OUT_DIR (default sample/):
  s2_sample.tif     4-band Sentinel-2-like L2A stack, B02 B03 B04 B08 at 10 m, uint16 DN (reflectance * 10000),
                    nodata 0, UTM zone 32N (EPSG:32632), 512 x 512 pixels (5.12 km); band descriptions set.
  s2_sample.qml     its QGIS style: natural colour B04/B03/B02, 2-98 % cumulative-count stretch (loaded with it)
  clc_sample.gpkg   CORINE-Land-Cover-like polygons (layer "clc", field code_18 as text, EPSG:3035 like the
                    real product), covering the scene plus a 1 km margin, generalised like CLC (25 ha minimum
                    mapping unit; fields, hedges and roads inside a polygon are not mapped separately).

The scene is SYNTHETIC. Land cover: arable land split into fields of different crops (green cereal, young
maize, bare soil, flowering rapeseed, stubble), pastures, broad-leaved / coniferous / mixed forest,
transitional woodland-shrub, a lake, a village (discontinuous urban fabric) with an industrial area, and
roads. Reflectances are typical published L2A values for each cover in the four 10 m bands, with
field-to-field variation, spatially correlated texture, sensor noise and a slight blur (the MTF), plus a
no-data corner like the edge of a Sentinel-2 swath.

To use a real scene instead: fetch one with satclassify:fetchsentinel2 (or import a SAFE with
satclassify:importsafe) and download CLC 2018 from the Copernicus Land Monitoring Service (vector, GeoPackage);
pass them to scripts/demo.py --image ... --clc ... .

Needs GDAL/OGR (QGIS env) and shapely.
"""

import argparse
import os
import sys

import numpy as np
from osgeo import gdal, ogr, osr

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # satclassify_plugin

gdal.UseExceptions()
ogr.UseExceptions()

BANDS = ("B02", "B03", "B04", "B08")
EPSG_IMAGE = 32632
EPSG_CLC = 3035
ORIGIN = (600000.0, 5340000.0)  # upper-left corner, UTM 32N (southern Germany)
PIXEL = 10.0

# Typical L2A reflectances (x 10000) in B02, B03, B04, B08.
SPECTRA = {
    "cereal": (350, 650, 380, 3800),
    "maize": (600, 850, 900, 2600),
    "bare": (1000, 1300, 1600, 2200),
    "rapeseed": (520, 1050, 950, 3300),
    "stubble": (900, 1150, 1350, 2300),
    "pasture": (400, 760, 520, 3300),
    "broadleaf": (280, 520, 300, 3600),
    "conifer": (200, 380, 200, 2300),
    "mixed": (240, 450, 250, 2900),
    "shrub": (380, 620, 480, 2600),
    "water": (450, 550, 350, 150),
    "roof": (1150, 1200, 1300, 1700),
    "red_roof": (700, 800, 1500, 2000),
    "asphalt": (1000, 1050, 1100, 1500),
    "industrial": (1400, 1500, 1600, 2000),
}
#: CLC code -> covers its fields draw from (with weights)
COVER_MIX = {
    "211": (("cereal", 0.3), ("maize", 0.2), ("bare", 0.2), ("rapeseed", 0.15), ("stubble", 0.15)),
    "231": (("pasture", 1.0),),
    "311": (("broadleaf", 1.0),),
    "312": (("conifer", 1.0),),
    "313": (("mixed", 1.0),),
    "324": (("shrub", 0.7), ("pasture", 0.3)),
    "512": (("water", 1.0),),
    "112": (("roof", 0.35), ("red_roof", 0.25), ("pasture", 0.25), ("asphalt", 0.15)),
    "121": (("industrial", 0.6), ("asphalt", 0.3), ("pasture", 0.1)),
}
FIELD_HA = {"211": 3.0, "231": 4.0, "324": 6.0}  # mean field size where the polygon is split into fields


def _smooth(a, r):
    """Box blur of radius r along both axes (twice: close to a Gaussian), edges replicated."""
    for _ in range(2):
        for axis in (0, 1):
            p = np.pad(a, [(r + 1, r) if ax == axis else (0, 0) for ax in (0, 1)], mode="edge")
            c = np.cumsum(p, axis=axis, dtype=np.float64)
            if axis == 0:
                a = (c[2 * r + 1 :] - c[: -2 * r - 1]) / (2 * r + 1)
            else:
                a = (c[:, 2 * r + 1 :] - c[:, : -2 * r - 1]) / (2 * r + 1)
    return a


def _voronoi_cells(points, bounds):
    from shapely.geometry import MultiPoint, box
    from shapely.ops import voronoi_diagram

    env = box(*bounds)
    cells = voronoi_diagram(MultiPoint([tuple(p) for p in points]), envelope=env)
    out = []
    for c in cells.geoms:
        g = c.intersection(env)
        if not g.is_empty and g.area > 0:
            out.append(g)
    return out


def _assign_clc(cells, rng, centre):
    """A CLC code per coarse cell: a lake, a village with an industrial estate, forest in the north-east."""
    lake = np.array(centre) + np.array([-1500.0, -1300.0])
    town = np.array(centre) + np.array([900.0, -900.0])
    codes = []
    for c in cells:
        p = np.array(c.centroid.coords[0])
        d_lake = np.hypot(*(p - lake))
        d_town = np.hypot(*(p - town))
        ne = (p[0] - centre[0]) + (p[1] - centre[1])
        if d_lake < 700:
            codes.append("512")
        elif d_town < 450:
            codes.append("121" if (p[0] > town[0] and p[1] < town[1]) else "112")
        elif d_town < 800:
            codes.append("112")
        elif ne > 1500 + rng.normal(0, 500):
            codes.append(str(rng.choice(["311", "312", "313"], p=[0.4, 0.35, 0.25])))
        elif rng.random() < 0.08:
            codes.append("324")
        else:
            codes.append("211" if rng.random() < 0.65 else "231")
    return codes


def _write_style(img_path):
    """s2_sample.qml: QGIS opens the sample in natural colour with a 2-98 % stretch (core/s2/style.py)."""
    from satclassify_plugin.core.s2 import style

    style.write_stack_style(img_path)


def make_sample(out_dir, size=512, seed=7, overwrite=False):
    """Create the sample; returns (image_path, clc_path). Deterministic for a given seed and size."""
    from shapely.geometry import LineString
    from shapely.ops import unary_union

    os.makedirs(out_dir, exist_ok=True)
    img_path = os.path.join(out_dir, "s2_sample.tif")
    clc_path = os.path.join(out_dir, "clc_sample.gpkg")
    if not overwrite and os.path.exists(img_path) and os.path.exists(clc_path):
        if not os.path.exists(os.path.splitext(img_path)[0] + ".qml"):  # a sample made before the style existed
            _write_style(img_path)
        return img_path, clc_path
    rng = np.random.default_rng(seed)
    x0, y1 = ORIGIN
    x1, y0 = x0 + size * PIXEL, y1 - size * PIXEL
    margin = 1000.0
    bounds = (x0 - margin, y0 - margin, x1 + margin, y1 + margin)
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    area_ha = (bounds[2] - bounds[0]) * (bounds[3] - bounds[1]) / 1e4
    n_cells = max(12, int(area_ha / 55))
    pts = np.column_stack([rng.uniform(bounds[0], bounds[2], n_cells), rng.uniform(bounds[1], bounds[3], n_cells)])
    cells = _voronoi_cells(pts, bounds)
    codes = _assign_clc(cells, rng, centre)

    # Fine structure: fields inside agricultural cells, one cover per field.
    fine = []  # (geometry, cover)
    for cell, code in zip(cells, codes):
        covers, weights = zip(*COVER_MIX[code])
        if code in FIELD_HA:
            n = max(1, int(cell.area / 1e4 / FIELD_HA[code]))
            minx, miny, maxx, maxy = cell.bounds
            p = np.column_stack([rng.uniform(minx, maxx, n * 3), rng.uniform(miny, maxy, n * 3)])
            from shapely import contains_xy

            p = p[contains_xy(cell, p[:, 0], p[:, 1])][:n]
            parts = _voronoi_cells(p, cell.bounds) if len(p) > 1 else [cell]
            for f in parts:
                g = f.intersection(cell)
                if not g.is_empty:
                    fine.append((g, str(rng.choice(covers, p=np.array(weights) / sum(weights)))))
        else:
            fine.append((cell, covers[0] if len(covers) == 1 else "__mix__" + code))

    # Rasterize fine polygons to an id raster on the image grid.
    drv = gdal.GetDriverByName("MEM")
    srs_img = osr.SpatialReference()
    srs_img.ImportFromEPSG(EPSG_IMAGE)
    ids_ds = drv.Create("", size, size, 1, gdal.GDT_Int32)
    ids_ds.SetGeoTransform((x0, PIXEL, 0, y1, 0, -PIXEL))
    ids_ds.SetProjection(srs_img.ExportToWkt())
    mem = ogr.GetDriverByName("Memory").CreateDataSource("fine")
    lyr = mem.CreateLayer("fine", srs_img, ogr.wkbUnknown)
    lyr.CreateField(ogr.FieldDefn("fid1", ogr.OFTInteger))
    for i, (g, _) in enumerate(fine):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(ogr.CreateGeometryFromWkb(g.wkb))
        f.SetField("fid1", i + 1)
        lyr.CreateFeature(f)
    gdal.RasterizeLayer(ids_ds, [1], lyr, options=["ATTRIBUTE=fid1"])
    ids = ids_ds.ReadAsArray().astype(np.int64)

    # Per-field spectra with field-to-field variation; mixed covers (urban) vary per pixel.
    img = np.zeros((4, size, size), np.float64)
    for i, (_g, cover) in enumerate(fine):
        m = ids == i + 1
        if not m.any():
            continue
        if cover.startswith("__mix__"):
            covers, weights = zip(*COVER_MIX[cover[7:]])
            blob = _smooth(rng.random((size, size)), 1)[m]  # 20-30 m objects: houses, gardens, yards
            cum = np.cumsum(weights) / sum(weights)
            q = np.quantile(blob, cum[:-1]) if len(cum) > 1 else []
            which = np.searchsorted(q, blob)
            spec = np.array([SPECTRA[c] for c in covers], np.float64)[which].T
        else:
            spec = np.array(SPECTRA[cover], np.float64)[:, None] * rng.normal(1.0, 0.07, (4, 1))
        img[:, m] = spec

    # Roads (asphalt, 10-15 m wide): two through-roads and a ring around the village.
    roads = [
        LineString([(x0, y0 + 0.62 * (y1 - y0)), (x1, y0 + 0.55 * (y1 - y0))]),
        LineString([(x0 + 0.35 * (x1 - x0), y1), (x0 + 0.6 * (x1 - x0), y0)]),
    ]
    road_r = gdal.GetDriverByName("MEM").Create("", size, size, 1, gdal.GDT_Byte)
    road_r.SetGeoTransform((x0, PIXEL, 0, y1, 0, -PIXEL))
    rl = mem.CreateLayer("roads", srs_img, ogr.wkbPolygon)
    for r in roads:
        f = ogr.Feature(rl.GetLayerDefn())
        f.SetGeometry(ogr.CreateGeometryFromWkb(r.buffer(6.0).wkb))
        rl.CreateFeature(f)
    gdal.RasterizeLayer(road_r, [1], rl, burn_values=[1], options=["ALL_TOUCHED=TRUE"])
    road = road_r.ReadAsArray().astype(bool)
    img[:, road] = np.array(SPECTRA["asphalt"], np.float64)[:, None]

    # Texture (correlated across bands), sensor noise, blur (MTF).
    texture = 1.0 + 0.06 * _smooth(rng.normal(0, 1, (size, size)), 2) * 3
    img *= texture[None]
    img += rng.normal(0, 1, img.shape) * (0.015 * img + 15)
    img = np.stack([_smooth(b, 1) * 0.5 + b * 0.5 for b in img])
    # No-data corner (edge of the swath).
    yy, xx = np.mgrid[0:size, 0:size]
    nodata = (xx + yy) < size * 0.12
    img = np.clip(np.rint(img), 1, 20000).astype(np.uint16)
    img[:, nodata] = 0

    gtiff = gdal.GetDriverByName("GTiff")
    tmp = img_path + ".part.tif"
    ds = gtiff.Create(tmp, size, size, 4, gdal.GDT_UInt16, options=["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2"])
    ds.SetGeoTransform((x0, PIXEL, 0, y1, 0, -PIXEL))
    ds.SetProjection(srs_img.ExportToWkt())
    ds.SetMetadata(
        {
            "SATCLASSIFY_SAMPLE": "synthetic Sentinel-2 L2A-like scene, see scripts/make_sample.py",
            "BOA_QUANTIFICATION_VALUE": "10000",
        }
    )
    for b in range(4):  # nodata, descriptions and metadata before the pixels (GDAL >= 3.10)
        band = ds.GetRasterBand(b + 1)
        band.SetNoDataValue(0)
        band.SetDescription(BANDS[b])
    from satclassify_plugin.core.s2 import style

    style.set_colour_interpretation(ds, BANDS)
    for b in range(4):
        ds.GetRasterBand(b + 1).WriteArray(img[b])
    band = None
    ds = None
    os.replace(tmp, img_path)
    _write_style(img_path)

    # CLC polygons: dissolve neighbouring cells of the same class (CLC has no shared-class boundaries),
    # reproject to EPSG:3035.
    srs_clc = osr.SpatialReference()
    srs_clc.ImportFromEPSG(EPSG_CLC)
    srs_clc.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs_img.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    tr = osr.CoordinateTransformation(srs_img, srs_clc)
    if os.path.exists(clc_path):
        os.remove(clc_path)
    out = ogr.GetDriverByName("GPKG").CreateDataSource(clc_path)
    ol = out.CreateLayer("clc", srs_clc, ogr.wkbMultiPolygon)
    for name, t in (
        ("ID", ogr.OFTString),
        ("code_18", ogr.OFTString),
        ("area_ha", ogr.OFTReal),
        ("Remark", ogr.OFTString),
    ):
        ol.CreateField(ogr.FieldDefn(name, t))
    n = 0
    for code in sorted(set(codes)):
        merged = unary_union([c for c, k in zip(cells, codes) if k == code])
        parts = list(merged.geoms) if hasattr(merged, "geoms") else [merged]
        for part in parts:
            n += 1
            g = ogr.CreateGeometryFromWkb(part.wkb)
            g.Segmentize(50.0)  # keep edges straight-ish after reprojection
            g.Transform(tr)
            g = ogr.ForceToMultiPolygon(g)
            f = ogr.Feature(ol.GetLayerDefn())
            f.SetGeometry(g)
            f.SetField("ID", f"SAMPLE_{n:04d}")
            f.SetField("code_18", code)
            f.SetField("area_ha", part.area / 1e4)
            f.SetField("Remark", "synthetic")
            ol.CreateFeature(f)
    out = None
    return img_path, clc_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "out_dir",
        nargs="?",
        default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sample"),
    )
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    img, clc = make_sample(a.out_dir, a.size, a.seed, a.overwrite)
    print(img)
    print(clc)


if __name__ == "__main__":
    sys.exit(main())
