"""Output paths that would destroy data: an output on an input, two outputs on one file, an output that is a
folder, a device, a FIFO or a socket. One check for every tool (called by the algorithm base class before a tool
runs) and the training CLI.

Also the shared rules of the temp-then-rename writers (``core.raster.AtomicOutput``, ``training.files.atomic_open``,
``core.contract.dataset.DatasetWriter``, the training run lock):

* :func:`check_regular_target` - the target of a rename must be absent or a regular file: renaming a new file
  over ``/dev/null``, a FIFO or a socket would replace it (as root, the system's ``/dev/null``).
* :func:`split_layer` - ``file.gpkg|layername=name``: one layer of a GeoPackage (the writer adds or replaces that
  layer only, the file's other layers stay).
* :func:`temp_tag` / :func:`stale_entries` - temporary names carry the writer's process id (and host), so a later
  run of the same output removes what an interrupted run (SIGTERM, a crash) left behind, and never what a live
  process is still writing.

Pure Python (no QGIS, no GDAL): the training env imports it too.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
import uuid
import zlib
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

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
            "which SatClassify did not write: rename or move that style, or choose another output file"
        )


def not_regular(path: str) -> Optional[str]:
    """What ``path`` is when it exists and is not a regular file (following symlinks): "a folder", "a character
    device", "a block device", "a FIFO (named pipe)", "a socket", "a broken symbolic link"; None when it is
    absent or a regular file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else None
    except OSError:
        return None  # cannot be inspected (permissions, a file in the path): the write reports what stops it
    if stat.S_ISREG(mode):
        return None
    for test, what in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def regular_target_error(path: str, fix: str = "choose another output file") -> Optional[str]:
    """The one-line reason why a temp-then-rename writer must not replace ``path`` (None when it may): not a
    regular file, or a name too long for the writer's temporary name (:func:`name_length_error`)."""
    what = not_regular(path)
    if what is None:
        return name_length_error(path)
    return f"cannot write '{path}': it is {what}, not a regular file, and the new file would replace it: {fix}"


#: bytes a writer adds to an output's file name for its temporary files: ``.<name>.<pid>-<8 hex>.part<ext>`` plus
#: GDAL's ``.aux.xml`` (31 with a 7-digit pid), ``.<stem>.<tag>.part-layer.gpkg-journal`` (37 for a .gpkg), with room
TEMP_NAME_ROOM = 48


def name_max(folder: str) -> int:
    """The longest file name (bytes) the file system of ``folder`` (or its nearest existing parent) takes."""
    d = os.path.abspath(folder or ".")
    while d and not os.path.isdir(d):
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    try:
        return int(os.pathconf(d, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def name_length_error(path: str, name: str = "") -> Optional[str]:
    """The one-line reason why ``path``'s file name is too long to be written under a temporary name and renamed
    (None when it fits): checked before anything is written, so the user reads their own path and the limit
    instead of the system's "File name too long" about a hidden temporary file."""
    try:
        path_only = split_layer(path)[0]
    except SatClassifyError:  # a malformed '|option': the writer's own check names it
        path_only = path
    folder, base = os.path.split(os.path.abspath(path_only))
    n = len(os.fsencode(base))
    limit = name_max(folder) - TEMP_NAME_ROOM
    if n <= limit:
        return None
    who = f"{name} '{path}'" if name else f"'{path}'"
    return (
        f"cannot write {who}: its file name is {n} characters (bytes) long, but the tools write each output "
        f"under a temporary name up to {TEMP_NAME_ROOM} bytes longer and this file system allows "
        f"{limit + TEMP_NAME_ROOM}: choose a file name of at most {limit} characters"
    )


def check_regular_target(path: str, fix: str = "choose another output file") -> None:
    """Refuse (:class:`SatClassifyError`) a write target that exists and is not a regular file (a device, a FIFO,
    a socket, a folder): the writers rename a new file onto the target, which would replace it."""
    msg = regular_target_error(path, fix)
    if msg:
        raise SatClassifyError(msg)


#: ``|layername=`` of a GeoPackage destination (QGIS's URI form of one layer of a file)
_LAYERNAME = re.compile(r"^layername=(.*)$", re.I)


def split_layer(target: str) -> Tuple[str, Optional[str]]:
    """``'file.gpkg|layername=roads'`` -> ``('file.gpkg', 'roads')``; a plain path -> ``(path, None)``. Any other
    ``|option`` (layerid, subset, geometrytype) names no layer to write: refused with the fix."""
    if not target or "|" not in target:
        return target, None
    path, *opts = target.split("|")
    layer = None
    for opt in opts:
        m = _LAYERNAME.match(opt.strip())
        if not m or layer is not None:
            raise SatClassifyError(
                f"output '{target}': only '|layername=<name>' can follow the file name of an "
                f"output (not '|{opt}'): give 'file.gpkg' or 'file.gpkg|layername=name'"
            )
        layer = m.group(1).strip()
    if not layer:
        raise SatClassifyError(
            f"output '{target}': the layer name after '|layername=' is empty: give 'file.gpkg|layername=name'"
        )
    return path, layer


# --- temporary names owned by a process ------------------------------------------------------------------------

#: 4 hex digits of the host name: a temporary file of another host's process is never judged dead here
HOST_ID = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"
#: what :func:`temp_tag` makes: <pid>-<host id><4 random hex digits>
TAG = r"(?P<pid>\d+)-(?P<host>[0-9a-f]{4})[0-9a-f]{4}"


def temp_tag() -> str:
    """A unique part for a temporary name that says who owns it: this process's id and host."""
    return f"{os.getpid()}-{HOST_ID}{uuid.uuid4().hex[:4]}"


def pid_alive(pid: int) -> bool:
    """Process ``pid`` exists on this host (this process counts as alive)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists (another user's)
        return True
    return True


def owner_dead(pid: int, host: str) -> bool:
    """The owner of a tagged temporary name is gone: a process of this host that no longer exists. A name made
    on another host (a shared disk) is never judged dead."""
    return host == HOST_ID and not pid_alive(pid)


def stale_entries(folder: str, pattern: str) -> List[str]:
    """Paths in ``folder`` whose name matches ``pattern`` (a regular expression holding :data:`TAG`, matched as a
    whole) and whose owner is dead (:func:`owner_dead`): what an interrupted run left behind."""
    rx = re.compile(pattern)
    out: List[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return out
    for name in sorted(names):
        m = rx.fullmatch(name)
        if m and owner_dead(int(m.group("pid")), m.group("host")):
            out.append(os.path.join(folder, name))
    return out


def remove_stale(folder: str, pattern: str) -> List[str]:
    """Remove :func:`stale_entries` (files, or folders with their content); returns what was removed. Errors are
    ignored: a leftover that cannot be removed stays, and nothing else depends on it."""
    import shutil

    removed = []
    for p in stale_entries(folder, pattern):
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.remove(p)
            removed.append(p)
        except OSError:
            pass
    return removed


def temp_pattern(stem: str, suffix: str) -> str:
    r"""The pattern of the temporary names ``.<stem>.<tag><suffix>`` a writer gives (``suffix``: a regular
    expression, e.g. ``r"\.part.*"`` for the temporary file and its sidecars)."""
    return r"\." + re.escape(stem) + r"\." + TAG + suffix


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


def _file_and_layer(target: str) -> Tuple[str, Optional[str]]:
    """``file.gpkg|layername=x`` -> (file, 'x'); a plain path -> (path, None); other ``|`` options are checked by
    the writer (:func:`split_layer`), here only the file matters."""
    path, _, rest = target.partition("|")
    m = _LAYERNAME.match(rest) if rest else None
    return path, (m.group(1) if m and m.group(1) else None)


def check_outputs(
    inputs: Mapping[str, Iterable[str]],
    outputs: Mapping[str, str],
    folders: Optional[Mapping[str, str]] = None,
    replaces_folder: bool = False,
) -> None:
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
    seen: Dict[str, List[Tuple[str, Optional[str]]]] = {}
    for name, target in outputs.items():
        if not target:
            continue
        out, layer = _file_and_layer(target)
        if os.path.isdir(out):
            raise SatClassifyError(
                f"{name} '{out}' is a folder: give a file name (e.g. {os.path.join(out, 'output.tif')})"
            )
        what = not_regular(out)
        if what:
            raise SatClassifyError(
                f"{name} '{out}' is {what}, not a regular file: the tool writes a new file and "
                f"renames it onto the output, which would replace it. Choose an output file name"
            )
        too_long = name_length_error(out, name)
        if too_long:
            raise SatClassifyError(too_long)
        for _in_key, (in_name, in_path) in ins.items():
            if same_file(out, in_path):
                raise SatClassifyError(
                    f"{name} '{out}' is the input {in_name}: writing it would destroy the input. "
                    "Choose another output file"
                )
            for ext in SIDECARS:
                if same_file(out + ext, in_path):
                    raise SatClassifyError(
                        f"{name} '{out}' would replace {in_name} '{in_path}' (GDAL writes '{out}{ext}' beside "
                        "it): choose another output file"
                    )
        k = _key(out)
        for other, other_layer in seen.get(k, ()):
            if layer is None or other_layer is None:
                raise SatClassifyError(
                    f"{name} and {other} are the same file '{out}': one would overwrite the other"
                    + (" (the whole file is written beside one of its layers)" if (layer or other_layer) else "")
                    + ". Give each output its own file (or two layers: 'file.gpkg|layername=a', "
                    "'file.gpkg|layername=b')"
                )
            if layer.lower() == other_layer.lower():  # GeoPackage table names are case-insensitive
                raise SatClassifyError(
                    f"{name} and {other} are the same layer '{layer}' of '{out}': one would replace the other. "
                    "Give each output its own layer name"
                )
        seen.setdefault(k, []).append((name, layer))
    for name, folder in folders.items():
        if not folder:
            continue
        if os.path.isfile(folder):
            raise SatClassifyError(f"{name} '{folder}' is a file, not a folder: give a folder name")
        for _in_key, (in_name, in_path) in ins.items():
            if replaces_folder and inside(in_path, folder):
                raise SatClassifyError(
                    f"{name} '{folder}' contains the input {in_name} '{in_path}' and would be emptied first "
                    "(OVERWRITE): choose another output folder"
                )
        for out_name, out in outputs.items():
            if out and inside(out, folder):
                raise SatClassifyError(
                    f"{out_name} '{out}' lies inside the output folder {name} '{folder}': choose a file outside it"
                )


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``hashlib`` algorithm name), read in 1 MiB blocks: downloads' MD5 checks and
    the model list's SHA-256 use it."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
