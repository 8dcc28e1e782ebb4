"""The class table of a user's own labels (pure Python, no GDAL): which class value each code of a vector layer's
class field gets, and the legend (value, code, name, colour) written to the class raster and the dataset manifest.

Codes are matched by a *key*: the text of a text field, stripped (``"0101"`` stays ``"0101"``, case kept), and for a
numeric field the number's shortest text (``211``, ``211.0`` and a table's ``"211"`` or ``"0211"`` are all
``"211"``; ``1.5`` is ``"1.5"``). NULL, NaN and empty text are no code (no label).

Two ways to get the table (:class:`ClassTable`):

* **given** (:func:`table_from_rows`: a CSV file read by :func:`read_table_csv`, or the rows of a table layer): one
  row per code with the columns ``code`` (required), ``value`` (1..255; absent in every row: 1, 2, ... in row order),
  ``name`` (default: the code) and ``colour``/``color`` (``#rrggbb`` or ``r-g-b``; default: :func:`class_color`).
  Several codes may share a value (a mapping: many crop codes, one class); the first row of a value names and
  colours the class. A code on two rows is refused, naming both.
* **derived** (:func:`table_from_codes`): the field's distinct codes sorted (numerically for a numeric field,
  by text otherwise), values 1..N in that order, name = code, colours :func:`class_color` of the value. The same
  codes always give the same table. More than 255 codes: refused (a class raster is uint8).

Codes of the layer the table does not hold are *unknown*: the rasterizer leaves them as no label and reports them
with their feature counts (never silently dropped).
"""

from __future__ import annotations

import colorsys
import csv
import math
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from ..contract.classes import ClassRecord
from ..contract.clc import normalise_color
from ..contract.errors import SatClassifyError

MAX_CLASSES = 255


def code_key(raw, numeric: bool = False) -> Optional[str]:
    """The matching key of a code (module docstring); None for no code. ``numeric``: the layer's field is a number
    field, so a table's text codes are read as numbers."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        f = float(raw)
        if not math.isfinite(f):
            return None
        return str(int(raw)) if f.is_integer() else repr(f)
    text = str(raw).strip()
    if not text:
        return None
    if numeric:
        try:
            return code_key(int(text))
        except ValueError:
            try:
                return code_key(float(text))
            except ValueError:
                return text  # not a number: it can match no code of a number field
    return text


def class_color(value: int) -> str:
    """A deterministic colour for class ``value``: hues a golden angle apart (neighbouring values differ strongly),
    saturation and brightness alternating in three steps."""
    h = (int(value) * 0.618033988749895) % 1.0
    s = (0.75, 0.55, 0.9)[int(value) % 3]
    v = (0.9, 0.75, 0.6)[(int(value) // 3) % 3]
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return "#" + "".join(f"{int(round(c * 255)):02x}" for c in (r, g, b))


@dataclass
class ClassTable:
    """Class values of codes and the legend. ``derived``: made from the layer's own codes."""

    classes: List[ClassRecord]
    values: Dict[str, int]  # code key -> class value
    derived: bool = False
    numeric: bool = False  # keys are numbers' text (a number field)
    source: str = ""  # where the table came from (for messages)
    codes_of: Dict[int, List[str]] = field(default_factory=dict)  # value -> the code keys mapped to it

    def value_of(self, raw) -> int:
        """The class value of a raw field value: > 0 known, 0 no code (NULL/empty), -1 a code not in the table."""
        key = code_key(raw, self.numeric)
        if key is None:
            return 0
        return self.values.get(key, -1)

    def manifest_entry(self) -> dict:
        """What the raster's metadata and the dataset manifest record about the table (beside the class list)."""
        return {
            "source": self.source,
            "derived": self.derived,
            "codes": {str(v): codes for v, codes in sorted(self.codes_of.items())},
        }


def _norm_header(name) -> str:
    n = str(name or "").strip().lower()
    return {"color": "colour", "class": "value", "label": "name", "class_name": "name"}.get(n, n)


def table_from_rows(rows: Iterable[Mapping], numeric: bool = False, where: str = "class table") -> ClassTable:
    """A given class table from rows (dicts keyed by column name, any case): see the module docstring."""
    by_value: Dict[int, ClassRecord] = {}
    values: Dict[str, int] = {}
    line_of: Dict[str, int] = {}
    codes_of: Dict[int, List[str]] = {}
    with_value = None
    n = 0
    for i, row in enumerate(rows, start=1):
        r = {_norm_header(k): v for k, v in row.items() if k is not None}
        if "code" not in r:
            raise SatClassifyError(
                f"{where} has no 'code' column (columns: {', '.join(str(k) for k in row)}): "
                "give the columns code[,value,name,colour]"
            )
        key = code_key(r.get("code"), numeric)
        if key is None:
            if all(v in (None, "") or (isinstance(v, str) and not v.strip()) for v in r.values()):
                continue  # an empty line
            raise SatClassifyError(f"{where} row {i}: the code is empty")
        if key.startswith("#") and not numeric:
            continue  # a comment line
        n += 1
        raw_value = r.get("value")
        has_value = raw_value not in (None, "") and str(raw_value).strip() != ""
        if with_value is None:
            with_value = has_value
        elif with_value != has_value:
            raise SatClassifyError(
                f"{where} row {i} (code {key}): give a value in every row or in none "
                "(none: values 1, 2, ... in row order)"
            )
        if has_value:
            try:
                fv = float(str(raw_value).strip())
            except ValueError:
                fv = float("nan")
            if not fv.is_integer() or not 1 <= fv <= MAX_CLASSES:
                raise SatClassifyError(
                    f"{where} row {i} (code {key}): value '{raw_value}' is not a whole number 1..255 (0 means no label)"
                )
            value = int(fv)
        else:
            value = n
            if value > MAX_CLASSES:
                raise SatClassifyError(
                    f"{where} has more than {MAX_CLASSES} codes without values: give a value "
                    "column (several codes may share a value)"
                )
        if key in values:
            raise SatClassifyError(
                f"{where} rows {line_of[key]} and {i} both hold code {key} (values "
                f"{values[key]} and {value}): each code may appear once. Delete one of the rows"
            )
        values[key], line_of[key] = value, i
        codes_of.setdefault(value, []).append(key)
        if value not in by_value:
            name = r.get("name")
            name = str(name).strip() if name not in (None, "") and str(name).strip() else key
            colour = r.get("colour")
            colour = (
                normalise_color(str(colour), f"{where} row {i} (code {key})")
                if colour not in (None, "") and str(colour).strip()
                else class_color(value)
            )
            by_value[value] = ClassRecord(value, key, name, colour)
    if not values:
        raise SatClassifyError(f"{where} has no rows: give one row per code (code[,value,name,colour])")
    classes = []
    for v in sorted(by_value):
        c = by_value[v]
        # a class made of several codes is coded by them all ("BTH;WWH"), its name stays the first row's
        code = ";".join(codes_of[v]) if len(codes_of[v]) > 1 else c.code
        classes.append(ClassRecord(v, code, c.name, c.color))
    return ClassTable(classes, values, derived=False, numeric=numeric, source=where, codes_of=codes_of)


def read_table_csv(path: str, numeric: bool = False) -> ClassTable:
    """A class table CSV (comma or semicolon separated, a header row naming the columns)."""
    if not os.path.isfile(path):
        raise SatClassifyError(f"class table '{path}' does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise SatClassifyError(f"cannot read class table '{path}': {e}")
    first = text.splitlines()[0] if text.strip() else ""
    delim = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delim)
    if not reader.fieldnames or "code" not in [_norm_header(h) for h in reader.fieldnames]:
        raise SatClassifyError(
            f"class table '{path}' has no header row with a 'code' column (first line: "
            f"{first[:80]!r}): the first line names the columns, e.g. code,value,name,colour"
        )
    return table_from_rows(list(reader), numeric, where=f"class table '{os.path.basename(path)}'")


def table_from_codes(codes: Sequence, numeric: bool = False, where: str = "the class field") -> ClassTable:
    """The table derived from a layer's distinct codes (NULL/empty left out): sorted, values 1..N."""
    keys = {k for k in (code_key(c, numeric) for c in codes) if k is not None}  # NULL/empty: None
    if not keys:
        raise SatClassifyError(f"{where} holds no code (every value is NULL or empty): choose the class field")
    if numeric:
        ordered = sorted(keys, key=lambda k: (float(k), k))
    else:
        ordered = sorted(keys)
    if len(ordered) > MAX_CLASSES:
        raise SatClassifyError(
            f"{where} holds {len(ordered)} distinct codes, more than the {MAX_CLASSES} classes a "
            "class raster holds: give a class table (CLASS_TABLE) that maps them to fewer classes"
        )
    classes = [ClassRecord(i, k, k, class_color(i)) for i, k in enumerate(ordered, start=1)]
    return ClassTable(
        classes,
        {k: i for i, k in enumerate(ordered, start=1)},
        derived=True,
        numeric=numeric,
        source=f"derived from {where}",
        codes_of={i: [k] for i, k in enumerate(ordered, start=1)},
    )
