"""Benchmark satclassify:rasterizeclc's core against plain gdal_rasterize (QGIS env python).

    .venv-qgis/bin/python benchmarks/rasterize.py            # 10980 x 10980 grid at 10 m, ~40k polygons
    .venv-qgis/bin/python benchmarks/rasterize.py --quick    # 2745 x 2745 grid, ~2.5k polygons

Makes a synthetic CLC-like layer (a lattice of jittered quadrilaterals with jittered shared edges, so the
polygons tile the area without gaps, random level-3 codes as text in ``code_18``), then times in the same
run: the ``gdal_rasterize`` command line (burning the code into a default UInt16 GeoTIFF), the centre rule,
all-touched, and the majority rule (with and without the mixed raster).
Prints seconds, ratios to gdal_rasterize, pixel equality of the centre rule, and peak RSS of each run
(each timed step runs in a fresh subprocess so its peak RSS is its own). The steps run ``--repeat`` rounds (3),
one step after the other in each round, so that a change in the machine's load reaches every step alike; each
step's figure is its fastest round (the ratios of the medians are printed too).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_layer(path, size_px, pixel, cells, seed=0, epsg=32633, sub=4):
    import numpy as np
    from osgeo import ogr, osr

    from satclassify_plugin.core.contract import clc

    rng = np.random.default_rng(seed)
    x0, y0 = 500000.0, 5200000.0
    extent = size_px * pixel
    step = extent / cells
    n = cells + 1
    gx, gy = np.meshgrid(np.arange(n) * step, np.arange(n) * step)
    jit = rng.uniform(-0.3, 0.3, size=(2, n, n)) * step
    jit[:, 0, :] = jit[:, -1, :] = 0
    jit[:, :, 0] = jit[:, :, -1] = 0
    vx, vy = x0 + gx + jit[0], y0 + gy + jit[1]

    def edge(ax, ay, bx, by, key):
        t = np.linspace(0, 1, sub + 2)[1:-1]
        r = np.random.default_rng([seed, 0 if key[0] == "h" else 1, key[1], key[2]])
        off = r.uniform(-0.08, 0.08, sub) * step
        dx, dy = bx - ax, by - ay
        ln = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        return [(ax + dx * s - dy / ln * o, ay + dy * s + dx / ln * o) for s, o in zip(t, off)]

    codes = [str(e.code) for e in clc.legend()]
    drv = ogr.GetDriverByName("GPKG")
    if os.path.exists(path):
        os.remove(path)
    ds = drv.CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    lyr = ds.CreateLayer("clc", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("code_18", ogr.OFTString))
    defn = lyr.GetLayerDefn()
    lyr.StartTransaction()
    for i in range(cells):
        for j in range(cells):
            a, b = (vx[i, j], vy[i, j]), (vx[i, j + 1], vy[i, j + 1])
            c, d = (vx[i + 1, j + 1], vy[i + 1, j + 1]), (vx[i + 1, j], vy[i + 1, j])
            pts = [a] + edge(*a, *b, ("h", i, j)) + [b] + edge(*b, *c, ("v", i, j + 1)) + [c]
            pts += list(reversed(edge(*d, *c, ("h", i + 1, j)))) + [d] + list(reversed(edge(*a, *d, ("v", i, j))))
            ring = ogr.Geometry(ogr.wkbLinearRing)
            for x, y in pts + [a]:
                ring.AddPoint_2D(float(x), float(y))
            poly = ogr.Geometry(ogr.wkbPolygon)
            poly.AddGeometry(ring)
            f = ogr.Feature(defn)
            f.SetGeometryDirectly(poly)
            f.SetField(0, codes[int(rng.integers(len(codes)))])
            lyr.CreateFeature(f)
    lyr.CommitTransaction()
    ds = None
    return (x0, y0, x0 + extent, y0 + extent)


def _step(args):
    """One timed step in this process; prints a JSON line."""
    import resource

    from osgeo import gdal

    from satclassify_plugin.core.labels.rasterize import Grid, rasterize_clc

    gdal.UseExceptions()
    meta = json.loads(args.step)
    grid = Grid(meta["w"], meta["h"], tuple(meta["gt"]), meta["wkt"])
    t = time.perf_counter()
    if meta["kind"] == "gdal_rasterize":
        # the plain command line: default GeoTIFF (striped, uncompressed), the code burnt as UInt16
        xmin, ymin, xmax, ymax = grid.bounds
        cmd = [
            "gdal_rasterize",
            "-q",
            "-a",
            "code_18",
            "-ot",
            "UInt16",
            "-a_nodata",
            "0",
            "-te",
            str(xmin),
            str(ymin),
            str(xmax),
            str(ymax),
            "-ts",
            str(grid.width),
            str(grid.height),
            meta["src"],
            meta["out"],
        ]
        subprocess.run(cmd, check=True)
        dt = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        print(json.dumps({"seconds": dt, "peak_rss_mb": rss}))
        return
    else:
        rasterize_clc(meta["src"], meta["out"], grid, level=3, rule=meta["kind"], mixed_output=meta.get("mixed"))
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": dt, "peak_rss_mb": rss}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2745 x 2745 grid instead of 10980 x 10980")
    ap.add_argument("--size", type=int, default=None, help="grid edge in pixels (default 10980, quick 2745)")
    ap.add_argument("--cells", type=int, default=None, help="polygons per grid edge (default size/55)")
    ap.add_argument("--skip-majority", action="store_true")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of all steps; each step's fastest counts")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        return _step(args)
    import numpy as np
    from osgeo import gdal, osr

    from satclassify_plugin.core.contract import clc

    size = args.size or (2745 if args.quick else 10980)
    cells = args.cells or max(2, size // 55)
    work = args.workdir or tempfile.mkdtemp(prefix="satclassify-bench-")
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, "clc.gpkg")
    t = time.perf_counter()
    x0, y0, x1, y1 = make_layer(src, size, 10.0, cells)
    print(
        f"synthetic layer: {cells * cells} polygons, grid {size} x {size} at 10 m "
        f"({time.perf_counter() - t:.1f} s to make)"
    )
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    meta = {"w": size, "h": size, "gt": [x0, 10.0, 0.0, y1, 0.0, -10.0], "wkt": srs.ExportToWkt(), "src": src}
    steps = [("gdal_rasterize", {}), ("centre", {}), ("all_touched", {})]
    if not args.skip_majority:
        steps += [("majority", {}), ("majority", {"mixed": os.path.join(work, "mixed.tif")})]
    results, rounds = {}, {}
    for _ in range(max(1, args.repeat)):
        for kind, extra in steps:
            out = os.path.join(work, f"{kind}{'_mixed' if extra else ''}.tif")
            m = dict(meta, kind=kind, out=out, **extra)
            p = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--step", json.dumps(m)], capture_output=True, text=True
            )
            if p.returncode:
                print(p.stdout, p.stderr)
                raise SystemExit(f"step {kind} failed")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            label = kind + (" + mixed" if extra else "")
            rounds.setdefault(label, []).append(r)
            results[label] = (
                {
                    "seconds": min(x["seconds"] for x in rounds[label]),
                    "median_seconds": float(np.median([x["seconds"] for x in rounds[label]])),
                    "peak_rss_mb": max(x["peak_rss_mb"] for x in rounds[label]),
                },
                out,
            )
    base = results["gdal_rasterize"][0]["seconds"]
    base_med = results["gdal_rasterize"][0]["median_seconds"]
    print(f"{'step':<22}{'seconds':>10}{'x gdal_rasterize':>18}{'(medians)':>11}{'peak RSS MB':>14}")
    for label, (r, _) in results.items():
        print(
            f"{label:<22}{r['seconds']:>10.2f}{r['seconds'] / base:>18.2f}"
            f"{r['median_seconds'] / base_med:>11.2f}{r['peak_rss_mb']:>14.0f}"
        )
    ref = gdal.Open(results["gdal_rasterize"][1]).ReadAsArray()
    lut = clc.lookup_table(3, "code")
    cen = gdal.Open(results["centre"][1]).ReadAsArray()
    equal = bool(np.array_equal(lut[ref], cen))
    print(f"centre rule == gdal_rasterize (codes mapped to level-3 values): {equal}")
    figures = {
        "size": size,
        "polygons": cells * cells,
        "load": os.getloadavg()[0],
        "centre_equals_gdal": equal,
        "repeat": max(1, args.repeat),
        "steps": {
            label: {
                "seconds": r["seconds"],
                "x_gdal_rasterize": r["seconds"] / base,
                "median_seconds": r["median_seconds"],
                "x_gdal_rasterize_medians": r["median_seconds"] / base_med,
                "rounds": [x["seconds"] for x in rounds[label]],
                "peak_rss_mb": r["peak_rss_mb"],
            }
            for label, (r, _) in results.items()
        },
    }
    if "majority" in results:
        maj = gdal.Open(results["majority"][1]).ReadAsArray()
        figures["majority_differs_from_centre_pct"] = 100.0 * float(np.mean(maj != cen))
        print(f"majority differs from centre on {figures['majority_differs_from_centre_pct']:.2f} % of pixels")
        for label, goal in (("majority", 2.0), ("majority + mixed", 2.5)):
            ratio = figures["steps"][label]["x_gdal_rasterize"]
            print(f"{label}: {ratio:.2f}x gdal_rasterize (goal <= {goal}: {'met' if ratio <= goal else 'NOT met'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
