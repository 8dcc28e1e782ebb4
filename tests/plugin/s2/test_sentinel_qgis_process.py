"""The Sentinel-2 tools through qgis_process (scripts/qgis_process.sh: plugin installed in a temp profile),
against the local STAC fake and a SAFE zip built by the test."""

import json
import os
import subprocess

import numpy as np
import pytest
from osgeo import gdal

from satclassify_plugin.core.s2 import products as s2

from .. import fake_servers as fs
from ..sentinel_helpers import A0, band_names, bounds_of, utm_extent, window

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def qgis_process(tmp_path, alg, *args):
    env = dict(os.environ, SATCLASSIFY_QGIS_CONFIG=str(tmp_path / "qgis-config"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [os.path.join(ROOT, "scripts", "qgis_process.sh"), "run", alg, "--json", "--", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def test_search_fetch_and_importsafe_with_qgis_process(tmp_path):
    srv = fs.FakeServer()
    try:
        arrays = fs.tile_arrays(31, 512)
        assets = fs.make_cog_tile(srv, "A", arrays, A0)
        item = fs.make_item(
            "S2A_32TQM_20230601_0_L2A",
            "2023-06-01T10:20:00Z",
            arrays,
            A0,
            assets,
            cloud=10.0,
            baseline="05.10",
            applied=False,
        )
        fs.add_stac_api(srv, [item])
        ext = utm_extent(601000, 4998000, 601500, 4998500)
        common = [f"EXTENT={ext}", "START=2023-05-01", "END=2023-06-30", "MAX_CLOUD=50", "SOURCE=0", f"URL={srv.url}"]
        res = qgis_process(tmp_path, "satclassify:searchsentinel2", *common, f"OUTPUT={tmp_path / 'fp.gpkg'}")
        assert res["results"]["COUNT"] == 1 and res["results"]["BEST_ITEMS"] == item["id"]
        assert os.path.exists(tmp_path / "fp.gpkg")
        out = tmp_path / "s2.tif"
        res = qgis_process(
            tmp_path,
            "satclassify:fetchsentinel2",
            *common,
            "BANDS=B04,B08",
            f"OUTPUT={out}",
            f"MASK={tmp_path / 'mask.tif'}",
        )
        assert res["results"]["ITEMS"] == item["id"]
        ds = gdal.Open(str(out))
        assert band_names(ds) == ["B04", "B08"] and bounds_of(ds) == (601000.0, 4998000.0, 601500.0, 4998500.0)
        assert np.array_equal(ds.ReadAsArray()[0], s2.harmonise(window(arrays["B04"], bounds_of(ds), A0), -1000))
        ds = None
    finally:
        srv.close()
    safe_arrays = fs.tile_arrays(32, 60)
    z = fs.make_safe_zip(tmp_path / "p.zip", safe_arrays, A0, baseline="04.00")
    res = qgis_process(
        tmp_path,
        "satclassify:importsafe",
        f"INPUT={z}",
        "BANDS=B02,B03,B04,B08",
        f"OUTPUT={tmp_path / 'safe.tif'}",
        f"MASK={tmp_path / 'safe_mask.tif'}",
    )
    ds = gdal.Open(str(tmp_path / "safe.tif"))
    assert band_names(ds) == ["B02", "B03", "B04", "B08"]
    assert np.array_equal(ds.ReadAsArray()[2], s2.harmonise(safe_arrays["B04"], -1000))
    assert res["results"]["VALID_FRACTION"] > 0.5
