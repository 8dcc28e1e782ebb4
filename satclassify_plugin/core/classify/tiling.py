"""Tile planner for tiled inference (pure Python, no GDAL).

:func:`plan_tiles` splits an output window into *cores* that partition it exactly (no gaps, no
overlaps) and gives each core a *read window* of ``tile`` x ``tile`` pixels around it:

* every core pixel has at least ``halo`` pixels of real context on each side inside its read window,
  except on the raster's own border, where a whole-image run has no context either;
* near a raster edge the read window is shifted inward (it reads real neighbouring pixels) instead of
  being padded, so every read window lies inside the raster;
* only where the raster itself is smaller than the tile along an axis does the window cover the whole
  axis and get padded (by reflection, done by the caller) up to the tile size.

Tiles need not be square: ``tile`` is one edge or (width, height), and :func:`choose_tiling` fits each axis on its
own (:func:`fit_axis`), so a 100000 x 1 px raster runs on tiles a few rows high instead of 256 x 256 tiles that
are padded 255 rows out of 256.

Stitching: each output pixel is taken from the one tile whose core holds it, i.e. overlapping
predictions are blended with weight 1 inside a core and 0 in the halo ring. A model whose receptive
field fits within the halo therefore gives exactly the whole-image result everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..contract.errors import SatClassifyError
from .options import check_run_sizes

Window = Tuple[int, int, int, int]  # xoff, yoff, xsize, ysize


@dataclass(frozen=True)
class Span:
    """One tile along one axis: core [core0, core1) read from [read0, read0 + read_len), then padded."""

    core0: int
    core1: int
    read0: int
    read_len: int
    pad: int  # reflection padding after the read data, so read_len + pad == tile

    @property
    def size(self) -> int:
        return self.read_len + self.pad


@dataclass(frozen=True)
class Tile:
    index: int
    row: int  # tile row (tiles come in row-major order; a row shares core rows)
    col: int
    core: Window  # output pixels this tile writes (raster pixel coordinates)
    read: Window  # raster pixels this tile reads
    pad: Tuple[int, int]  # (right, bottom) reflection padding after the read data

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) of the array fed to the model."""
        return self.read[2] + self.pad[0], self.read[3] + self.pad[1]

    @property
    def core_offset(self) -> Tuple[int, int]:
        """(x, y) of the core inside the model's input array."""
        return self.core[0] - self.read[0], self.core[1] - self.read[1]


def check_tile_halo(tile: int, halo: int) -> None:
    if not isinstance(tile, int) or tile < 1:
        raise SatClassifyError(f"tile size must be a positive integer, got {tile!r}")
    if not isinstance(halo, int) or halo < 0:
        raise SatClassifyError(f"halo must be an integer >= 0, got {halo!r}")
    if tile <= 2 * halo:
        raise SatClassifyError(
            f"tile size {tile} is too small for the model's halo of {halo} pixels: a tile must be larger than "
            f"2 x halo = {2 * halo}; set TILE_SIZE to at least {2 * halo + 1} (or 0 for the model's default)"
        )


def _read_range(start: int, stop: int, n: int, halo: int) -> Tuple[int, int]:
    """Raster pixels [A, B) needed to give output pixels [start, stop) their halo (clipped to the raster)."""
    return max(start - halo, 0), min(stop + halo, n)


def tiles_needed(start: int, stop: int, n: int, tile: int, halo: int) -> int:
    """How many tiles of ``tile`` pixels cover output [start, stop) of an axis of ``n`` pixels with full halo."""
    a, b = _read_range(start, stop, n, halo)
    if n <= tile or b - a <= tile:
        return 1
    return 1 + -(-(b - a - tile) // (tile - 2 * halo))


def plan_axis(start: int, stop: int, n: int, tile: int, halo: int) -> List[Span]:
    """Spans covering output pixels [start, stop) of an axis of length ``n``.

    Uses the fewest tiles possible, spread evenly over the pixels they must read; the boundary between two
    neighbouring cores lies midway in their overlap, so each core keeps at least ``halo`` pixels of context.
    """
    # an axis the tile covers whole needs no halo inside the tile: the raster's border is its context
    check_tile_halo(tile, halo if n > tile else 0)
    if not 0 <= start < stop <= n:
        raise SatClassifyError(f"invalid window [{start}, {stop}) for an axis of {n} pixels")
    if n <= tile:
        return [Span(start, stop, 0, n, tile - n)]
    a, b = _read_range(start, stop, n, halo)
    if b - a <= tile:
        r0 = min(a, n - tile)
        return [Span(start, stop, r0, tile, 0)]
    m = tiles_needed(start, stop, n, tile, halo)
    span = b - tile - a
    reads = [a + (i * span) // (m - 1) for i in range(m)]
    bounds = [start] + [(reads[i + 1] + reads[i] + tile) // 2 for i in range(m - 1)] + [stop]
    return [Span(bounds[i], bounds[i + 1], reads[i], tile, 0) for i in range(m) if bounds[i + 1] > bounds[i]]


def fit_tile(width: int, height: int, tile: int, halo: int, window: Optional[Window] = None, multiple: int = 1) -> int:
    """The smallest square tile (a multiple of ``multiple``, at most ``tile``) that needs no more tiles than
    ``tile`` does: the same number of model runs over fewer pixels (less halo overhead)."""
    check_tile_halo(tile, halo)
    x0, y0, w, h = window if window is not None else (0, 0, width, height)
    best = tile
    need = [tiles_needed(x0, x0 + w, width, tile, halo), tiles_needed(y0, y0 + h, height, tile, halo)]
    cand = []
    for (start, stop, n), m in zip(((x0, x0 + w, width), (y0, y0 + h, height)), need):
        a, b = _read_range(start, stop, n, halo)
        length = min(b - a, n)
        # m tiles of size t cover `length` when m * (t - 2 halo) + 2 halo >= length
        t = -(-(length - 2 * halo) // m) + 2 * halo if m > 1 else length
        cand.append(t)
    t = max(cand + [2 * halo + 1])
    if multiple > 1:
        t = -(-t // multiple) * multiple
    t = min(t, best)
    while (
        t > 2 * halo and [tiles_needed(x0, x0 + w, width, t, halo), tiles_needed(y0, y0 + h, height, t, halo)] != need
    ):
        t += 1  # rounding guard; never exceeds ``tile``
        if t >= tile:
            return tile
    return t if t > 2 * halo else tile


def fit_axis(start: int, stop: int, n: int, tile: int, halo: int, multiple: int = 1) -> int:
    """The smallest tile edge along one axis (a multiple of ``multiple``, at most ``tile``) that needs no more
    tiles than ``tile`` does for output [start, stop) of an axis of ``n`` pixels. An axis that one tile reads
    whole gets the axis length (rounded up to the multiple): a 1-pixel-high raster runs on tiles of ``multiple``
    rows, not ``tile``."""
    check_tile_halo(tile, halo if n > tile else 0)
    multiple = max(1, int(multiple))
    need = tiles_needed(start, stop, n, tile, halo)
    a, b = _read_range(start, stop, n, halo)
    length = min(b - a, n)
    # m tiles of size t cover `length` when m * (t - 2 halo) + 2 halo >= length
    t = -(-(length - 2 * halo) // need) + 2 * halo if need > 1 else length
    t = -(-max(t, 1) // multiple) * multiple
    t = min(t, tile)
    while t < tile and ((n > t and t <= 2 * halo) or tiles_needed(start, stop, n, t, halo) != need):
        t = min(tile, t + multiple)  # rounding guard; never exceeds ``tile``
    return t


def plan_tiles(width: int, height: int, tile, halo: int, window: Optional[Window] = None) -> List[Tile]:
    """Tiles (row-major) whose cores partition ``window`` (default: the whole ``width`` x ``height`` raster).
    ``tile``: one edge, or (width, height) of the tiles."""
    tw, th = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    for t, n in ((tw, width), (th, height)):
        check_tile_halo(t, halo if n > t else 0)
    if width < 1 or height < 1:
        raise SatClassifyError(f"the raster is empty ({width} x {height} pixels)")
    x0, y0, w, h = window if window is not None else (0, 0, width, height)
    if w < 1 or h < 1 or x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise SatClassifyError(f"window {window} is not inside the {width} x {height} raster")
    xs = plan_axis(x0, x0 + w, width, tw, halo)
    ys = plan_axis(y0, y0 + h, height, th, halo)
    tiles: List[Tile] = []
    for r, sy in enumerate(ys):
        for c, sx in enumerate(xs):
            tiles.append(
                Tile(
                    len(tiles),
                    r,
                    c,
                    (sx.core0, sy.core0, sx.core1 - sx.core0, sy.core1 - sy.core0),
                    (sx.read0, sy.read0, sx.read_len, sy.read_len),
                    (sx.pad, sy.pad),
                )
            )
    return tiles


@dataclass(frozen=True)
class TileChoice:
    """The tile and batch a classify run uses, and why (``notes``: lines for the log). ``tile`` is the longer
    edge; ``size`` is (width, height) of the tiles (None: square)."""

    tile: int
    batch: int
    notes: Tuple[str, ...] = ()
    size: Optional[Tuple[int, int]] = None

    @property
    def shape(self) -> Tuple[int, int]:
        """(width, height) of every tile."""
        return self.size or (self.tile, self.tile)


def choose_tiling(
    width: int,
    height: int,
    window: Window,
    card_tile: int,
    halo: int,
    tile_size: int = 0,
    batch_size: int = 0,
    default_batch: int = 4,
    fixed_hw: Optional[Tuple[int, int]] = None,
    batch_dim: Optional[int] = None,
    size_multiple: Optional[int] = None,
) -> TileChoice:
    """Pure planning of a run's tile and batch from the user's TILE_SIZE / BATCH_SIZE (0 = default), the model
    card and the ONNX input's fixed dimensions, for a ``width`` x ``height`` raster and output ``window``."""
    check_run_sizes(tile_size, batch_size)
    notes = []
    tile = tile_size or card_tile
    if fixed_hw:
        fh, fw = fixed_hw
        if fh != fw:
            raise SatClassifyError(f"the model takes fixed {fh} x {fw} inputs; only square tiles are supported")
        if tile_size and tile_size != fh:
            raise SatClassifyError(f"the model takes fixed {fh} x {fw} tiles: set TILE_SIZE to {fh} or 0")
        tile = fh
    check_tile_halo(tile, halo)
    batch = batch_size or default_batch
    if batch_dim:
        if batch_size and batch_size != batch_dim:
            raise SatClassifyError(f"the model takes a fixed batch of {batch_dim}: set BATCH_SIZE to {batch_dim} or 0")
        batch = batch_dim
    if not fixed_hw:
        # same number of tiles, fewer pixels: keep the tile a multiple of the card's size_multiple, else of
        # the card tile's power-of-two factor (up to 32) so encoder-decoder models see sizes they can downsample.
        # Each axis on its own: a long thin raster gets long thin tiles, not square ones padded far past it
        multiple = size_multiple or math.gcd(tile, 32)
        x0, y0, w, h = window
        tw = fit_axis(x0, x0 + w, width, tile, halo, multiple)
        th = fit_axis(y0, y0 + h, height, tile, halo, multiple)
        # a thin raster (one tile covers its short axis): the long edge may use the pixels the short one leaves,
        # tile x tile pixels per tile at most
        nx = tiles_needed(x0, x0 + w, width, tile, halo)
        ny = tiles_needed(y0, y0 + h, height, tile, halo)
        if ny == 1 < nx and th < tile:
            tw = fit_axis(x0, x0 + w, width, max(tile, (tile * tile // th) // multiple * multiple), halo, multiple)
        elif nx == 1 < ny and tw < tile:
            th = fit_axis(y0, y0 + h, height, max(tile, (tile * tile // tw) // multiple * multiple), halo, multiple)
        if (tw, th) != (tile, tile):
            shown = f"{tw}" if tw == th else f"{tw} x {th}"
            notes.append(
                f"tile size {tile} -> {shown}: tiles fitted to the raster's shape (no more tiles than "
                f"{tile} x {tile}, less overlap and padding)"
            )
        return TileChoice(max(tw, th), batch, tuple(notes), (tw, th))
    return TileChoice(tile, batch, tuple(notes))
