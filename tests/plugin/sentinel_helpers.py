"""Helpers for the Sentinel-2 tool tests: a feedback that records every message, auth configurations in the
test profile's authentication database, AOI strings, and a scan for a secret in files."""

import os

from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsProcessingFeedback

from . import fake_servers as fs

MASTER_PASSWORD = "satclassify-test-master"
A0 = (600000.0, 5000000.0)  # tile A upper-left (UTM 32N), 10.24 km wide
B0 = (610240.0, 5000000.0)  # tile B, east of A


class LogFeedback(QgsProcessingFeedback):
    """Keeps every message Processing or the tool sends."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def _keep(self, *args):
        self.messages.append(" ".join(str(a) for a in args))

    def pushInfo(self, info):
        self._keep(info)
        super().pushInfo(info)

    def pushWarning(self, warning):
        self._keep(warning)
        super().pushWarning(warning)

    def pushDebugInfo(self, info):
        self._keep(info)
        super().pushDebugInfo(info)

    def pushCommandInfo(self, info):
        self._keep(info)
        super().pushCommandInfo(info)

    def pushConsoleInfo(self, info):
        self._keep(info)
        super().pushConsoleInfo(info)

    def reportError(self, error, fatalError=False):  # noqa: N803
        self._keep(error)
        super().reportError(error, fatalError)

    def setProgressText(self, text):
        self._keep(text)
        super().setProgressText(text)

    @property
    def text(self):
        return "\n".join(self.messages)


def basic_authcfg(user, password, name="satclassify test"):
    """A Basic authentication configuration in the test profile's auth database; returns its id."""
    am = QgsApplication.authManager()
    if not am.masterPasswordIsSet():
        assert am.setMasterPassword(MASTER_PASSWORD, True), "cannot set the test master password"
    cfg = QgsAuthMethodConfig("Basic")
    cfg.setName(name)
    cfg.setConfig("username", user)
    cfg.setConfig("password", password)
    res = am.storeAuthenticationConfig(cfg)
    ok = res[0] if isinstance(res, tuple) else res
    assert ok and cfg.id(), "cannot store the test authentication configuration"
    return cfg.id()


def utm_extent(x0, y0, x1, y1, epsg=32632):
    """A Processing extent string from UTM corners."""
    return f"{min(x0, x1)},{max(x0, x1)},{min(y0, y1)},{max(y0, y1)} [EPSG:{epsg}]"


def lonlat_extent(x0, y0, x1, y1):
    """An EPSG:4326 extent string enclosing UTM 32N corners."""
    pts = [fs.to_lonlat(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return f"{min(xs)!r},{max(xs)!r},{min(ys)!r},{max(ys)!r} [EPSG:4326]"


def files_containing(needle, *folders):
    """Files under ``folders`` whose bytes contain ``needle``."""
    hits = []
    data = needle.encode()
    for folder in folders:
        for dirpath, _, files in os.walk(str(folder)):
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    with open(p, "rb") as fh:
                        if data in fh.read():
                            hits.append(p)
                except OSError:
                    pass
    return hits


def window(arr, bounds, origin, pixel=10.0):
    c0 = int(round((bounds[0] - origin[0]) / pixel))
    r0 = int(round((origin[1] - bounds[3]) / pixel))
    c1 = int(round((bounds[2] - origin[0]) / pixel))
    r1 = int(round((origin[1] - bounds[1]) / pixel))
    return arr[r0:r1, c0:c1]


def bounds_of(ds):
    gt = ds.GetGeoTransform()
    return gt[0], gt[3] + gt[5] * ds.RasterYSize, gt[0] + gt[1] * ds.RasterXSize, gt[3]


def band_names(ds):
    return [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]


ID_A = "S2A_32TQM_20230601_0_L2A"  # baseline 05.10, offset not applied by the provider
ID_B = "S2A_32TQN_20230601_0_L2A"  # baseline 03.01 (no offset), tile east of A, same overpass
ID_C = "S2B_32TQM_20230620_0_L2A"  # baseline 05.10, offset already applied (earthsearch:boa_offset_applied)


def two_tile_stac(seed_a, seed_b):
    """A STAC fake with tiles A and B (1024 px COGs) and three items: A and B on 2023-06-01, A again on
    2023-06-20 (cloudy, offset already applied). ``srv.arrays`` holds the tiles' arrays; close() it."""
    srv = fs.FakeServer()
    arr_a, arr_b = fs.tile_arrays(seed_a, 1024), fs.tile_arrays(seed_b, 1024)
    assets_a = fs.make_cog_tile(srv, "A", arr_a, A0)
    assets_b = fs.make_cog_tile(srv, "B", arr_b, B0, key_style="esa")
    srv.items = [
        fs.make_item(
            ID_A, "2023-06-01T10:20:00Z", arr_a, A0, assets_a, cloud=10.0, baseline="05.10", applied=False, nodata=1.5
        ),
        fs.make_item(
            ID_B,
            "2023-06-01T10:20:04Z",
            arr_b,
            B0,
            assets_b,
            cloud=12.0,
            baseline="03.01",
            applied=None,
            tile="32TQN",
            proj_code=True,
        ),
        fs.make_item(
            ID_C,
            "2023-06-20T10:20:00Z",
            arr_a,
            A0,
            assets_a,
            cloud=60.0,
            baseline="05.10",
            applied=True,
            platform="sentinel-2b",
        ),
    ]
    fs.add_stac_api(srv, srv.items)
    srv.arrays = {"A": arr_a, "B": arr_b}
    return srv
