"""samplingdesign -> (reference filled in) -> assessaccuracy with points, and landcoverchange, through qgis_process
(scripts/qgis_process.sh: the plugin installed in a temporary profile)."""

import json
import os
import subprocess

import numpy as np
from osgeo import ogr

from tests.rasters import make_class_raster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CLASSES = [
    {"value": 1, "name": "Water", "color": "#0000ff"},
    {"value": 2, "name": "Forest", "color": "#00a000"},
    {"value": 3, "name": "Urban", "color": "#e6004d"},
]


def class_map(path, a):
    return make_class_raster(path, a, CLASSES)


def qgis_process(tmp_path, alg, *params):
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [os.path.join(ROOT, "scripts", "qgis_process.sh"), "run", alg, "--", *params],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_sample_label_and_assess_with_qgis_process(tmp_path):
    a = np.full((60, 60), 1, np.uint8)
    a[:, 30:] = 2
    a[:10, :10] = 3
    cmap = class_map(tmp_path / "map.tif", a)
    out = qgis_process(
        tmp_path,
        "satclassify:samplingdesign",
        f"INPUT={cmap}",
        "METHOD=1",
        "TOTAL=90",
        "MIN_PER_CLASS=20",
        "SEED=3",
        f"OUTPUT={tmp_path / 'sample.gpkg'}",
        f"OUTPUT_STRATA={tmp_path / 'strata.json'}",
    )
    assert "POINTS:\t90" in out
    meta = json.loads((tmp_path / "strata.json").read_text(encoding="utf-8"))
    assert [s["pixels"] for s in meta["strata"]] == [1700, 1800, 100]
    # the "interpreter": reference = the map class, except every 5th point of the forest stratum, which is water
    ds = ogr.Open(str(tmp_path / "sample.gpkg"), 1)
    lyr = ds.GetLayer(0)
    n = np.zeros((3, 3), int)
    forest = 0
    for f in lyr:
        ref = f.GetField("stratum")
        if ref == 2:
            forest += 1
            ref = 1 if forest % 5 == 0 else 2
        f.SetField("reference", ref)
        lyr.SetFeature(f)
        n[f.GetField("stratum") - 1, ref - 1] += 1
    ds = lyr = None
    out = qgis_process(
        tmp_path,
        "satclassify:assessaccuracy",
        f"CLASSIFIED={cmap}",
        f"REFERENCE_POINTS={tmp_path / 'sample.gpkg'}",
        "REFERENCE_FIELD=reference",
        f"OUTPUT_MATRIX={tmp_path / 'cm.csv'}",
        f"OUTPUT_METRICS={tmp_path / 'm.json'}",
        f"OUTPUT_REPORT={tmp_path / 'r.html'}",
    )
    m = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    w = np.array([1700, 1800, 100]) / 3600
    oa = sum(w[i] * n[i, i] / n[i].sum() for i in range(3))
    assert abs(m["overall_accuracy"] - oa) < 1e-12 and m["sample"]["used"] == 90
    assert f"90 of 90 reference points used over 3 classes: OA {oa:.4f}" in out
    water = m["area_estimates"][0]
    assert abs(water["estimated_area_ha"] - 36 * (w[0] + w[1] * n[1, 0] / n[1].sum())) < 1e-9
    assert "<h2>Area estimates</h2>" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_landcoverchange_with_qgis_process(tmp_path):
    a = np.full((100, 100), 1, np.uint8)
    a[:, 50:] = 2
    b = a.copy()
    b[0:30, 0:30] = 3
    t1, t2 = class_map(tmp_path / "t1.tif", a), class_map(tmp_path / "t2.tif", b)
    out = qgis_process(
        tmp_path,
        "satclassify:landcoverchange",
        f"FIRST={t1}",
        f"SECOND={t2}",
        "MMU=5",
        f"OUTPUT={tmp_path / 'ft.tif'}",
        f"OUTPUT_MATRIX={tmp_path / 'c.csv'}",
        f"OUTPUT_JSON={tmp_path / 'c.json'}",
        f"OUTPUT_POLYGONS={tmp_path / 'c.gpkg'}",
    )
    assert "CHANGED_HA:\t9\n" in out and "COMPARED_HA:\t100\n" in out
    assert "100.00 ha compared: 9.00 ha changed in 1 from-to classes, 1 change polygons >= 5 ha" in out
    assert (tmp_path / "c.csv").read_text(encoding="utf-8").splitlines()[1] == "1,Water,41.0000,0.0000,9.0000,50.0000"
    ds = ogr.Open(str(tmp_path / "c.gpkg"))
    feats = [(f.GetField("change"), f.GetField("area_ha")) for f in ds.GetLayer(0)]
    ds = None
    assert feats == [("Water -> Urban", 9.0)]
