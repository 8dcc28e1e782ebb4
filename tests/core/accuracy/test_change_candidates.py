"""core.accuracy.change.land_cover_change: map update candidates need a confidence raster, also when the caller
hands ready-made ChangeOptions (which skip ChangeOptions.read's check)."""

import numpy as np
import pytest

from satclassify_plugin.core.accuracy.change import ChangeOutputs, land_cover_change
from satclassify_plugin.core.accuracy.plan import ChangeOptions
from satclassify_plugin.core.contract.errors import SatClassifyError
from tests.rasters import make_class_raster

CLASSES = [{"value": 1, "name": "Water", "color": "#0000ff"}, {"value": 2, "name": "Forest", "color": "#00a000"}]


def test_candidates_without_confidence_refused_with_options_given(tmp_path):
    a = np.full((20, 20), 1, np.uint8)
    a[:, 10:] = 2
    b = a.copy()
    b[0:5, 0:5] = 2
    first = make_class_raster(tmp_path / "first.tif", a, CLASSES)
    second = make_class_raster(tmp_path / "second.tif", b, CLASSES)
    outs = ChangeOutputs(
        raster=str(tmp_path / "fromto.tif"),
        json=str(tmp_path / "change.json"),
        candidates=str(tmp_path / "candidates.gpkg"),
    )
    with pytest.raises(SatClassifyError, match="map update candidates need a CONFIDENCE raster"):
        land_cover_change(first, second, None, options=ChangeOptions.read(mmu_ha=0), outputs=outs)
    assert not [p.name for p in tmp_path.iterdir() if not p.name.startswith(("first.", "second."))]  # nothing written
