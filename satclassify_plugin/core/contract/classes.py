"""The one class record (pure Python): what a class raster stores for one class.

Used by the CLC tables (:mod:`.clc`), model cards (:mod:`.modelcard` heads), dataset manifests
(:mod:`.dataset`) and styling (colour tables, category names, QGIS palettes): ``value`` is the stored pixel
value 1..255 (0 = no label), ``code`` the nomenclature's code (e.g. the CLC code "211"), ``name`` and
``color`` ("#rrggbb").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Type, cast

from .errors import SatClassifyError

COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def is_color(text) -> bool:
    """Whether ``text`` is a "#rrggbb" colour."""
    return isinstance(text, str) and bool(COLOR_RE.match(text))


def as_dict(c) -> dict:
    """A class entry (a :class:`ClassRecord` or a dict with value, name, color, ...) as a dict."""
    return cast(dict, c) if isinstance(c, Mapping) else c.to_dict()


@dataclass(frozen=True)
class ClassRecord:
    value: int
    code: str
    name: str
    color: str  # "#rrggbb"

    def to_dict(self) -> dict:
        return {"value": self.value, "code": self.code, "name": self.name, "color": self.color}

    @property
    def rgb(self):
        c = self.color.lstrip("#")
        return tuple(int(c[i : i + 2], 16) for i in (0, 2, 4))

    @classmethod
    def from_dict(
        cls,
        d: Mapping,
        where: str = "class table",
        error: Type[Exception] = SatClassifyError,
        default_color: str = "#808080",
    ) -> "ClassRecord":
        """A checked record from ``{value, code?, name?, color?}`` (code defaults to the value, name to
        "class N"); ``error`` names the problem and ``where`` it is."""
        if not isinstance(d, Mapping):
            raise error(f"{where}: a class must be an object with value, code, name, color, not {d!r}")
        if "value" not in d:
            raise error(f"{where}: class {d!r} has no 'value'")
        value = d["value"]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 255:
            raise error(f"{where}: class value {value!r} ({d.get('name', '')!r}) is out of range 1..255 (0 = no label)")
        color = d.get("color") or default_color
        if not is_color(color):
            raise error(f"{where}: class {value} has colour {color!r}, which is not #rrggbb")
        return cls(value, str(d.get("code", value)), str(d.get("name", f"class {value}")), color)
