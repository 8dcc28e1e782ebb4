"""Input assembly of a multi-date model from a multi-date stack (no GDAL: band names in, band numbers out).

A multi-date model's card has a ``timeseries`` entry (core.contract.timeseries.card_entry): the T dates it was
trained on (and their days of year), the C bands of each date, and whether the graph takes ``doy``. Its
``image`` input is (N, T * (C + 1), H, W): per date the C standardised bands then the date's validity (0/1).

:func:`temporal_inputs` maps that onto a stack whose band descriptions follow the multi-date convention:

* bands by **name and date order**: for each chosen date, the card's bands ``<band>@<date>`` then
  ``VALID@<date>`` (any band order in the stack works);
* dates: a stack with exactly T dates gives all of them; with more, the T dates (in order) whose days of year
  are closest to the training dates (logged); with fewer, a clear error naming both numbers;
* scaling: the card's input_scale / mean / std on the bands, the validity passed as 0/1;
* ``doy``: the chosen dates' days of year, fed with every batch (``Model.feeds``).

No pixel is masked by a band's nodata value (a cloudy date is 0 there, which the validity tells the model);
a pixel invalid on every date (no observation) gets the outputs' nodata (``valid_channels``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..contract.errors import SatClassifyError
from ..contract.modelcard import ModelCard
from ..contract.timeseries import DOY_INPUT, StackLayoutError, choose_dates, parse_stack
from .inference import scale_coefficients


@dataclass
class TemporalInputs:
    band_numbers: List[int]  # 1-based raster bands, in the model's input channel order
    scale: Tuple[np.ndarray, np.ndarray]  # per input channel: model input = raw * a + b
    nodata: List[Optional[float]]  # per input channel (None: no pixel masked by a value)
    dates: List[str]  # the stack dates used, in order
    feeds: Dict[str, np.ndarray] = field(default_factory=dict)  # extra graph inputs (``doy``)
    valid_channels: List[int] = field(default_factory=list)  # 0-based input channels of each date's VALID


def temporal_inputs(
    card: ModelCard, band_names: Sequence[str], log: Callable[[str], None] = lambda m: None
) -> TemporalInputs:
    ts = card.timeseries
    if ts is None:
        raise SatClassifyError(f"the model ({card.architecture}) is a single-date model: it has no multi-date inputs")
    need, want = int(ts["num_dates"]), ", ".join(ts["dates"])
    try:
        lay = parse_stack(band_names)
    except StackLayoutError as e:
        raise SatClassifyError(f"the input raster is not a usable multi-date stack for this multi-date model: {e}")
    if lay is None:
        shown = ", ".join(n or "(no name)" for n in list(band_names)[:6]) + (", ..." if len(band_names) > 6 else "")
        raise SatClassifyError(
            f"the model is a multi-date model ({card.architecture}: {need} dates of {', '.join(card.bands)}, trained "
            f"on {want}) but the input raster is a single-date stack (bands {shown}): give a multi-date stack "
            "(satclassify:fetchsentinel2 with INTERVAL; band names <band>@<YYYY-MM-DD> and VALID@<date>)"
        )
    if lay.num_dates < need:
        raise SatClassifyError(
            f"the stack has {lay.num_dates} date(s) ({', '.join(lay.dates)}) but the model needs {need} (trained on "
            f"{want}): fetch a longer period or a shorter INTERVAL so that the stack has at least {need} dates"
        )
    missing = [b for b in card.bands if b not in lay.bands]
    if missing:
        raise SatClassifyError(
            f"the model needs the bands {', '.join(card.bands)} on every date but the stack has "
            f"{', '.join(lay.bands)} (no {', '.join(missing)}): fetch the stack with those BANDS"
        )
    if lay.num_dates > need:
        picks = choose_dates(lay.doy, ts["doy"])
        log(
            f"the stack has {lay.num_dates} dates, the model takes {need}: using "
            f"{', '.join(lay.dates[i] for i in picks)} (closest days of year to the training dates {want})"
        )
    else:
        picks = list(range(need))
    dates = [lay.dates[i] for i in picks]
    numbers = [i + 1 for d in dates for i in lay.date_indices(d, card.bands)]
    a, b = scale_coefficients(card)
    a_in = np.concatenate([np.append(a, 1.0) for _ in dates]).astype(np.float32)
    b_in = np.concatenate([np.append(b, 0.0) for _ in dates]).astype(np.float32)
    doy = np.array([lay.doy[i] for i in picks], np.float32)
    log(
        f"multi-date model: {need} dates {', '.join(dates)} (days of year {', '.join(str(int(v)) for v in doy)}), "
        f"bands {', '.join(card.bands)} + validity per date -> {len(numbers)} input channels"
    )
    feeds = {DOY_INPUT: doy} if ts.get("doy_input") else {}
    per_date = len(card.bands) + 1
    valid = [k * per_date + per_date - 1 for k in range(len(dates))]
    return TemporalInputs(numbers, (a_in, b_in), [None] * len(numbers), dates, feeds, valid)


__all__ = ["TemporalInputs", "temporal_inputs"]
