"""The ``satclassify`` command (satclassify_plugin/headless) and the Processing tools write the same files from the
same inputs: byte for byte for the rasters (issue 28 item 1). The command runs in a child Python (this env, the
repository on its path) that must not import qgis, PyQt or torch on the way."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from osgeo import ogr

from satclassify_plugin.core.contract import clc
from tests import onnx_models as om
from tests.rasters import UTM32N, make_class_raster, make_polygons, make_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
X0, Y0 = 500000.0, 5000000.0

CHILD = r"""
import json, sys
from satclassify_plugin.headless.cli import main
rc = main(sys.argv[1:])
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'torch', 'processing'))
print(json.dumps({'rc': rc, 'forbidden_imports': bad}), file=sys.stderr)
"""


def satclassify(*args, env=None):
    """Run the command in a child process: (exit status, stdout JSON or None, stderr text)."""
    e = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    p = subprocess.run(
        [sys.executable, "-c", CHILD, *[str(a) for a in args]],
        capture_output=True,
        text=True,
        env=e,
        cwd=ROOT,
        timeout=300,
    )
    tail = json.loads(p.stderr.strip().splitlines()[-1])
    assert tail["forbidden_imports"] == [], tail
    out = json.loads(p.stdout) if p.stdout.strip() else None
    return tail["rc"], out, p.stderr


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


@pytest.fixture
def scene(tmp_path):
    raw = np.random.default_rng(3).integers(10, 4000, (4, 45, 52)).astype(np.uint16)
    raw[:, :3, :5] = 0  # nodata corner
    src = make_raster(tmp_path / "s2.tif", raw, origin=(X0, Y0), band_names=om.S2_BANDS4, nodata=0)
    model = om.dual_model(tmp_path / "dual.onnx", card_kw={"tile_size": 16})
    return src, model


def test_classify_writes_the_same_bytes_as_the_processing_tool(run_alg, tmp_path, scene):
    src, model = scene
    q, c = tmp_path / "qgis", tmp_path / "cli"
    q.mkdir()
    c.mkdir()
    extent = f"{X0 + 20},{X0 + 480},{Y0 - 400},{Y0 - 30}"
    res = run_alg(
        "satclassify:classify",
        {
            "INPUT": src,
            "MODEL": model,
            "EXTENT": extent,
            "TILE_SIZE": 24,
            "BATCH_SIZE": 3,
            "OUTPUT": str(q / "classes.tif"),
            "CONFIDENCE": str(q / "conf.tif"),
            "PROBABILITIES": str(q / "p.tif"),
        },
    )
    rc, out, err = satclassify(
        "classify",
        "--input",
        src,
        "--model",
        model,
        "--extent",
        extent,
        "--tile-size",
        24,
        "--batch-size",
        3,
        "--output",
        c / "classes.tif",
        "--confidence",
        c / "conf.tif",
        "--probabilities",
        c / "p.tif",
    )
    assert rc == 0, err
    # the class rasters carry their category names in a GDAL .aux.xml sidecar (core.raster): compared too
    names = [
        "classes.tif",
        "classes.tif.aux.xml",
        "classes_clc_level1.tif",
        "classes_clc_level1.tif.aux.xml",
        "conf.tif",
        "p.tif",
    ]
    assert sorted(os.listdir(q)) == sorted(os.listdir(c)) == sorted(names)
    for n in names:
        assert same_bytes(q / n, c / n), n
    assert out["HEAD_OUTPUTS"] == [str(c / "classes.tif"), str(c / "classes_clc_level1.tif")]
    assert out["PROVIDER"] == res["PROVIDER"] == "CPUExecutionProvider"
    assert f"head 'clc_level1' written to {c / 'classes_clc_level1.tif'}" in err
    assert "10...20..." in err  # progress on the console


def test_classify_extent_in_another_crs_is_reprojected_to_the_layer(run_alg, tmp_path, scene):
    """EXTENT with [EPSG:code] is taken in that CRS, as the Processing tool does."""
    from osgeo import osr

    src, model = scene
    s, d = osr.SpatialReference(), osr.SpatialReference()
    s.ImportFromEPSG(UTM32N)
    d.ImportFromEPSG(4326)
    for x in (s, d):
        x.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(s, d)
    (lon0, lat0, _), (lon1, lat1, _) = ct.TransformPoint(X0 + 100, Y0 - 300), ct.TransformPoint(X0 + 400, Y0 - 100)
    extent = f"{lon0},{lon1},{lat0},{lat1} [EPSG:4326]"
    run_alg(
        "satclassify:classify",
        {"INPUT": src, "MODEL": model, "EXTENT": extent, "OUTPUT": str(tmp_path / "q.tif"), "WRITE_ALL_HEADS": False},
    )
    rc, out, err = satclassify(
        "classify",
        "--input",
        src,
        "--model",
        model,
        "--extent",
        extent,
        "--no-write-all-heads",
        "--output",
        tmp_path / "c.tif",
    )
    assert rc == 0, err
    assert same_bytes(tmp_path / "q.tif", tmp_path / "c.tif")
    assert "head 'clc_level1' (2 classes) was not written" in err


def test_rasterizeclc_writes_the_same_bytes_as_the_processing_tool(run_alg, tmp_path):
    rng = np.random.default_rng(5)
    codes = [e.code for e in clc.legend()]
    polys = []
    for _ in range(25):
        cx, cy, r = rng.uniform(0, 400), rng.uniform(0, 300), rng.uniform(20, 120)
        ang = np.sort(rng.uniform(0, 2 * np.pi, 6))
        pts = [(X0 + cx + r * np.cos(a), Y0 - cy + r * np.sin(a)) for a in ang] + []
        pts.append(pts[0])
        polys.append(
            (
                "POLYGON((" + ",".join(f"{x} {y}" for x, y in pts) + "))",
                {"code_18": str(codes[int(rng.integers(len(codes)))])},
            )
        )
    clcfile = make_polygons(tmp_path / "clc.gpkg", polys, epsg=UTM32N, fields={"code_18": ogr.OFTString})
    ref = make_raster(tmp_path / "ref.tif", np.zeros((30, 40), np.uint16), origin=(X0, Y0))
    run_alg(
        "satclassify:rasterizeclc",
        {
            "INPUT": clcfile,
            "REFERENCE": ref,
            "LEVEL": 1,
            "RULE": 2,
            "OUTPUT": str(tmp_path / "q.tif"),
            "MIXED": str(tmp_path / "qm.tif"),
        },
    )
    rc, out, err = satclassify(
        "rasterizeclc",
        "--input",
        clcfile,
        "--reference",
        ref,
        "--level",
        "level2",
        "--rule",
        "majority",
        "--output",
        tmp_path / "c.tif",
        "--mixed",
        tmp_path / "cm.tif",
    )
    assert rc == 0, err
    assert same_bytes(tmp_path / "q.tif", tmp_path / "c.tif")
    assert same_bytes(tmp_path / "qm.tif", tmp_path / "cm.tif")
    assert out["UNKNOWN_FEATURES"] == 0 and "grid: 40 x 30 pixels, rule majority" in err
    # the grid from EXTENT + TARGET_CRS + PIXEL_SIZE (no reference raster)
    extent = f"{X0},{X0 + 400},{Y0 - 300},{Y0} [EPSG:{UTM32N}]"
    run_alg(
        "satclassify:rasterizeclc",
        {
            "INPUT": clcfile,
            "EXTENT": extent,
            "TARGET_CRS": f"EPSG:{UTM32N}",
            "PIXEL_SIZE": 20,
            "OUTPUT": str(tmp_path / "qe.tif"),
        },
    )
    rc, _, err = satclassify(
        "rasterizeclc",
        "--input",
        clcfile,
        "--extent",
        extent,
        "--target-crs",
        f"EPSG:{UTM32N}",
        "--pixel-size",
        20,
        "--output",
        tmp_path / "ce.tif",
    )
    assert rc == 0, err
    assert same_bytes(tmp_path / "qe.tif", tmp_path / "ce.tif")


def test_assess_writes_the_same_tables_as_the_processing_tool(run_alg, tmp_path):
    rng = np.random.default_rng(2)
    classes = [{"value": v, "name": f"c{v}", "color": om.COLORS[v]} for v in (1, 2, 3)]
    ref = rng.integers(1, 4, (30, 30)).astype(np.uint8)
    cls = np.where(rng.random((30, 30)) < 0.8, ref, rng.integers(1, 4, (30, 30))).astype(np.uint8)
    a = make_class_raster(tmp_path / "cls.tif", cls, classes)
    b = make_class_raster(tmp_path / "ref.tif", ref, classes)
    res = run_alg(
        "satclassify:assessaccuracy",
        {
            "CLASSIFIED": a,
            "REFERENCE": b,
            "OUTPUT_MATRIX": str(tmp_path / "q.csv"),
            "OUTPUT_METRICS": str(tmp_path / "q.json"),
            "OUTPUT_REPORT": str(tmp_path / "q.html"),
        },
    )
    rc, out, err = satclassify(
        "assess",
        "--classified",
        a,
        "--reference",
        b,
        "--output-matrix",
        tmp_path / "c.csv",
        "--output-metrics",
        tmp_path / "c.json",
        "--output-report",
        tmp_path / "c.html",
    )
    assert rc == 0, err
    assert same_bytes(tmp_path / "q.csv", tmp_path / "c.csv")
    q, c = (json.load(open(tmp_path / f"{n}.json")) for n in "qc")
    q.pop("seconds", None), c.pop("seconds", None)
    assert q == c
    assert out["OA"] == res["OA"] and out["KAPPA"] == res["KAPPA"] and 0.7 < out["OA"] < 0.95
    assert "pixels compared over 3 classes" in err


def test_user_errors_are_the_tools_messages_without_a_traceback(tmp_path, scene):
    src, model = scene
    rc, out, err = satclassify("classify", "--input", src, "--model", model, "--output", src)
    assert rc == 1 and out is None and "Traceback" not in err
    assert "satclassify classify: error: OUTPUT" in err and "INPUT" in err
    rc, _, err = satclassify("classify", "--input", src, "--model", model, "--output", tmp_path / "x.png")
    assert rc == 1 and "the tool writes GeoTIFF, not .png" in err
    rc, _, err = satclassify(
        "classify", "--input", src, "--model", model, "--extent", "5,5,1,2", "--output", tmp_path / "x.tif"
    )
    assert rc == 1 and "EXTENT '5,5,1,2' has no area" in err
    rc, _, err = satclassify(
        "classify", "--input", src, "--model", model, "--device", "GPU9", "--output", tmp_path / "x.tif"
    )
    assert rc == 1 and "DEVICE 'GPU9' is not one of the choices: 0 = Auto; 1 = CPU" in err
    rc, _, err = satclassify(
        "classify", "--input", tmp_path / "missing.tif", "--model", model, "--output", tmp_path / "x.tif"
    )
    assert rc == 1 and "missing.tif" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "x.tif")


def test_export_openeo_dispatch_says_when_the_exporter_is_missing(tmp_path):
    from satclassify_plugin.headless import cli

    if os.path.exists(os.path.join(ROOT, "satclassify_plugin", "headless", "openeo_export.py")):
        pytest.skip("the openEO exporter is present: its own tests cover it")
    rc, _, err = satclassify("export-openeo", "--model", "m.onnx", "--out", tmp_path)
    assert rc == 2 and f"the module {cli.OPENEO_MODULE} is missing" in err


def features(path):
    """Every feature of a GeoPackage's first layer: (fields, geometry WKT), in FID order."""
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    out = [(f.items(), f.GetGeometryRef().ExportToWkt()) for f in lyr]
    return lyr.GetName(), lyr.GetSpatialRef().ExportToWkt(), out


def test_classifypatches_writes_the_same_patches_as_the_processing_tool(run_alg, tmp_path):
    raw = np.random.default_rng(8).integers(10, 4000, (4, 40, 36)).astype(np.uint16)
    src = make_raster(tmp_path / "s2.tif", raw, origin=(X0, Y0), band_names=om.S2_BANDS4, nodata=0)
    w = np.random.default_rng(1).normal(0, 20, (3, 4))
    model = om.patch_model(tmp_path / "patch.onnx", w, p=8)
    res = run_alg(
        "satclassify:classifypatches",
        {"INPUT": src, "MODEL": model, "THRESHOLD": 0.4, "OUTPUT": str(tmp_path / "q.gpkg")},
    )
    rc, out, err = satclassify(
        "classifypatches", "--input", src, "--model", model, "--threshold", 0.4, "--output", tmp_path / "c.gpkg"
    )
    assert rc == 0, err
    assert out["COUNT"] == res["COUNT"] == 20
    # a GeoPackage records when it was written (gpkg_contents.last_change): its features are compared instead
    assert features(tmp_path / "q.gpkg") == features(tmp_path / "c.gpkg")
    # the shipped model by its id (MODEL_ID, the default) through both
    rgb = make_raster(
        tmp_path / "rgb.tif",
        np.random.default_rng(9).integers(1, 3000, (3, 64, 128)).astype(np.uint16),
        origin=(X0, Y0),
        band_names=["B04", "B03", "B02"],
        nodata=0,
    )
    run_alg("satclassify:classifypatches", {"INPUT": rgb, "OUTPUT": str(tmp_path / "q2.gpkg")})
    rc, out, err = satclassify("classifypatches", "--input", rgb, "--output", tmp_path / "c2.gpkg")
    assert rc == 0, err
    assert "model 'eurosat_rgb_satimnet' (shipped)" in err and out["COUNT"] == 2
    assert features(tmp_path / "q2.gpkg") == features(tmp_path / "c2.gpkg")


def test_assess_with_reference_points_gives_the_same_estimates(run_alg, tmp_path):
    from .accuracy.test_accuracy_points import class_map, sample

    cls = class_map(tmp_path / "map.tif")
    pts = sample(tmp_path)  # in EPSG:3035: both sides reproject them to the map's UTM grid
    run_alg(
        "satclassify:assessaccuracy",
        {
            "CLASSIFIED": cls,
            "REFERENCE_POINTS": pts,
            "REFERENCE_FIELD": "reference",
            "OUTPUT_MATRIX": str(tmp_path / "q.csv"),
            "OUTPUT_METRICS": str(tmp_path / "q.json"),
            "OUTPUT_REPORT": str(tmp_path / "q.html"),
        },
    )
    rc, out, err = satclassify(
        "assess",
        "--classified",
        cls,
        "--reference-points",
        pts,
        "--reference-field",
        "reference",
        "--output-matrix",
        tmp_path / "c.csv",
        "--output-metrics",
        tmp_path / "c.json",
    )
    assert rc == 0, err
    assert same_bytes(tmp_path / "q.csv", tmp_path / "c.csv")
    q, c = (json.load(open(tmp_path / f"{n}.json")) for n in "qc")
    for m in (q, c):
        m.pop("seconds", None)
        m["inputs"].pop("reference_points", None)  # the source as each side names it (a path either way)
    assert q == c
    assert c["sample"]["used"] == 14 and "14 of 20 reference points used" in err
