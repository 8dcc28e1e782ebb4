"""CORINE Land Cover nomenclature: codes, grid codes, levels, names and colours.

Pure Python (no qgis, osgeo or torch): the training package imports it too.

The table comes from the official legend shipped in ``core/contract/data/clc_legend.csv``
(44 level-3 classes, grid codes 1..44).  Class *values* are what class rasters
store (uint8, 0 = no label):

* level 3: value = the CLC grid code (1..44), e.g. 211 -> 12;
* level 2: value = 1..15 in code order (11 -> 1, ..., 52 -> 15);
* level 1: value = the first digit (1..5).

Level-1 and level-2 colours are not part of the official legend; each takes the
colour of the first level-3 class below it (so "Forests" is broad-leaved green).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterable, List, Optional, Sequence, Union

from .classes import ClassRecord
from .errors import SatClassifyError

LEGEND_PATH = os.path.join(os.path.dirname(__file__), "data", "clc_legend.csv")

#: CLC codes meaning "no data" / "unclassified" (never a label).
NODATA_CODES = frozenset({999, 990, 995})
#: CLC raster grid codes meaning "no data" / "unclassified".
NODATA_GRID_CODES = frozenset({48, 49, 50, 128, 255})

LEVELS = (1, 2, 3)


#: a CLC class of a class raster: the project's one class record
ClassInfo = ClassRecord


@dataclass(frozen=True)
class ClcEntry:
    grid_code: int
    code: int  # three digits, 111..523
    level1: str
    level2: str
    level3: str
    color: str


def _rgb_to_hex(text: str) -> str:
    parts = text.strip().split("-")
    if len(parts) != 3:
        raise SatClassifyError(f"bad CLC colour '{text}' in {LEGEND_PATH}")
    return "#" + "".join(f"{int(p):02x}" for p in parts)


@lru_cache(maxsize=1)
def legend() -> List[ClcEntry]:
    """The 44 level-3 entries of the official legend, in code order."""
    entries = []
    with open(LEGEND_PATH, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code = int(row["clc_code"])
            if code in NODATA_CODES:
                continue
            entries.append(
                ClcEntry(
                    int(row["grid_code"]), code, row["level1"], row["level2"], row["level3"], _rgb_to_hex(row["rgb"])
                )
            )
    entries.sort(key=lambda e: e.code)
    return entries


def level_code(code: int, level: int) -> int:
    """The level-`level` code of a level-3 CLC code: 211 -> 2 (level 1), 21 (level 2), 211."""
    if level not in LEVELS:
        raise SatClassifyError(f"CLC level must be 1, 2 or 3, not {level!r}")
    return int(str(int(code))[:level])


@lru_cache(maxsize=3)
def classes(level: int = 3) -> List[ClassInfo]:
    """The class table at CLC level 1, 2 or 3 (values as in the module docstring)."""
    if level not in LEVELS:
        raise SatClassifyError(f"CLC level must be 1, 2 or 3, not {level!r}")
    if level == 3:
        return [ClassInfo(e.grid_code, str(e.code), e.level3, e.color) for e in legend()]
    out: Dict[int, ClassInfo] = {}
    for e in legend():
        c = level_code(e.code, level)
        if c not in out:
            name = e.level1 if level == 1 else e.level2
            value = c if level == 1 else len(out) + 1
            out[c] = ClassInfo(value, str(c), name, e.color)
    return list(out.values())


def code_to_value(level: int = 3) -> Dict[int, int]:
    """Map every level-3 CLC code (111..523) to the class value at `level`."""
    by_code = {int(c.code): c.value for c in classes(level)}
    return {e.code: by_code[level_code(e.code, level)] for e in legend()}


def grid_code_to_code() -> Dict[int, int]:
    """Map CLC raster grid codes (1..44) to level-3 codes (111..523)."""
    return {e.grid_code: e.code for e in legend()}


def parse_code(raw: Union[str, int, float, None]) -> Optional[int]:
    """A CLC code from an attribute value ("211", 211, 211.0, " 211 "); None when empty/nodata.

    Raises SatClassifyError for text that is not a number and for a fractional number (211.7 is no code: it is
    never truncated).
    """
    if raw is None:
        return None
    if isinstance(raw, (int, float)):
        if raw != raw:  # NaN
            return None
        number = raw
    else:
        text = str(raw).strip()
        if not text or text.upper() in {"NULL", "NONE", "NODATA"}:
            return None
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise SatClassifyError(f"'{raw}' is not a CLC code (expected a number such as 211)")
            if number != number:
                return None
    if isinstance(number, float) and not (math.isfinite(number) and number.is_integer()):
        # 211.7 is no code: truncating it to 211 would invent a class
        raise SatClassifyError(f"'{raw}' is not a CLC code (codes are whole numbers such as 211)")
    code = int(number)
    if code in NODATA_CODES:
        return None
    return code


def lookup_table(level: int = 3, source: str = "code", size: int = 1024):
    """A numpy lookup array mapping CLC codes (or grid codes) to class values.

    ``source`` is "code" (111..523) or "grid" (1..44). Unknown entries map to 0.
    """
    import numpy as np

    lut = np.zeros(size, dtype=np.uint8)
    c2v = code_to_value(level)
    if source == "code":
        for code, value in c2v.items():
            lut[code] = value
    elif source == "grid":
        for grid, code in grid_code_to_code().items():
            lut[grid] = c2v[code]
    else:
        raise SatClassifyError(f"lookup source must be 'code' or 'grid', not {source!r}")
    return lut


def mapping_from_rows(rows: Iterable[Sequence[str]]) -> "tuple[Dict[int, int], List[ClassInfo]]":
    """Parse a user mapping table: rows of (code, value, name[, colour]).

    ``code`` is a CLC code at any level (1, 2 or 3 digits: "2" covers 211..244);
    the most specific code wins. Returns (level-3 code -> value, class table).
    """
    prefix_to_value: Dict[str, int] = {}
    line_of: Dict[str, int] = {}
    infos: Dict[int, ClassInfo] = {}
    for lineno, row in enumerate(rows, start=1):
        row = [c.strip() for c in row]
        if not row or not row[0] or row[0].startswith("#"):
            continue
        if lineno == 1 and not row[0].isdigit() and not (len(row) > 1 and row[1].lstrip("-").isdigit()):
            continue  # header
        if len(row) < 3:
            raise SatClassifyError(
                f"mapping table line {lineno}: expected 'code,value,name[,color]', got {','.join(row)!r}"
            )
        code, value_text, name = row[0], row[1], row[2]
        color = row[3] if len(row) > 3 and row[3] else None
        if not code.isdigit() or not 1 <= len(code) <= 3:
            raise SatClassifyError(f"mapping table line {lineno}: '{code}' is not a CLC code of 1 to 3 digits")
        try:
            value = int(value_text)
        except ValueError:
            raise SatClassifyError(f"mapping table line {lineno}: value '{value_text}' is not an integer")
        if not 1 <= value <= 255:
            raise SatClassifyError(f"mapping table line {lineno}: value {value} out of range 1..255 (0 means no label)")
        if color is not None:
            color = normalise_color(color, f"mapping table line {lineno}")
        if code in prefix_to_value:
            first = line_of[code]
            raise SatClassifyError(
                f"mapping table lines {first} and {lineno} both map code {code} (to value {prefix_to_value[code]} "
                f"and {value}): each code may appear once, otherwise one line silently wins. Delete one of the "
                "two lines"
            )
        prefix_to_value[code] = value
        line_of[code] = lineno
        if value not in infos or (color and infos[value].color == "#000000"):
            infos[value] = ClassInfo(value, code, name, color or "#000000")
    if not prefix_to_value:
        raise SatClassifyError("mapping table has no rows: expected lines 'code,value,name[,color]'")
    mapping = {}
    for e in legend():
        s = str(e.code)
        for n in (3, 2, 1):
            if s[:n] in prefix_to_value:
                mapping[e.code] = prefix_to_value[s[:n]]
                break
    table = [infos[v] for v in sorted(infos)]
    for i, info in enumerate(table):
        if info.color == "#000000":
            table[i] = ClassInfo(info.value, info.code, info.name, default_palette(info.value))
    return mapping, table


def read_mapping_csv(path: str):
    """Read a mapping table CSV (see :func:`mapping_from_rows`)."""
    if not os.path.isfile(path):
        raise SatClassifyError(f"mapping table '{path}' does not exist")
    with open(path, newline="", encoding="utf-8-sig") as f:
        return mapping_from_rows(csv.reader(f))


def normalise_color(text: str, where: str = "colour") -> str:
    t = text.strip()
    if t.startswith("#") and len(t) == 7:
        try:
            int(t[1:], 16)
            return t.lower()
        except ValueError:
            pass
    parts = t.replace(" ", "").split("-") if "-" in t else t.split(";")
    if len(parts) == 3 and all(p.isdigit() and 0 <= int(p) <= 255 for p in parts):
        return "#" + "".join(f"{int(p):02x}" for p in parts)
    raise SatClassifyError(f"{where}: '{text}' is not a colour (use #rrggbb or r-g-b)")


_PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def default_palette(value: int) -> str:
    return _PALETTE[(value - 1) % len(_PALETTE)]
