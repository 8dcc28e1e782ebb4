"""Issue 25 item 15: tile plans follow the raster's shape (each axis fitted on its own; a thin raster's long edge
takes the pixels its short edge leaves), never more tiles than the square tile, never larger than needed."""

import numpy as np
import pytest

from satclassify_plugin.core.classify.tiling import choose_tiling, fit_axis, plan_tiles


def _cover(width, height, shape, halo, window):
    tiles = plan_tiles(width, height, shape, halo, window)
    x0, y0, w, h = window
    cover = np.zeros((height, width), int)
    for t in tiles:
        cx, cy, cw, ch = t.core
        rx, ry, rw, rh = t.read
        cover[cy : cy + ch, cx : cx + cw] += 1
        assert 0 <= rx and rx + rw <= width and 0 <= ry and ry + rh <= height
        for c0, c1, r0, r1, n in ((cx, cx + cw, rx, rx + rw, width), (cy, cy + ch, ry, ry + rh, height)):
            assert c0 - r0 >= halo or r0 == 0
            assert r1 - c1 >= halo or r1 == n
        assert t.size == tuple(shape), "every tile feeds the model the same shape (batchable)"
    expected = np.zeros_like(cover)
    expected[y0 : y0 + h, x0 : x0 + w] = 1
    assert np.array_equal(cover, expected)
    return tiles


@pytest.mark.parametrize(
    "width,height,tile,halo,multiple,shape",
    [
        (100000, 1, 256, 32, 32, (2048, 32)),  # was 521 tiles of 256 x 256 for one row
        (100000, 1, 256, 2, 1, (50002, 1)),  # two tiles of 65536 px at most, spread evenly
        (1, 5000, 64, 2, 1, (1, 2502)),
        (5000, 40, 256, 32, 32, (896, 64)),
        (100, 100, 64, 2, 32, (64, 64)),  # a square raster keeps its square tile
    ],
)
def test_thin_rasters_get_thin_tiles(width, height, tile, halo, multiple, shape):
    c = choose_tiling(width, height, (0, 0, width, height), tile, halo, size_multiple=multiple)
    assert c.shape == shape
    tiles = _cover(width, height, c.shape, halo, (0, 0, width, height))
    square = plan_tiles(width, height, tile, halo)
    assert len(tiles) <= len(square)
    assert len(tiles) * shape[0] * shape[1] <= len(square) * tile * tile
    assert all(v % multiple == 0 for v in shape)


def test_one_row_costs_at_most_the_size_multiple_in_rows():
    c = choose_tiling(100000, 1, (0, 0, 100000, 1), 256, 32, size_multiple=32)
    tiles = plan_tiles(100000, 1, c.shape, 32)
    fed = sum(t.size[0] * t.size[1] for t in tiles)
    assert fed <= 32 * 100000 * 1.2  # 32 rows for 1 (the model's multiple) plus the halo overlap
    assert all(t.pad == (0, 31) for t in tiles)


def test_fit_axis_whole_axis_ignores_the_halo():
    # the whole axis in one tile: the raster border is the context, no 2 x halo minimum
    assert fit_axis(0, 1, 1, 256, 32, 1) == 1 and fit_axis(0, 1, 1, 256, 32, 32) == 32
    assert fit_axis(0, 300, 300, 256, 16, 32) == 192


def test_fixed_tiles_stay_square_and_random_layouts_cover():
    assert choose_tiling(100000, 1, (0, 0, 100000, 1), 64, 0, fixed_hw=(64, 64)).shape == (64, 64)
    rng = np.random.default_rng(5)
    for _ in range(80):
        tile = int(rng.integers(3, 80))
        halo = int(rng.integers(0, (tile - 1) // 2 + 1))
        w, h = int(rng.integers(1, 300)), int(rng.integers(1, 40))
        if rng.random() < 0.5:
            w, h = h, w
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        win = (x0, y0, int(rng.integers(1, w - x0 + 1)), int(rng.integers(1, h - y0 + 1)))
        mult = int(rng.choice([1, 2, 4]))
        c = choose_tiling(w, h, win, tile, halo, size_multiple=mult)
        tiles = _cover(w, h, c.shape, halo, win)
        assert len(tiles) <= len(plan_tiles(w, h, tile, halo, win))
