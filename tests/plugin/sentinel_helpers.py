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

    def pushInfo(self, info):  # noqa: N802
        self._keep(info)
        super().pushInfo(info)

    def pushWarning(self, warning):  # noqa: N802
        self._keep(warning)
        super().pushWarning(warning)

    def pushDebugInfo(self, info):  # noqa: N802
        self._keep(info)
        super().pushDebugInfo(info)

    def pushCommandInfo(self, info):  # noqa: N802
        self._keep(info)
        super().pushCommandInfo(info)

    def pushConsoleInfo(self, info):  # noqa: N802
        self._keep(info)
        super().pushConsoleInfo(info)

    def reportError(self, error, fatalError=False):  # noqa: N802,N803
        self._keep(error)
        super().reportError(error, fatalError)

    def setProgressText(self, text):  # noqa: N802
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
