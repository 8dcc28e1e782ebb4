"""The tile planner: cores partition the window, read windows stay inside the raster, every core pixel
has a full halo of real context (or the raster border), and padding happens only for small rasters."""

import itertools

import numpy as np
import pytest

from satclassify_plugin.core.classify.tiling import choose_tiling, fit_tile, plan_axis, plan_tiles, tiles_needed
from satclassify_plugin.core.contract.errors import SatClassifyError


def _check(width, height, tile, halo, window=None):
    tiles = plan_tiles(width, height, tile, halo, window)
    x0, y0, w, h = window or (0, 0, width, height)
    cover = np.zeros((height, width), dtype=int)
    sizes = set()
    for t in tiles:
        cx, cy, cw, ch = t.core
        rx, ry, rw, rh = t.read
        cover[cy : cy + ch, cx : cx + cw] += 1
        # read windows inside the raster; cores inside read windows
        assert 0 <= rx and rx + rw <= width and 0 <= ry and ry + rh <= height
        assert rx <= cx and cx + cw <= rx + rw and ry <= cy and cy + ch <= ry + rh
        # halo of real pixels on every side, except on the raster border
        for c0, c1, r0, r1, n in ((cx, cx + cw, rx, rx + rw, width), (cy, cy + ch, ry, ry + rh, height)):
            assert c0 - r0 >= halo or r0 == 0
            assert r1 - c1 >= halo or r1 == n
        # full tiles when the raster is large enough; otherwise the whole axis, padded up to the tile
        for rlen, pad, n in ((rw, t.pad[0], width), (rh, t.pad[1], height)):
            if n >= tile:
                assert (rlen, pad) == (tile, 0)
            else:
                assert (rlen, pad) == (n, tile - n)
        sizes.add(t.size)
        ox, oy = t.core_offset
        assert (ox, oy) == (cx - rx, cy - ry)
    expected = np.zeros_like(cover)
    expected[y0 : y0 + h, x0 : x0 + w] = 1
    assert np.array_equal(cover, expected), "cores must cover the window exactly once"
    assert sizes == {(tile, tile)}, "every tile feeds the model the same shape (batchable)"
    # row-major order; tiles of one row share their core rows
    rows = [t.row for t in tiles]
    assert rows == sorted(rows)
    for _, grp in itertools.groupby(tiles, key=lambda t: t.row):
        grp = list(grp)
        assert len({(t.core[1], t.core[3]) for t in grp}) == 1
        assert [t.core[0] for t in grp] == sorted(t.core[0] for t in grp)
    return tiles


@pytest.mark.parametrize(
    "width,height,tile,halo",
    [
        (100, 100, 32, 4),
        (64, 64, 64, 8),
        (65, 63, 64, 8),
        (1000, 37, 128, 16),
        (257, 513, 256, 32),
        (10, 10, 64, 2),
        (1, 1, 8, 0),
        (300, 200, 50, 0),
        (129, 129, 64, 31),
        (5, 500, 16, 7),
    ],
)
def test_cover_and_halo(width, height, tile, halo):
    _check(width, height, tile, halo)


@pytest.mark.parametrize("window", [(10, 20, 30, 40), (0, 0, 1, 1), (99, 99, 1, 1), (50, 0, 50, 100)])
def test_subwindow_reads_real_context_outside_the_window(window):
    tiles = _check(100, 100, 32, 4, window)
    x0, y0, w, h = window
    # a window away from the raster border takes its halo from real pixels outside the window
    first = tiles[0]
    if x0 >= 4:
        assert first.read[0] <= x0 - 4
    if y0 >= 4:
        assert first.read[1] <= y0 - 4


def test_edges_shift_inward_instead_of_padding():
    spans = plan_axis(0, 100, 100, 32, 4)
    # first tile starts at the border, last tile ends exactly at it: no padding anywhere
    assert spans[0].read0 == 0 and spans[0].core0 == 0
    assert spans[-1].read0 + spans[-1].read_len == 100 and spans[-1].core1 == 100
    assert all(s.pad == 0 and s.read_len == 32 for s in spans)
    # the fewest tiles (4 x (32 - 2*4) + 2*4 >= 100 > 3 x 24 + 8), spread evenly, cores split mid-overlap
    assert [s.read0 for s in spans] == [0, 22, 45, 68]
    assert [(s.core0, s.core1) for s in spans] == [(0, 27), (27, 49), (49, 72), (72, 100)]


@pytest.mark.parametrize(
    "n,tile,halo,count",
    [(100, 32, 4, 4), (1024, 512, 3, 3), (1018, 512, 3, 2), (16384, 512, 3, 33), (512, 512, 3, 1), (40, 64, 2, 1)],
)
def test_fewest_tiles(n, tile, halo, count):
    assert len(plan_axis(0, n, n, tile, halo)) == tiles_needed(0, n, n, tile, halo) == count


@pytest.mark.parametrize(
    "w,h,tile,halo,multiple,expected",
    [
        (4096, 4096, 512, 3, 32, 480),
        (4096, 4096, 512, 3, 1, 461),
        (1024, 1024, 512, 3, 1, 346),
        (16384, 16384, 512, 3, 1, 503),
        (300, 40, 64, 2, 1, 64),
        (512, 512, 512, 8, 32, 512),
        (20, 20, 64, 2, 1, 20),
    ],
)
def test_fit_tile_keeps_tile_count_with_fewer_pixels(w, h, tile, halo, multiple, expected):
    t = fit_tile(w, h, tile, halo, multiple=multiple)
    assert t == expected and t % multiple == 0 or t == tile
    assert len(plan_tiles(w, h, t, halo)) == len(plan_tiles(w, h, tile, halo))
    if t > 2 * halo + 1 and t - multiple > 2 * halo:
        assert len(plan_tiles(w, h, t - multiple, halo)) > len(plan_tiles(w, h, tile, halo)) or t - multiple < 1


def test_small_raster_is_padded_only_along_the_short_axis():
    tiles = plan_tiles(20, 300, 64, 4)
    assert all(t.read[0] == 0 and t.read[2] == 20 and t.pad[0] == 44 for t in tiles)
    assert all(t.pad[1] == 0 and t.read[3] == 64 for t in tiles)


def test_property_random_layouts():
    rng = np.random.default_rng(3)
    for _ in range(60):
        tile = int(rng.integers(3, 80))
        halo = int(rng.integers(0, (tile - 1) // 2 + 1))
        w, h = int(rng.integers(1, 200)), int(rng.integers(1, 200))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        ww, hh = int(rng.integers(1, w - x0 + 1)), int(rng.integers(1, h - y0 + 1))
        _check(w, h, tile, halo, (x0, y0, ww, hh))
        t = fit_tile(w, h, tile, halo, (x0, y0, ww, hh))
        assert 2 * halo < t <= tile
        assert len(_check(w, h, t, halo, (x0, y0, ww, hh))) == len(plan_tiles(w, h, tile, halo, (x0, y0, ww, hh)))


@pytest.mark.parametrize(
    "tile,halo,msg",
    [
        (
            8,
            4,
            "tile size 8 is too small for the model's halo of 4 pixels: a tile must be larger than 2 x halo = 8; "
            "set TILE_SIZE to at least 9 (or 0 for the model's default)",
        ),
        (0, 0, "tile size must be a positive integer, got 0"),
        (16, -1, "halo must be an integer >= 0, got -1"),
    ],
)
def test_bad_tile_halo(tile, halo, msg):
    with pytest.raises(SatClassifyError) as e:
        plan_tiles(100, 100, tile, halo)
    assert str(e.value) == msg


def test_window_outside_raster():
    with pytest.raises(SatClassifyError, match=r"window \(90, 0, 20, 10\) is not inside the 100 x 100 raster"):
        plan_tiles(100, 100, 32, 2, (90, 0, 20, 10))


# ---- run planning (pure): tile and batch from the user's values, the card and the ONNX input ----------------
def test_choose_tiling_defaults_fit_the_card_tile_to_the_raster():
    c = choose_tiling(300, 300, (0, 0, 300, 300), card_tile=256, halo=16)
    assert c.batch == 4
    # 300 px need 2 tiles of 256 either way; the fitted tile is the smallest multiple of 32 that still needs 2
    assert c.tile % 32 == 0 and c.tile <= 256
    assert len(plan_tiles(300, 300, c.tile, 16)) == len(plan_tiles(300, 300, 256, 16))
    assert c.notes and "tile size 256 ->" in c.notes[0]


def test_choose_tiling_fixed_input_and_batch_win_and_conflicts_are_named():
    c = choose_tiling(1000, 1000, (0, 0, 1000, 1000), 256, 0, fixed_hw=(64, 64), batch_dim=8)
    assert (c.tile, c.batch, c.notes) == (64, 8, ())
    with pytest.raises(SatClassifyError, match="set TILE_SIZE to 64 or 0"):
        choose_tiling(1000, 1000, (0, 0, 1000, 1000), 256, 0, tile_size=128, fixed_hw=(64, 64))
    with pytest.raises(SatClassifyError, match="fixed batch of 8: set BATCH_SIZE to 8 or 0"):
        choose_tiling(1000, 1000, (0, 0, 1000, 1000), 256, 0, batch_size=2, batch_dim=8)
    with pytest.raises(SatClassifyError, match="only square tiles"):
        choose_tiling(1000, 1000, (0, 0, 1000, 1000), 256, 0, fixed_hw=(64, 32))
    with pytest.raises(SatClassifyError, match="batch size must be >= 1"):
        choose_tiling(10, 10, (0, 0, 10, 10), 8, 0, batch_size=-1)


def test_choose_tiling_keeps_the_cards_size_multiple():
    c = choose_tiling(200, 90, (0, 0, 200, 90), card_tile=128, halo=8, size_multiple=16)
    assert c.tile % 16 == 0 and c.tile <= 128
