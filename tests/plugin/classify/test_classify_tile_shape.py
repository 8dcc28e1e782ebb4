"""Issue 25 item 15: tile plans follow the raster's shape. A 20000 x 1 px raster ran on 256 x 256 tiles, 255 of
every 256 rows reflection padding (about 250 times the work); now its tiles are as high as the model needs (1 row
for a model of any size, 32 for one that keeps multiples of 32) and longer, with the same result."""

import numpy as np
from osgeo import gdal

from tests import onnx_models as om
from tests.rasters import make_raster, read_raster

from .test_classify import ALG, Feedback, assert_classes, s2_raw, whole_image_probs


def test_a_one_row_raster_runs_on_thin_tiles(run_alg, tmp_path):
    raw = s2_raw((4, 1, 20000), seed=21)
    src = make_raster(tmp_path / "row.tif", raw, band_names=om.S2_BANDS4)
    any_size = om.conv_model(tmp_path / "a.onnx", layers=(3, 3), card_kw={"tile_size": 256, "size_multiple": 1})
    x32 = om.conv_model(tmp_path / "b.onnx", layers=(3, 3), card_kw={"tile_size": 256})
    logits = whole_image_probs(any_size, raw.astype(np.float32) * np.float32(1e-4))[0]
    fb = Feedback()
    run_alg(ALG, {"INPUT": src, "MODEL": any_size, "OUTPUT": str(tmp_path / "a.tif")}, feedback=fb)
    # one row per tile, as long as 256 x 256 pixels per tile allow: the whole row in one run (was 80 tiles of
    # 254 x 254 px, 254 rows for 1)
    assert any(m.startswith("1 tile(s) of 20000 x 1 px (halo 2)") for m in fb.infos), fb.infos
    assert any("tile size 256 -> 20000 x 1: tiles fitted to the raster's shape" in m for m in fb.infos)
    # the tile holds the raster's own row, no padding: exactly the whole-image run
    assert_classes(read_raster(tmp_path / "a.tif"), (logits.argmax(0) + 1).astype(np.uint8), logits)
    # a model that keeps multiples of 32: 32 rows (31 padding), 2016 px long (65536 px a tile), 10 tiles
    fb = Feedback()
    run_alg(ALG, {"INPUT": src, "MODEL": x32, "OUTPUT": str(tmp_path / "b.tif")}, feedback=fb)
    assert any(m.startswith("10 tile(s) of 2016 x 32 px (halo 2)") for m in fb.infos), fb.infos
    assert gdal.Open(str(tmp_path / "b.tif")).RasterYSize == 1
    assert (read_raster(tmp_path / "b.tif") > 0).all()
