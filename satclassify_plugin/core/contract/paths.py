"""Output paths that would destroy data: an output on an input, two outputs on one file, an output that is a
folder. One check for every tool (called by the algorithm base class before a tool runs) and the training CLI.

Pure Python (no QGIS, no GDAL): the training env imports it too.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, Mapping, Optional, Tuple

from .errors import SatClassifyError

#: files GDAL writes beside a raster: an output whose sidecar is an input destroys that input too
SIDECARS = (".aux.xml", ".ovr", ".msk")
#: written into every QGIS style (.qml) SatClassify writes beside an output; a .qml without it is the user's
STYLE_MARKER = "satclassify/style"


def style_sidecar(path: str) -> str:
    """The style QGIS loads with a layer file: ``<name>.qml`` beside ``<name>.tif``."""
    return os.path.splitext(path)[0] + ".qml"


def is_own_style(path: str) -> bool:
    """``path`` is a style file SatClassify wrote (it carries :data:`STYLE_MARKER`)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return STYLE_MARKER in f.read(1 << 16)
    except OSError:
        return False


def check_style_sidecar(name: str, output: str) -> None:
    """Refuse an output whose style sidecar (:func:`style_sidecar`) exists and is not SatClassify's own: writing
    the output would silently replace the user's style."""
    qml = style_sidecar(output)
    if os.path.isfile(qml) and not is_own_style(qml):
        raise SatClassifyError(
            f"{name} '{output}' would replace the QGIS style '{qml}' (the tool writes the layer's style there), "
            "which SatClassify did not write: rename or move that style, or choose another output file")


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(os.path.expanduser(path))))


def same_file(a: str, b: str) -> bool:
    """``a`` and ``b`` name the same file (symlinks, relative parts and hard links resolved)."""
    if not a or not b:
        return False
    if _key(a) == _key(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies below it."""
    p, f = _key(path), _key(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def check_outputs(inputs: Mapping[str, Iterable[str]], outputs: Mapping[str, str],
                  folders: Optional[Mapping[str, str]] = None, replaces_folder: bool = False) -> None:
    """Refuse outputs that would overwrite data, with a message naming both parameters and the fix.

    ``inputs``: parameter name -> file paths it reads (a layer, a table, a model; a folder product too).
    ``outputs``: parameter name -> file it writes. ``folders``: parameter name -> folder it writes into;
    ``replaces_folder``: that folder is emptied first (OVERWRITE), so no input may lie inside it."""
    folders = folders or {}
    ins: Dict[str, Tuple[str, str]] = {}
    for name, paths in inputs.items():
        for p in paths:
            if p:
                ins.setdefault(_key(p), (name, p))
    seen: Dict[str, str] = {}
    for name, out in outputs.items():
        if not out:
            continue
        if os.path.isdir(out):
            raise SatClassifyError(f"{name} '{out}' is a folder: give a file name (e.g. "
                                   f"{os.path.join(out, 'output.tif')})")
        for _in_key, (in_name, in_path) in ins.items():
            if same_file(out, in_path):
                raise SatClassifyError(
                    f"{name} '{out}' is the input {in_name}: writing it would destroy the input. "
                    "Choose another output file")
            for ext in SIDECARS:
                if same_file(out + ext, in_path):
                    raise SatClassifyError(
                        f"{name} '{out}' would replace {in_name} '{in_path}' (GDAL writes '{out}{ext}' beside "
                        "it): choose another output file")
        k = _key(out)
        if k in seen:
            raise SatClassifyError(f"{name} and {seen[k]} are the same file '{out}': one would overwrite the "
                                   "other. Give each output its own file")
        seen[k] = name
    for name, folder in folders.items():
        if not folder:
            continue
        if os.path.isfile(folder):
            raise SatClassifyError(f"{name} '{folder}' is a file, not a folder: give a folder name")
        for _in_key, (in_name, in_path) in ins.items():
            if replaces_folder and inside(in_path, folder):
                raise SatClassifyError(
                    f"{name} '{folder}' contains the input {in_name} '{in_path}' and would be emptied first "
                    "(OVERWRITE): choose another output folder")
        for out_name, out in outputs.items():
            if out and inside(out, folder):
                raise SatClassifyError(f"{out_name} '{out}' lies inside the output folder {name} '{folder}': "
                                       "choose a file outside it")
