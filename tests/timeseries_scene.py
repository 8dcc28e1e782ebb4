"""A synthetic Sentinel-2 time series where classes differ only in their seasonal profile (pure numpy).

Three classes (values 1, 2, 3) over ``len(dates)`` dates and the bands B02 B03 B04 B08. At each date every class
is either "bare" or "green" (two reflectance signatures); the class x date table :data:`PROFILES` is chosen so
that **on every single date two classes have the same signature** (the same distribution: same mean, same
noise), while the three profiles over the season all differ (Hamming distance 4 of 6). So

* no classifier that sees one date can tell the two look-alike classes of that date apart: its overall accuracy
  is at most :func:`single_date_bound` (p(odd class) + max p(look-alike) = 2/3 for equal class shares);
* a temporal model separates them, even with clouds masking a few dates of a pixel.

The layout is a Voronoi mosaic of fields (each field one class), so shapes carry no class information either.
Clouds: random blobs per date (``cloud`` = mean share), flagged invalid (VALID 0) and set to DN 0 in every band.
Reusable by a benchmark: :func:`profile_scene` returns plain arrays; :func:`stack_bands` the multi-date stack's
band order (``<band>@<date>``, date-major, then ``VALID@<date>``).
"""

import datetime as _dt

import numpy as np

BANDS = ("B02", "B03", "B04", "B08")
DATES = ("2023-03-15", "2023-04-20", "2023-05-25", "2023-06-30", "2023-08-04", "2023-09-08")
CLASSES = [
    {"value": 1, "code": "211", "name": "Spring crop", "color": "#ffffa8"},
    {"value": 2, "code": "231", "name": "Grassland", "color": "#e6e64d"},
    {"value": 3, "code": "311", "name": "Deciduous forest", "color": "#80ff00"},
]
#: class x date: 1 = green, 0 = bare. Each column has exactly two equal entries (two look-alike classes)
PROFILES = np.array([[1, 1, 0, 1, 0, 0], [1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 1]], dtype=np.int64)
#: DN of the two signatures, per band (B02 B03 B04 B08): bare soil and green vegetation
SIGNATURES = np.array([[1200, 1400, 1600, 2200], [500, 800, 400, 4200]], dtype=np.float64)


def profile_scene(size=64, dates=DATES, seed=0, cloud=0.1, noise=350.0, field=10):
    """A dict with ``labels`` uint8 (H, W) 1..3, ``dn`` uint16 (T, C, H, W) (0 where invalid), ``valid`` uint8
    (T, H, W), ``dates``, ``bands``, ``classes``. ``noise``: DN standard deviation per pixel, band and date;
    ``field``: mean field edge in pixels; ``cloud``: mean cloud share per date."""
    dates = list(dates)
    t = len(dates)
    if t > PROFILES.shape[1]:
        raise ValueError(f"at most {PROFILES.shape[1]} dates")
    rng = np.random.default_rng(seed)
    h = w = int(size)
    n_fields = max(3, (h * w) // (field * field))
    pts = rng.uniform(0, h, (n_fields, 2))
    cls = np.resize(rng.permutation(np.arange(n_fields) % 3), n_fields) + 1  # balanced classes
    yy, xx = np.mgrid[0:h, 0:w]
    d2 = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
    labels = cls[d2.argmin(-1)].astype(np.uint8)
    prof = PROFILES[:, :t]
    mean = SIGNATURES[prof[labels.astype(int) - 1]]  # (H, W, T, C)
    dn = mean.transpose(2, 3, 0, 1) + rng.normal(0.0, noise, (t, len(BANDS), h, w))
    dn = np.clip(np.rint(dn), 1, 10000).astype(np.uint16)
    valid = np.ones((t, h, w), np.uint8)
    for k in range(t):
        if cloud > 0:
            valid[k] = ~_blobs(rng, h, w, cloud)
    dn[np.broadcast_to(valid[:, None] == 0, dn.shape)] = 0
    return {
        "labels": labels,
        "dn": dn,
        "valid": valid,
        "dates": dates,
        "bands": list(BANDS),
        "classes": [dict(c) for c in CLASSES],
    }


def _blobs(rng, h, w, share):
    """A boolean cloud mask of about ``share`` of the pixels, made of a few discs."""
    m = np.zeros((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(50):
        if m.mean() >= share:
            break
        r = rng.uniform(2, max(3, h / 6))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return m


def single_date_bound(labels, t, dates_profiles=PROFILES):
    """The best overall accuracy any classifier can reach from date ``t`` alone (the Bayes bound): classes with
    the same signature at ``t`` have the same distribution there, so at most the most frequent of them is
    right. Computed from the label frequencies of ``labels`` (values 1..3)."""
    lab = np.asarray(labels).ravel()
    p = np.array([(lab == v).mean() for v in (1, 2, 3)])
    col = dates_profiles[:, t]
    return float(sum(p[col == s].max() for s in np.unique(col)))


def stack_bands(bands=BANDS, dates=DATES):
    out = []
    for d in dates:
        out += [f"{b}@{d}" for b in bands] + [f"VALID@{d}"]
    return out


def stack_array(scene):
    """The scene as a multi-date stack array (T * (C + 1), H, W) uint16 in :func:`stack_bands` order."""
    t, c, h, w = scene["dn"].shape
    out = np.zeros((t, c + 1, h, w), np.uint16)
    out[:, :c] = scene["dn"]
    out[:, c] = scene["valid"]
    return out.reshape(t * (c + 1), h, w)


def day_of_year(date):
    return _dt.date.fromisoformat(date).timetuple().tm_yday
