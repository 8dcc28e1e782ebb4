"""Parsers of the Sentinel-2 sources: valid items, and any malformed JSON gives a SatClassifyError only."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.s2.sources.stac import scene_from_item

ITEM = {
    "type": "Feature",
    "id": "S2B_32TQM_20230601_0_L2A",
    "collection": "sentinel-2-c1-l2a",
    "geometry": {"type": "Polygon", "coordinates": [[[10, 45], [11, 45], [11, 46], [10, 46], [10, 45]]]},
    "properties": {
        "datetime": "2023-06-01T10:20:04.512000Z",
        "eo:cloud_cover": 12.5,
        "platform": "sentinel-2b",
        "s2:processing_baseline": "05.09",
        "s2:nodata_pixel_percentage": 3.25,
        "grid:code": "MGRS-32TQM",
        "proj:code": "EPSG:32632",
        "earthsearch:boa_offset_applied": False,
    },
    "assets": {
        "red": {"href": "https://h/B04.tif", "raster:bands": [{"scale": 0.0001, "offset": -0.1}]},
        "blue": {"href": "https://h/B02.tif"},
        "nir08": {"href": "https://h/B8A.tif"},
        "scl": {"href": "https://h/SCL.tif", "raster:bands": [{"scale": 1, "offset": 0}]},
        "thumbnail": {"href": "https://h/t.jpg"},
    },
}


def test_earth_search_item():
    s = scene_from_item(ITEM)
    assert (s.id, s.datetime, s.platform, s.tile_id, s.cloud, s.baseline, s.nodata, s.epsg) == (
        "S2B_32TQM_20230601_0_L2A",
        "2023-06-01T10:20:04Z",
        "sentinel-2b",
        "32TQM",
        12.5,
        "05.09",
        3.25,
        32632,
    )
    assert s.assets == {
        "B04": "https://h/B04.tif",
        "B02": "https://h/B02.tif",
        "B8A": "https://h/B8A.tif",
        "SCL": "https://h/SCL.tif",
    }
    assert s.offset_applied is False and s.offsets == {"B04": -1000}
    assert s.offset_for("B04") == -1000 and s.offset_for("B02") == -1000 and s.offset_for("SCL") == 0
    assert s.footprint["type"] == "Polygon"


def test_other_catalogue_keys_and_properties():
    item = json.loads(json.dumps(ITEM))
    item["assets"] = {"B04_10m": {"href": "a.tif"}, "SCL_20m": {"href": "s.tif"}}
    p = item["properties"]
    for k in ("s2:processing_baseline", "grid:code", "proj:code", "earthsearch:boa_offset_applied"):
        del p[k]
    p.update({"processing:version": "03.01", "s2:mgrs_tile": "33UXP", "proj:epsg": 32633})
    s = scene_from_item(item)
    assert s.assets == {"B04": "a.tif", "SCL": "s.tif"} and s.tile_id == "33UXP" and s.epsg == 32633
    assert s.baseline == "03.01" and s.offset_for("B04") == 0


def test_offset_already_applied_flag():
    item = json.loads(json.dumps(ITEM))
    item["properties"]["earthsearch:boa_offset_applied"] = True
    assert scene_from_item(item).offset_for("B04") == 0


@pytest.mark.parametrize(
    "mutate,msg",
    [
        (lambda d: d.pop("id"), "has no 'id'"),
        (lambda d: d.pop("properties"), "has no 'properties'"),
        (lambda d: d["properties"].pop("datetime"), "no valid 'datetime'"),
        (lambda d: d["properties"].update(datetime="yesterday"), "no valid 'datetime'"),
        (lambda d: d.update(assets=[1, 2]), "has no 'assets'"),
    ],
)
def test_malformed_item_messages(mutate, msg):
    item = json.loads(json.dumps(ITEM))
    mutate(item)
    with pytest.raises(SatClassifyError, match=msg):
        scene_from_item(item)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_random_json_never_crashes_the_item_parser(value):
    try:
        scene_from_item(value)
    except SatClassifyError:
        pass


KEYS = [
    "id",
    "properties",
    "assets",
    "geometry",
    "datetime",
    "eo:cloud_cover",
    "s2:processing_baseline",
    "proj:epsg",
    "proj:code",
    "grid:code",
    "platform",
    "href",
    "raster:bands",
    "red",
    "scl",
    "offset",
    "scale",
    "earthsearch:boa_offset_applied",
    "s2:nodata_pixel_percentage",
    "coordinates",
    "type",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8), st.dictionaries(st.sampled_from(KEYS), JSON, max_size=8)
)
def test_item_like_json_parses_or_fails_cleanly(top, props):
    item = dict(ITEM, **top)
    if isinstance(item.get("properties"), dict):
        item["properties"] = dict(item["properties"], **props)
    try:
        s = scene_from_item(item)
    except SatClassifyError:
        return
    assert isinstance(s.id, str) and s.id
    assert s.cloud is None or isinstance(s.cloud, float)
    assert all(isinstance(v, str) for v in s.assets.values())
