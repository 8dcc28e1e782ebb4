"""Accuracy assessment, pure numpy parts (no osgeo, no qgis): parameter parsing, reclassification
tables, the per-map value transform, k x k block mode and the HTML report builder.

The streamed GDAL reading lives in :mod:`.gdal_accuracy`; the metrics in :mod:`.metrics`
(one implementation shared with the training package).

A map's pixel values go through, in this order:

1. *ignore*: the raw value is in the IGNORE list or is the raster's nodata -> excluded;
2. *reclassify* (optional): ``from`` -> ``to`` from the table rows for this map; a value with no row
   (when the table has rows for this map) is excluded and counted as "unmapped";
3. *CLC level* (optional): CLC level-3 values (grid codes 1..44, or codes 111..523) -> level-1 or -2
   class values of :mod:`.clc`; a value that is no CLC class is excluded and counted as "unmapped";
4. a transformed value in the IGNORE list is excluded (so ``to = 0`` drops a class).

Excluded pixels carry -1 in the transformed arrays.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..contract import clc
from ..contract.errors import SatClassifyError

MAPS = ("classified", "reference")
MAX_VALUE = 65535


# ----------------------------------------------------------------------------------------- parameters
def parse_ignore(text) -> List[int]:
    """ "0" / "0, 255" / "" -> sorted list of integers (the IGNORE parameter)."""
    if text is None:
        return []
    if isinstance(text, (int, np.integer)):
        return [int(text)]
    out = set()
    for part in str(text).replace(";", ",").split(","):
        p = part.strip()
        if not p:
            continue
        try:
            f = float(p)
        except ValueError:
            raise SatClassifyError(
                f"IGNORE must be a comma-separated list of integer class values (e.g. '0, 255'), '{p}' is not a number"
            )
        if f != int(f):
            raise SatClassifyError(f"IGNORE values must be integers, '{p}' is not")
        out.add(int(f))
    return sorted(out)


def check_scale(scale) -> int:
    try:
        f = float(scale)
    except (TypeError, ValueError):
        raise SatClassifyError(f"SCALE must be an integer >= 1 (1 = compare pixel by pixel), got {scale!r}")
    if f != int(f) or f < 1:
        raise SatClassifyError(f"SCALE must be an integer >= 1 (1 = compare pixel by pixel), got {scale!r}")
    if f > MAX_SCALE:
        raise SatClassifyError(
            f"SCALE {int(f)} is too large: the mode of {int(f)} x {int(f)} pixel blocks needs more "
            f"memory than a comparison is worth; use at most {MAX_SCALE} (or resample both maps "
            "to a coarser grid first)"
        )
    return int(f)


#: largest SCALE: a k x k block of int64 votes must stay well inside memory (1024^2 px = 8 MB a block row)
MAX_SCALE = 1024


def check_level(level) -> Optional[int]:
    if level in (None, "", 0, 3, "0", "3"):
        return None
    try:
        lv = int(level)
    except (TypeError, ValueError):
        lv = -1
    if lv not in (1, 2):
        raise SatClassifyError(f"CLC LEVEL must be 1 or 2 (or none), got {level!r}")
    return lv


# ----------------------------------------------------------------------------------------- tables
#: rows of a small CSV table as :func:`_read_csv_rows` returns them: the first ``{"__header__": [column names]}``,
#: then per data row ``{"__line__": "<line number>", <column>: <cell text>, ...}``
CsvRows = List[Dict[str, Any]]


def _read_csv_rows(path: str, what: str) -> CsvRows:
    if not path or not os.path.isfile(path):
        raise SatClassifyError(f"{what} '{path}' does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = [ln for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as e:
        raise SatClassifyError(f"cannot read {what} '{path}': {e}")
    if not lines:
        raise SatClassifyError(f"{what} '{path}' is empty")
    sample = lines[0]
    delim = ";" if sample.count(";") > sample.count(",") else ("\t" if "\t" in sample and "," not in sample else ",")
    reader = csv.reader(lines, delimiter=delim)
    header = [h.strip().lower() for h in next(reader)]
    rows: CsvRows = []
    for n, row in enumerate(reader, start=2):
        if not any(c.strip() for c in row):
            continue
        rows.append({"__line__": str(n), **{h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header)}})
    return [{"__header__": header}] + rows


def _int_cell(row: Dict[str, str], col: str, what: str, lo: int = 0, hi: int = MAX_VALUE) -> int:
    text = row.get(col, "")
    try:
        f = float(text)
        if f != int(f):
            raise ValueError
        v = int(f)
    except ValueError:
        raise SatClassifyError(f"{what} line {row['__line__']}: {col} '{text}' is not an integer class value")
    if not lo <= v <= hi:
        raise SatClassifyError(f"{what} line {row['__line__']}: {col} {v} is out of range {lo}..{hi}")
    return v


@dataclass
class Reclassification:
    """``from`` -> ``to`` per map ("classified", "reference"); an empty dict = that map is not reclassified."""

    classified: Dict[int, int] = field(default_factory=dict)
    reference: Dict[int, int] = field(default_factory=dict)

    def for_map(self, which: str) -> Dict[int, int]:
        return getattr(self, which)


def reclassification_from_rows(rows: CsvRows, what: str = "reclassify table") -> Reclassification:
    header = rows[0]["__header__"]
    missing = [c for c in ("map", "from", "to") if c not in header]
    if missing:
        raise SatClassifyError(
            f"{what}: missing column(s) {', '.join(missing)}; the first line must be the header "
            f"'map,from,to' (map = classified, reference or both), found '{','.join(header)}'"
        )
    out = Reclassification()
    for row in rows[1:]:
        m = row["map"].strip().lower()
        if m not in ("classified", "reference", "both"):
            raise SatClassifyError(
                f"{what} line {row['__line__']}: map '{row['map']}' must be classified, reference or both"
            )
        src = _int_cell(row, "from", what)
        dst = _int_cell(row, "to", what)
        for which in MAPS if m == "both" else (m,):
            d = out.for_map(which)
            if src in d and d[src] != dst:
                raise SatClassifyError(
                    f"{what} line {row['__line__']}: {which} value {src} is mapped twice ({d[src]} and {dst})"
                )
            d[src] = dst
    if not out.classified and not out.reference:
        raise SatClassifyError(f"{what} has no rows: add lines 'map,from,to' such as 'classified,3,1'")
    return out


def read_reclassification(path: str) -> Reclassification:
    return reclassification_from_rows(_read_csv_rows(path, "reclassify table"), f"reclassify table '{path}'")


def names_from_rows(rows: CsvRows, what: str = "names table") -> Dict[int, Tuple[str, Optional[str]]]:
    header = rows[0]["__header__"]
    if "value" not in header or "name" not in header:
        raise SatClassifyError(
            f"{what}: the first line must be the header 'value,name[,color]', found '{','.join(header)}'"
        )
    out: Dict[int, Tuple[str, Optional[str]]] = {}
    for row in rows[1:]:
        v = _int_cell(row, "value", what)
        cell = row.get("color") or row.get("colour") or ""
        color = clc.normalise_color(cell, f"{what} line {row['__line__']}") if cell else None
        out[v] = (row["name"] or f"class {v}", color)
    if not out:
        raise SatClassifyError(f"{what} has no rows: add lines 'value,name,color' such as '1,Water,#0000ff'")
    return out


def read_names(path: str) -> Dict[int, Tuple[str, Optional[str]]]:
    return names_from_rows(_read_csv_rows(path, "names table"), f"names table '{path}'")


# ----------------------------------------------------------------------------------------- transform
def detect_clc_source(values: Iterable[int], which: str) -> str:
    """ "grid" when the level-3 values are CLC grid codes (1..44), "code" when they are codes (111..523)."""
    vals = sorted(set(int(v) for v in values))
    # CLC "no data / unclassified" codes (grid 48, 49, 50, 128, 255; codes 990, 995, 999) do not decide the
    # kind; they are no class at level 1/2 and end up "unmapped"
    classes_only = [v for v in vals if v not in clc.NODATA_GRID_CODES and v not in clc.NODATA_CODES]
    if classes_only and (classes_only[-1] <= 44 or (classes_only[0] >= 111 and classes_only[-1] <= 523)):
        vals = classes_only
    if not vals:
        return "grid"
    if vals[-1] <= 44:
        return "grid"
    if vals[0] >= 111 and vals[-1] <= 523:
        return "code"
    raise SatClassifyError(
        f"CLC LEVEL needs level-3 CLC values in the {which} map: grid codes 1..44 or codes 111..523, but it holds "
        f"values {vals[0]}..{vals[-1]}; leave LEVEL empty, or apply LEVEL only to the other map"
    )


def level_lut(level: int, source: str) -> np.ndarray:
    """int64 lookup: level-3 grid code / code -> level class value, -1 for values that are no CLC class."""
    lut = clc.lookup_table(level, source).astype(np.int64)
    lut[lut == 0] = -1
    return lut


class MapTransform:
    """Raw pixel values of one map -> comparison values (-1 = excluded), with exclusion counters."""

    def __init__(
        self,
        which: str,
        ignore: Iterable[int],
        nodata: Optional[float] = None,
        reclass: Optional[Dict[int, int]] = None,
        level: Optional[int] = None,
        level_source: str = "grid",
        ignore_after: Iterable[int] = (),
    ):
        self.which = which
        self.ignore = sorted(set(int(v) for v in ignore))
        self.nodata = nodata
        self.reclass = dict(reclass or {})
        self.level = level
        self.level_source = level_source
        self.ignore_after = sorted(set(int(v) for v in ignore_after))
        self._reclass_lut = None
        if self.reclass:
            lut = np.full(max(self.reclass) + 1, -1, dtype=np.int64)
            for k, v in self.reclass.items():
                lut[k] = v
            self._reclass_lut = lut
        self._level_lut = level_lut(level, level_source) if level else None
        self.ignored = 0
        self.unmapped = 0
        self.unmapped_values: set = set()

    def map_values(self, values: Iterable[int]) -> List[int]:
        """The comparison values that the raw ``values`` (already without ignored ones) become."""
        a = np.asarray(sorted(set(int(v) for v in values)), dtype=np.int64)
        out, _ = self._map(a)
        return sorted(set(int(v) for v in out[out >= 0]))

    def _map(self, a: np.ndarray):
        out = a.astype(np.int64, copy=True)
        unmapped = np.zeros(out.shape, bool)
        for lut in (self._reclass_lut, self._level_lut):
            if lut is None:
                continue
            inside = (out >= 0) & (out < len(lut))
            mapped = np.full(out.shape, -1, dtype=np.int64)
            mapped[inside] = lut[out[inside]]
            unmapped |= (out >= 0) & (mapped < 0)
            out = mapped
        if self.ignore_after:
            out[np.isin(out, self.ignore_after)] = -1
        return out, unmapped

    def apply(self, raw: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
        """Transform a block. ``valid`` (bool) marks pixels to consider (mask, coverage); others become -1
        without being counted as ignored."""
        raw = np.asarray(raw)
        if raw.dtype.kind == "f":
            if np.isnan(raw).any():
                raw = np.where(np.isnan(raw), self.ignore[0] if self.ignore else -1, raw)
            if (raw != np.round(raw)).any():
                raise SatClassifyError(f"the {self.which} raster holds non-integer values: it must be a class raster")
        a = raw.astype(np.int64)
        consider = np.ones(a.shape, bool) if valid is None else np.asarray(valid, bool)
        ign = np.isin(a, self.ignore) if self.ignore else np.zeros(a.shape, bool)
        if self.nodata is not None:
            ign |= a == self.nodata
        self.ignored += int((ign & consider).sum())
        keep = consider & ~ign
        if keep.any():
            lo, hi = int(a[keep].min()), int(a[keep].max())
            if lo < 0 or hi > MAX_VALUE:
                raise SatClassifyError(
                    f"the {self.which} raster holds the value {lo if lo < 0 else hi}: class values must be in "
                    f"0..{MAX_VALUE}; add it to IGNORE (or set it as the raster's nodata) if it means no data"
                )
        a = np.where(keep, a, -1)
        out, unmapped = self._map(a)
        unmapped &= keep
        n = int(unmapped.sum())
        if n:
            self.unmapped += n
            self.unmapped_values.update(int(v) for v in np.unique(a[unmapped])[:100])
        return out


def block_mode(a: np.ndarray, k: int) -> np.ndarray:
    """Mode of each k x k block of ``a`` (int, -1 = excluded pixels, left out of the vote).

    Partial blocks at the right/bottom edge vote with the pixels they have. A block without any
    valid pixel gives -1; ties go to the smallest class value.
    """
    k = check_scale(k)
    a = np.asarray(a, dtype=np.int64)
    if k == 1:
        return a.copy()
    h, w = a.shape
    hh, ww = -(-h // k), -(-w // k)
    pad = np.full((hh * k, ww * k), -1, dtype=np.int64)
    pad[:h, :w] = a
    b = pad.reshape(hh, k, ww, k).transpose(0, 2, 1, 3).reshape(hh, ww, k * k)
    out = np.full((hh, ww), -1, dtype=np.int64)
    best = np.zeros((hh, ww), dtype=np.int64)
    for v in np.unique(a[a >= 0]):  # ascending: a later class must have strictly more votes to win
        c = (b == v).sum(axis=2)
        better = c > best
        out[better] = v
        best[better] = c[better]
    return out


# ----------------------------------------------------------------------------------------- outputs
def matrix_csv(metrics: dict) -> str:
    """Confusion matrix CSV: rows = reference, columns = classified, totals last."""
    classes = metrics["classes"]
    m = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["reference_value", "reference_name"] + [f"{c['value']} {c['name']}" for c in classes] + ["total"])
    for i, c in enumerate(classes):
        w.writerow([c["value"], c["name"]] + [int(x) for x in m[i]] + [int(m[i].sum())])
    w.writerow(["total", ""] + [int(x) for x in m.sum(axis=0)] + [int(m.sum())])
    return buf.getvalue()


def heatmap_rgb(matrix, colors: Sequence[str], cell: Optional[int] = None) -> np.ndarray:
    """(3, H, W) uint8 heat-map of a confusion matrix: each cell's shade is its share of the reference row
    (white = 0, dark blue = 100 %); a strip of class colours runs along the top and the left."""
    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    cell = cell or max(4, min(32, 640 // max(n, 1)))
    strip = max(4, cell // 3)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    lo, hi = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    rgb = (lo[None, None, :] + (hi - lo)[None, None, :] * share[..., None]).round().astype(np.uint8)
    big = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
    # one-pixel light grid lines between cells
    big[::cell, :, :] = 220
    big[:, ::cell, :] = 220
    size = strip + n * cell
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    img[strip:, strip:] = big
    cols = np.array([[int(c.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)] for c in colors], dtype=np.uint8)
    for i in range(n):
        img[: strip - 1, strip + i * cell : strip + (i + 1) * cell] = cols[i]
        img[strip + i * cell : strip + (i + 1) * cell, : strip - 1] = cols[i]
    return img.transpose(2, 0, 1).copy()


def _fmt(x, pct=False):
    if x is None:
        return "&ndash;"
    return f"{100 * x:.1f}&nbsp;%" if pct else f"{x:.4f}"


def _cell(v) -> str:
    """An inputs/parameters value as HTML: none -> dash, lists/dicts joined, integers with separators."""
    if v is None or v == [] or v == {}:
        return "&ndash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return html.escape(", ".join(str(x) for x in v))
    if isinstance(v, dict):
        return html.escape(", ".join(f"{k}: {x}" for k, x in v.items()))
    return html.escape(str(v))


def mapped_areas(metrics: dict) -> Dict[int, float]:
    """Mapped area in hectares of each class of the classified map: the strata of a sample assessment, else the
    compared pixels classified as the class (times the pixel area; empty when that area is unknown)."""
    if metrics.get("area_estimates") is not None:
        return {a["value"]: a["mapped_area_ha"] for a in metrics["area_estimates"]}
    area = (metrics.get("inputs") or {}).get("pixel_area_ha")
    if not area:
        return {}
    k = int((metrics.get("inputs") or {}).get("scale", 1) or 1)
    return {c["value"]: c["predicted"] * area * k * k for c in metrics["classes"]}


def _legend(metrics: dict) -> List[str]:
    """The legend: only the classes present (in the map or the reference), with the mapped area (ha, %)."""
    e = html.escape
    areas = mapped_areas(metrics)
    total = sum(areas.values())
    out = ["<h2>Legend</h2>"]
    if areas:
        what = (
            "strata: whole map"
            if metrics.get("area_estimates") is not None
            else "compared pixels classified as the class"
        )
        out.append(
            f"<p><small>Mapped area = pixel count of the classified map &times; pixel area ({what}); "
            "classes present in the classified map or the reference only.</small></p>"
        )
    out.append(
        "<table><tr><th>colour</th><th>value</th><th>class</th>"
        + ("<th>mapped area (ha)</th><th>mapped area (%)</th>" if areas else "")
        + "</tr>"
    )
    for c in metrics["classes"]:
        if not (c.get("support") or c.get("predicted") or areas.get(c["value"])):
            continue
        row = (
            f"<tr><td class='sw' style='background:{e(c.get('color', '#888888'))}'>&nbsp;&nbsp;&nbsp;&nbsp;</td>"
            f"<td class='n'>{c['value']}</td><td>{e(c['name'])}</td>"
        )
        if areas:
            a = areas.get(c["value"], 0.0)
            row += f"<td class='n'>{a:,.2f}</td><td class='n'>{100 * a / total if total else 0:.2f}</td>"
        out.append(row + "</tr>")
    out.append("</table>")
    return out


def _area_estimates(metrics: dict) -> List[str]:
    """Stratified estimates per class and the error matrix in estimated area proportions (sample assessment)."""
    e = html.escape
    s = metrics.get("sample", {})
    out = ["<h2>Reference sample</h2><table>"]
    for k, v in s.items():
        if k != "examples":
            out.append(f"<tr><th>{e(str(k).replace('_', ' '))}</th><td class='n'>{_cell(v)}</td></tr>")
    out.append("</table>")
    out.append(
        "<h2>Area estimates</h2><p><small>Error-adjusted area = the class's estimated share of the map area "
        "(from the sample) &times; the map area (Olofsson et al. 2014, eqs. 8-11); &plusmn; = 95&nbsp;% "
        "confidence interval (1.96 standard errors). Mapped area = pixel count &times; pixel area.</small></p>"
    )
    out.append(
        "<table><tr><th></th><th>class</th><th>mapped area (ha)</th><th>estimated area (ha)</th>"
        "<th>&plusmn; 95&nbsp;% CI (ha)</th><th>user's accuracy</th><th>producer's accuracy</th>"
        "<th>points (map stratum)</th><th>points (reference)</th></tr>"
    )

    def acc(x, ci):
        return f"{_fmt(x, True)}" + (f" &plusmn; {_fmt(ci, True)}" if x is not None and ci is not None else "")

    for a in metrics["area_estimates"]:
        out.append(
            f"<tr><td class='sw' style='background:{e(a.get('color') or '#888888')}'>&nbsp;&nbsp;&nbsp;&nbsp;"
            f"</td><td>{a['value']} {e(a['name'])}</td><td class='n'>{a['mapped_area_ha']:,.2f}</td>"
            f"<td class='n'>{a['estimated_area_ha']:,.2f}</td><td class='n'>{a['ci95_ha']:,.2f}</td>"
            f"<td class='n'>{acc(a['users_accuracy'], a['users_accuracy_ci95'])}</td>"
            f"<td class='n'>{acc(a['producers_accuracy'], a['producers_accuracy_ci95'])}</td>"
            f"<td class='n'>{a['sample_points']:,}</td><td class='n'>{a['reference_points']:,}</td></tr>"
        )
    out.append("</table>")
    p = np.asarray(metrics["area_proportion_matrix"], dtype=np.float64)
    names = [f"{a['value']} {a['name']}" for a in metrics["area_estimates"]]
    out.append(
        "<h2>Error matrix in estimated area proportions</h2><p><small>Rows = map (classified), columns = "
        "reference; cell = W<sub>i</sub> n<sub>ij</sub> / n<sub>i.</sub> (eq. 4), in % of the map area."
        "</small></p><table class='cm'><tr><th>map &#8595; / reference &#8594;</th>"
    )
    out.extend(f"<th>{e(nm)}</th>" for nm in names)
    out.append("<th>total</th></tr>")
    for i, nm in enumerate(names):
        cells = "".join(
            ("<td class='d'>" if i == j else "<td>") + f"{100 * p[i, j]:.3f}</td>" for j in range(len(names))
        )
        out.append(f"<tr><th>{e(nm)}</th>{cells}<td><b>{100 * p[i].sum():.3f}</b></td></tr>")
    out.append(
        "<tr><th>total</th>"
        + "".join(f"<td><b>{100 * x:.3f}</b></td>" for x in p.sum(axis=0))
        + f"<td><b>{100 * p.sum():.3f}</b></td></tr></table>"
    )
    return out


def report_html(
    metrics: dict,
    png_bytes: Optional[bytes] = None,
    png_name: Optional[str] = None,
    title: str = "SatClassify accuracy assessment",
) -> str:
    """A self-contained HTML report (the heat-map PNG embedded as a data URI)."""
    e = html.escape
    classes = metrics["classes"]
    m = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    n = len(classes)
    inputs = metrics.get("inputs", {})
    excl = metrics.get("excluded", {})
    out = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title><style>",
        "body{font-family:Segoe UI,Arial,sans-serif;margin:1.5em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 7px;"
        "font-size:13px}th{background:#eee}td.n{text-align:right}.sw{min-width:1.5em;border:1px solid #555}"
        ".big td{font-size:16px}"
        ".cm td{text-align:right;min-width:3em;white-space:nowrap}.cm td.d{font-weight:bold;outline:2px solid #333}"
        "small{color:#555}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    sample = metrics.get("area_estimates") is not None
    out.append("<h2>Summary</h2>")
    if sample:
        out.append(
            f"<p><small>Estimated from a stratified random sample of reference points: "
            f"{e(metrics.get('estimator', ''))}. Accuracies and the other scores are population estimates "
            "(from the error matrix in estimated area proportions); &plusmn; = 95&nbsp;% confidence "
            "interval.</small></p>"
        )
    out.append("<table class='big'>")
    for label, key, pct in (
        ("Overall accuracy (OA)", "overall_accuracy", True),
        ("Cohen's kappa", "kappa", False),
        ("Macro F1", "macro_f1", False),
        ("Mean IoU (mIoU)", "miou", False),
    ):
        ci = metrics.get(f"{key}_ci95")
        ci_text = f" &plusmn; {_fmt(ci, pct)}" if ci is not None else ""
        out.append(f"<tr><th>{label}</th><td class='n'>{_fmt(metrics.get(key), pct)}{ci_text}</td></tr>")
    unit = "sample points" if sample else ("blocks" if int(inputs.get("scale", 1) or 1) > 1 else "pixels")
    out.append(f"<tr><th>Compared {unit}</th><td class='n'>{metrics['pixels']:,}</td></tr></table>")
    out.append("<h2>Inputs and parameters</h2><table>")
    for k, v in inputs.items():
        out.append(f"<tr><th>{e(str(k).replace('_', ' '))}</th><td>{_cell(v)}</td></tr>")
    out.append("</table>")
    if excl:
        out.append(
            "<h2>Pixels left out</h2><p><small>Counted at the input resolution; a pixel can count in more "
            "than one line.</small></p><table>"
        )
        for k, v in excl.items():
            out.append(f"<tr><th>{e(str(k).replace('_', ' '))}</th><td class='n'>{_cell(v)}</td></tr>")
        out.append("</table>")
    out.extend(_legend(metrics))
    if sample:
        out.extend(_area_estimates(metrics))
    est_note = (
        " With a reference sample the scores are population estimates (from the error matrix in estimated "
        "area proportions); support and predicted are sample points."
        if sample
        else ""
    )
    out.append(
        "<h2>Per-class accuracy</h2><p><small>Precision = user's accuracy (of the pixels classified as the "
        "class, the share that the reference confirms); recall = producer's accuracy (of the reference "
        f"pixels of the class, the share found); &ndash; = undefined (class absent from a map).{est_note}"
        "</small></p>"
    )
    out.append(
        "<table><tr><th></th><th>class</th><th>precision<br><small>user's acc.</small></th>"
        "<th>recall<br><small>producer's acc.</small></th><th>F1</th><th>IoU</th>"
        "<th>support<br><small>reference</small></th><th>predicted</th></tr>"
    )
    for c in classes:
        out.append(
            f"<tr><td class='sw' style='background:{e(c.get('color', '#888888'))}'>&nbsp;&nbsp;&nbsp;&nbsp;</td>"
            f"<td>{c['value']} {e(c['name'])}</td>"
            + "".join(f"<td class='n'>{_fmt(c[k])}</td>" for k in ("precision", "recall", "f1", "iou"))
            + f"<td class='n'>{c['support']:,}</td><td class='n'>{c['predicted']:,}</td></tr>"
        )
    out.append("</table>")
    out.append(
        "<h2>Confusion matrix</h2><p><small>Rows = reference, columns = classified; counts of "
        f"{unit}. Cell shade = share of the reference row; the diagonal (bold frame) is agreement."
        "</small></p><table class='cm'><tr><th>reference &#8595; / classified &#8594;</th>"
    )
    out.extend(f"<th>{c['value']}<br>{e(c['name'])}</th>" for c in classes)
    out.append("<th>total</th></tr>")
    rows = m.sum(axis=1)
    for i, c in enumerate(classes):
        out.append(f"<tr><th>{c['value']} {e(c['name'])}</th>")
        for j in range(n):
            share = m[i, j] / rows[i] if rows[i] else 0.0
            r, g, b = (round(255 + (t - 255) * share) for t in (8, 48, 107))
            fg = "#fff" if share > 0.5 else "#000"
            cls = " class='d'" if i == j else ""
            out.append(f"<td{cls} style='background:rgb({r},{g},{b});color:{fg}'>{int(m[i, j]):,}</td>")
        out.append(f"<td><b>{int(rows[i]):,}</b></td></tr>")
    out.append(
        "<tr><th>total</th>"
        + "".join(f"<td><b>{int(x):,}</b></td>" for x in m.sum(axis=0))
        + f"<td><b>{int(m.sum()):,}</b></td></tr></table>"
    )
    if png_bytes:
        uri = "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")
        cap = f" (also saved as {e(png_name)})" if png_name else ""
        out.append(
            f"<h2>Heat map</h2><p><small>Row-normalised confusion matrix{cap}: white = 0 %, dark blue = "
            "100 % of the reference class; class colours along the top (classified) and the left "
            f"(reference), in legend order.</small></p><p><img alt='confusion matrix heat map' src='{uri}'></p>"
        )
    out.append("<p><small>Written by SatClassify (satclassify:assessaccuracy).</small></p></body></html>")
    return "\n".join(out)
