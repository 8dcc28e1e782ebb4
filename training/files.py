"""Files the training CLI writes: never over one of its inputs, always whole, and a failure to write is one
line ``cannot write '<path>': <reason>: <what to do>`` (a :class:`TrainingError`, so exit code 2).

* :func:`atomic_open` writes through a temporary file in the target's folder, then ``os.replace``: a full
  disk, a read-only folder or an interrupted run never leave a half-written file (the old one, if any,
  stays). Writers get a Python file object (``torch.save`` to a *path* reports a full disk as an opaque
  ``RuntimeError`` from its C++ writer; through a file object it is the ``OSError`` it is).
* :func:`make_dir` creates an output folder (``--out`` of train, the folder of an export);
  :func:`check_folder` says early, creating nothing, when it would fail for a file in the way.
* :func:`refuse_inputs` refuses an output that names an input (``core.paths.same_file``: symlinks, hard
  links, relative paths).
"""
import errno
import os
import uuid
from contextlib import contextmanager

from satclassify_plugin.core.contract.errors import os_error_text
from satclassify_plugin.core.contract.paths import same_file

from .errors import TrainingError


def write_error(path, e):
    """The one-line :class:`TrainingError` for an ``OSError`` met while writing ``path``: the shared errno
    table of ``core.errors`` (the plugin's tools say the same), plus a file in the way of a folder."""
    if e.errno == errno.EEXIST:
        what = "it" if not e.filename or same_file(str(e.filename), path) else f"'{e.filename}'"
        why, fix = f"{what} is a file, not a folder", "choose another --out (or move that file)"
    else:
        why, fix = os_error_text(e)
    return TrainingError(f"cannot write '{path}': {why}: {fix}")


@contextmanager
def atomic_open(path, mode="wb", **kw):
    """``with atomic_open(path) as f: ...`` writes ``f`` to a temporary file next to ``path`` and moves it
    onto ``path`` when the block succeeds. On any error the temporary file is removed and ``path`` is left
    as it was; an ``OSError`` becomes :func:`write_error`."""
    if "b" not in mode:
        kw.setdefault("encoding", "utf-8")
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            with open(tmp, mode, **kw) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            if os.path.isdir(path):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            os.replace(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.remove(tmp)
    except OSError as e:
        raise write_error(path, e) from e


def make_dir(folder, for_path=None):
    """``os.makedirs(folder, exist_ok=True)``; what stops it is :func:`write_error` for ``for_path`` (the file
    to be written there; default the folder itself)."""
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.path.isdir(folder):  # a file of that name
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), folder)
    except OSError as e:
        raise write_error(for_path or folder, e) from e
    return folder


def check_folder(folder):
    """Fail now with what :func:`make_dir` would meet later if ``folder`` cannot become a folder: it is a file,
    or its nearest existing parent is (nothing is created)."""
    p = os.path.abspath(folder)
    if os.path.exists(p) and not os.path.isdir(p):
        raise write_error(folder, FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), folder))
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    if not os.path.isdir(p):
        raise write_error(folder, NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), folder))


def refuse_inputs(out_name, out, inputs, fix=None):
    """Refuse writing ``out`` (named ``out_name``, e.g. "--out") if it is one of ``inputs`` (label -> path):
    writing it would destroy that input. ``fix``: what to do (default: give ``out_name`` another path)."""
    for label, path in inputs.items():
        if same_file(out, path):
            raise TrainingError(f"{out_name} '{out}' is the {label} '{path}': writing it would destroy that "
                                f"input. {fix or f'Give {out_name} another path'}")
