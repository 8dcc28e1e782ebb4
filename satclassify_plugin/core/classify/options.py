"""The settings of one classify run, validated in one place (pure Python: no GDAL, no onnxruntime).

:class:`ClassifyOptions` is what ``core.classify.pipeline.classify`` takes besides the input, the model and the
outputs; the Processing tool ``satclassify:classify`` takes its parameter defaults and limits from it, and a
headless caller (a command-line tool, a benchmark) builds one from its own arguments. A bad value raises
:class:`~satclassify_plugin.core.contract.errors.SatClassifyError` naming the value and the fix when the options
are made, before any model loads or any file is opened.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional, Tuple

from ..contract.errors import SatClassifyError

#: DEVICE choices, in the order the Processing tools list them: Auto = CUDA when onnxruntime offers it, else the CPU
DEVICES = ("Auto", "CPU", "CUDA", "TensorRT")
#: the largest TILE_SIZE (pixels) and BATCH_SIZE (tiles) a user may ask for
MAX_TILE_SIZE = 16384
MAX_BATCH_SIZE = 4096


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_run_sizes(tile_size, batch_size) -> None:
    """The user's TILE_SIZE / BATCH_SIZE: 0 = the default, else a positive integer."""
    if batch_size is None or not _is_int(batch_size) or batch_size < 0:
        raise SatClassifyError(f"batch size must be >= 1 (or 0 for the default), got {batch_size}")
    if tile_size is None or not _is_int(tile_size) or tile_size < 0:
        raise SatClassifyError(f"tile size must be >= 1 (or 0 for the model's default), got {tile_size}")


def check_extent(extent) -> Optional[Tuple[float, float, float, float]]:
    """``extent`` as (xmin, ymin, xmax, ymax) floats in the input raster's CRS (None: the whole raster); four
    finite numbers enclosing an area, else an error naming the fix."""
    if extent is None:
        return None
    try:
        values = tuple(float(v) for v in extent)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise SatClassifyError(
            f"the extent {extent!r} is not four numbers (xmin, ymin, xmax, ymax) in the input "
            "raster's CRS: give them, or leave EXTENT empty to use the whole layer"
        )
    xmin, ymin, xmax, ymax = values
    if not (xmax > xmin and ymax > ymin):
        raise SatClassifyError(
            f"the extent ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) has no area (zero width or "
            "height): give an extent with xmin < xmax and ymin < ymax, or leave EXTENT empty to "
            "use the whole layer"
        )
    return values


@dataclass(frozen=True)
class ClassifyOptions:
    """How to run a model over a raster (everything but the input, the model and the outputs).

    ``bands``: raster bands in the model's order (numbers or names, comma or space separated; "" = find the card's
    bands by the raster's band names). ``extent``: (xmin, ymin, xmax, ymax) in the raster's CRS, None = the whole
    raster. ``device``: one of :data:`DEVICES` (the onnxruntime session's device: used where the model is loaded).
    ``tile_size`` / ``batch_size``: 0 = the model's tile and the default batch. ``resample``: run the model at the
    card's resolution (the input warped through a VRT). ``threads``: onnxruntime's intra-op threads (0 = its
    default). ``decode_threads``: decode the input GeoTIFF's blocks on all CPU cores (None = when the model runs
    on a GPU, whose CPU cores are otherwise idle).
    """

    bands: str = ""
    extent: Optional[Tuple[float, float, float, float]] = None
    device: str = "Auto"
    tile_size: int = 0
    batch_size: int = 0
    resample: bool = False
    threads: int = 0
    decode_threads: Optional[bool] = None

    def __post_init__(self):
        if self.bands is None or not isinstance(self.bands, str):
            raise SatClassifyError(
                f"bands {self.bands!r}: give the band numbers or names as text, e.g. '2,3,4,8' "
                "or 'B02 B03 B04 B08' (empty: match the model's bands by name)"
            )
        if self.device not in DEVICES:
            raise SatClassifyError(f"unknown DEVICE '{self.device}': choose one of {', '.join(DEVICES)}")
        check_run_sizes(self.tile_size, self.batch_size)
        if not _is_int(self.threads) or self.threads < 0:
            raise SatClassifyError(f"threads must be >= 1 (or 0 for onnxruntime's default), got {self.threads}")
        object.__setattr__(self, "extent", check_extent(self.extent))
        object.__setattr__(self, "resample", bool(self.resample))
