"""A local STAC fake serving a multi-date Sentinel-2 series (COGs per date) for the time-series tests."""

import numpy as np

from . import fake_servers as fs

ORIGIN = (600000.0, 5000000.0)  # upper-left corner of the test tile (UTM 32N)


def scl_of(valid10):
    """20 m SCL from a 10 m validity mask whose invalid pixels come in aligned 2 x 2 blocks: 4 (vegetation) where
    valid, 9 (cloud high probability) where not."""
    v = valid10[::2, ::2]
    return np.where(v > 0, 4, 9).astype(np.uint8)


def add_date(
    srv, item_id, when, dn, valid, cloud=10.0, tile="32TQM", platform="sentinel-2a", bands=("B02", "B03", "B04", "B08")
):
    """Serve one overpass: ``dn`` (C, H, W) uint16 DN (already harmonised: offset applied by the provider) and a
    10 m validity mask (invalid in 2 x 2 blocks) as the SCL; returns the STAC item."""
    arrays = {b: np.asarray(dn[i], np.uint16) for i, b in enumerate(bands)}
    arrays["SCL"] = scl_of(valid)
    assets = fs.make_cog_tile(srv, item_id, arrays, ORIGIN)
    item = fs.make_item(
        item_id, when, arrays, ORIGIN, assets, cloud=cloud, baseline="05.10", applied=True, platform=platform, tile=tile
    )
    srv.items.append(item)
    return item


def block_valid(rng, h, w, share):
    """A 10 m validity mask with invalid 2 x 2 blocks covering about ``share`` of the pixels."""
    v = (rng.random((h // 2, w // 2)) >= share).astype(np.uint8)
    return np.kron(v, np.ones((2, 2), np.uint8))


def series_server():
    srv = fs.FakeServer()
    srv.items = []
    fs.add_stac_api(srv, srv.items)
    return srv
