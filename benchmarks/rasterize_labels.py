"""Own labels vs CLC on the same polygons, and point labels (QGIS env python).

    .venv-qgis/bin/python benchmarks/rasterize_labels.py [--size 2745] [--points 100000]

Uses benchmarks/rasterize.py's synthetic CLC-like layer (jittered polygons tiling the grid, level-3 codes as text):
times rasterize_clc (level 3) and rasterize_labels on the same field (the codes as own labels, table derived from
the field: 44 classes) with the majority rule + MIXED, checks both give the same classes pixel for pixel (the same
engine; the values differ, so the comparison goes through the codes), then rasterize_labels on ``--points`` random
points. One process, best of ``--repeat`` rounds.
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2745)
    ap.add_argument("--points", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import numpy as np
    from osgeo import gdal, ogr, osr
    from rasterize import make_layer

    from satclassify_plugin.core.contract import clc
    from satclassify_plugin.core.labels.rasterize import Grid, rasterize_clc, rasterize_labels

    gdal.UseExceptions()
    work = tempfile.mkdtemp(prefix="satclassify-labels-bench-")
    src = os.path.join(work, "clc.gpkg")
    x0, y0, x1, y1 = make_layer(src, args.size, 10.0, max(2, args.size // 55))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    grid = Grid(args.size, args.size, (x0, 10.0, 0.0, y1, 0.0, -10.0), srs.ExportToWkt())
    best = {}
    for _ in range(args.repeat):
        for name, fn in (
            (
                "clc",
                lambda: rasterize_clc(
                    src,
                    os.path.join(work, "c.tif"),
                    grid,
                    level=3,
                    rule="majority",
                    mixed_output=os.path.join(work, "cm.tif"),
                ),
            ),
            (
                "labels",
                lambda: rasterize_labels(
                    src,
                    os.path.join(work, "l.tif"),
                    grid,
                    field_name="code_18",
                    rule="majority",
                    mixed_output=os.path.join(work, "lm.tif"),
                ),
            ),
        ):
            t = time.perf_counter()
            res = fn()
            best[name] = min(best.get(name, 1e9), time.perf_counter() - t)
            if name == "labels":
                lab_res = res
    c = gdal.Open(os.path.join(work, "c.tif")).ReadAsArray()
    l_ = gdal.Open(os.path.join(work, "l.tif")).ReadAsArray()
    grid_to_code = np.zeros(256, np.int64)
    for info in clc.classes(3):
        grid_to_code[info.value] = int(info.code)
    lab_to_code = np.zeros(256, np.int64)
    for info in lab_res.table.classes:
        lab_to_code[info.value] = int(info.code)
    same = bool((grid_to_code[c] == lab_to_code[l_]).all())
    mixed_same = bool(
        (
            gdal.Open(os.path.join(work, "cm.tif")).ReadAsArray()
            == gdal.Open(os.path.join(work, "lm.tif")).ReadAsArray()
        ).all()
    )
    # points
    rng = np.random.default_rng(0)
    pts = os.path.join(work, "pts.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(pts)
    lyr = ds.CreateLayer("pts", srs, ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("crop", ogr.OFTString))
    lyr.StartTransaction()
    for x, y, k in zip(
        rng.uniform(x0, x1, args.points), rng.uniform(y0, y1, args.points), rng.integers(0, 12, args.points)
    ):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometryDirectly(ogr.CreateGeometryFromWkt(f"POINT({x} {y})"))
        f.SetField(0, f"C{k:02d}")
        lyr.CreateFeature(f)
    lyr.CommitTransaction()
    ds = None
    t = time.perf_counter()
    res = rasterize_labels(pts, os.path.join(work, "p.tif"), grid, field_name="crop")
    tp = time.perf_counter() - t
    print(
        f"grid {args.size} x {args.size}: majority + MIXED, CLC level 3 {best['clc']:.2f} s, own labels (derived "
        f"table, {len(lab_res.table.classes)} classes) {best['labels']:.2f} s; same classes: {same}, same MIXED: "
        f"{mixed_same}"
    )
    print(
        f"{args.points} points: {tp:.2f} s, {res.points['labelled_pixels']} pixels labelled, "
        f"{res.points['conflicts']} pixels with points of two classes"
    )


if __name__ == "__main__":
    main()
