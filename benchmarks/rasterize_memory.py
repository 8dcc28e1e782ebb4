"""Peak memory (and time) of rasterizeclc's core with many small polygons (QGIS env python).

    .venv-qgis/bin/python benchmarks/rasterize_memory.py                   # 1,000,000 squares, 1000 x 1000 px
    .venv-qgis/bin/python benchmarks/rasterize_memory.py --polygons 250000 --workdir /tmp/rm

Makes a GeoPackage of N small squares (a sqrt(N) x sqrt(N) lattice over 10 km x 10 km, each square 80 % of its
lattice cell, jittered inside it, a random CLC level-3 code as text in ``code_18``; written with OGR to the work
folder, /tmp by default), then runs, each in its own process (so its peak RSS is its own): ``gdal_rasterize`` (the
baseline: the plain command line, burning the code into a UInt16 GeoTIFF), and ``rasterize_clc`` with the centre,
all-touched, majority and majority + MIXED rules on the 10 m grid (1000 x 1000 px; ``--grid-epsg 3035``: the
grid in another CRS, so the polygons are reprojected through a memory copy). Prints seconds, peak RSS (MB)
and both as ratios to gdal_rasterize of the same run. ``--repeat`` rounds, round-robin; a step's time is its
fastest round, its memory its largest.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

EXTENT = 10000.0
PIXEL = 10.0
X0, Y0 = 500000.0, 5200000.0


def make_squares(path: str, polygons: int, seed: int = 0, epsg: int = 32633, fill: float = 0.8) -> int:
    """A GeoPackage of about ``polygons`` small jittered squares (n x n, n = round(sqrt(polygons))), each ``fill``
    of its lattice cell across (> 1: neighbours overlap); returns n*n."""
    import numpy as np
    from osgeo import ogr, osr

    from satclassify_plugin.core.contract import clc

    ogr.UseExceptions()
    n = max(1, int(round(polygons**0.5)))
    step = EXTENT / n
    side = fill * step
    rng = np.random.default_rng(seed)
    jx, jy = rng.uniform(0.0, abs(step - side), size=(2, n, n))
    codes = [str(e.code) for e in clc.legend()]
    pick = rng.integers(len(codes), size=(n, n))
    if os.path.exists(path):
        os.remove(path)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    lyr = ds.CreateLayer("clc", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("code_18", ogr.OFTString))
    defn = lyr.GetLayerDefn()
    lyr.StartTransaction()
    for i in range(n):
        for j in range(n):
            x = X0 + j * step + jx[i, j]
            y = Y0 + i * step + jy[i, j]
            wkt = f"POLYGON(({x} {y},{x + side} {y},{x + side} {y + side},{x} {y + side},{x} {y}))"
            f = ogr.Feature(defn)
            f.SetGeometryDirectly(ogr.CreateGeometryFromWkt(wkt))
            f.SetField(0, codes[pick[i, j]])
            lyr.CreateFeature(f)
    lyr.CommitTransaction()
    ds = None
    return n * n


def _grid_meta(epsg: int = 32633):
    """The 10 m grid over the squares; in another CRS (``epsg``): about the same place, the polygons reprojected."""
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    w = int(EXTENT / PIXEL)
    x, y = X0, Y0 + EXTENT
    if epsg != 32633:
        src = osr.SpatialReference()
        src.ImportFromEPSG(32633)
        for s in (src, srs):
            s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        x, y = osr.CoordinateTransformation(src, srs).TransformPoint(X0, Y0 + EXTENT)[:2]
    return {"w": w, "h": w, "gt": [x, PIXEL, 0.0, y, 0.0, -PIXEL], "wkt": srs.ExportToWkt()}


def _step(meta: dict) -> None:
    """One measured step in this process; prints a JSON line."""
    from osgeo import gdal

    from satclassify_plugin.core.labels.rasterize import Grid, RasterizeOptions, rasterize_clc

    gdal.UseExceptions()
    grid = Grid(meta["w"], meta["h"], tuple(meta["gt"]), meta["wkt"])
    t = time.perf_counter()
    if meta["kind"] == "gdal_rasterize":
        xmin, ymin, xmax, ymax = grid.bounds
        subprocess.run(
            [
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
            ],
            check=True,
        )
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    else:
        rasterize_clc(
            meta["src"], meta["out"], grid, RasterizeOptions(level=3, rule=meta["kind"], mixed_output=meta.get("mixed"))
        )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": rss}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--polygons", type=int, default=1_000_000)
    ap.add_argument("--workdir", default=None, help="where the GeoPackage and rasters go (default: a new /tmp dir)")
    ap.add_argument("--reuse", action="store_true", help="keep an existing squares.gpkg of the work folder")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--steps", default="gdal_rasterize,centre,all_touched,majority,majority+mixed")
    ap.add_argument(
        "--grid-epsg",
        type=int,
        default=32633,
        help="CRS of the output grid (default the layer's, 32633; e.g. 3035: polygons reprojected)",
    )
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        return _step(json.loads(args.step))
    work = args.workdir or tempfile.mkdtemp(prefix="satclassify-rmem-")
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, "squares.gpkg")
    if not (args.reuse and os.path.exists(src)):
        t = time.perf_counter()
        n = make_squares(src, args.polygons)
        print(f"{n} squares written to {src} in {time.perf_counter() - t:.1f} s")
    meta = dict(_grid_meta(args.grid_epsg), src=src)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    rounds: dict = {}
    for _ in range(max(1, args.repeat)):
        for label in steps:
            kind = label.split("+")[0]
            m = dict(meta, kind=kind, out=os.path.join(work, label.replace("+", "_") + ".tif"))
            if label.endswith("+mixed"):
                m["mixed"] = os.path.join(work, "mixed.tif")
            p = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--step", json.dumps(m)], capture_output=True, text=True
            )
            if p.returncode:
                print(p.stdout, p.stderr)
                raise SystemExit(f"step {label} failed")
            rounds.setdefault(label, []).append(json.loads(p.stdout.strip().splitlines()[-1]))
    figures = {
        "polygons": args.polygons,
        "grid": [meta["w"], meta["h"]],
        "grid_epsg": args.grid_epsg,
        "load": os.getloadavg()[0],
        "steps": {},
    }
    base = rounds.get("gdal_rasterize")
    print(f"{'step':<18}{'seconds':>10}{'peak RSS MB':>14}{'x gdal time':>13}{'x gdal RSS':>12}")
    for label, rs in rounds.items():
        sec = min(r["seconds"] for r in rs)
        rss = max(r["peak_rss_mb"] for r in rs)
        entry = {"seconds": sec, "peak_rss_mb": rss, "rounds": rs}
        line = f"{label:<18}{sec:>10.2f}{rss:>14.0f}"
        if base:
            bsec, brss = min(r["seconds"] for r in base), max(r["peak_rss_mb"] for r in base)
            entry.update(x_gdal_seconds=sec / bsec, x_gdal_rss=rss / brss)
            line += f"{sec / bsec:>13.2f}{rss / brss:>12.2f}"
        figures["steps"][label] = entry
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
