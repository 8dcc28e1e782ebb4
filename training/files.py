"""Files the training CLI writes: never over one of its inputs, always whole, and a failure to write is one
line ``cannot write '<path>': <reason>: <what to do>`` (a :class:`TrainingError`, so exit code 2).

* :func:`atomic_open` writes through a temporary file in the target's folder, then ``os.replace``: a full
  disk, a read-only folder or an interrupted run never leave a half-written file (the old one, if any,
  stays). Writers get a Python file object (``torch.save`` to a *path* reports a full disk as an opaque
  ``RuntimeError`` from its C++ writer; through a file object it is the ``OSError`` it is). The target must be
  absent or a regular file: a device (``--out /dev/null``), a FIFO or a socket would be replaced by the rename,
  so it is refused (``core.contract.paths.check_regular_target``). The temporary name carries the process id
  (``core.contract.paths.temp_tag``): what an interrupted run (SIGTERM, a crash) left for the same target is removed by
  the next write of it, never while its process lives.
* :func:`make_dir` creates an output folder (``--out`` of train, the folder of an export);
  :func:`check_folder` says early, creating nothing, when it would fail for a file in the way.
* :func:`refuse_inputs` refuses an output that names an input (``core.contract.paths.same_file``: symlinks, hard
  links, relative paths), or that is not a file a rename may replace (a device, a FIFO, a socket): early, before
  the work.
"""

import errno
import os
import socket
from contextlib import contextmanager
from typing import IO, Any, Iterator, Mapping, Optional, Tuple

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from satclassify_plugin.core.contract.errors import os_error_text
from satclassify_plugin.core.contract.paths import (
    HOST_ID,
    owner_dead,
    regular_target_error,
    remove_stale,
    same_file,
    temp_pattern,
    temp_tag,
)

from .errors import TrainingError


def write_error(path: str, e: OSError) -> TrainingError:
    """The one-line :class:`TrainingError` for an ``OSError`` met while writing ``path``: the shared errno
    table of ``core.contract.errors`` (the plugin's tools say the same), plus a file in the way of a folder."""
    if e.errno == errno.EEXIST:
        what = "it" if not e.filename or same_file(str(e.filename), path) else f"'{e.filename}'"
        why, fix = f"{what} is a file, not a folder", "choose another --out (or move that file)"
    else:
        why, fix = os_error_text(e)
    return TrainingError(f"cannot write '{path}': {why}: {fix}")


@contextmanager
def atomic_open(path: str, mode: str = "wb", **kw: Any) -> Iterator[IO[Any]]:
    """``with atomic_open(path) as f: ...`` writes ``f`` to a temporary file next to ``path`` and moves it
    onto ``path`` when the block succeeds. On any error the temporary file is removed and ``path`` is left
    as it was; an ``OSError`` becomes :func:`write_error`."""
    if "b" not in mode:
        kw.setdefault("encoding", "utf-8")
    folder, name = os.path.split(os.path.abspath(path))
    refuse_special(path)
    remove_stale(folder, temp_pattern(name, r"\.tmp"))
    tmp = os.path.join(folder, f".{name}.{temp_tag()}.tmp")
    try:
        try:
            with open(tmp, mode, **kw) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            if os.path.isdir(path):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            refuse_special(path)  # it may have appeared while the block ran
            os.replace(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.remove(tmp)
    except OSError as e:
        raise write_error(path, e) from e


def refuse_special(path: str, fix: str = "choose another --out (a file name)") -> None:
    """Refuse (:class:`TrainingError`, one line naming the path and the fix) a write target that exists and is
    not a regular file: a device, a FIFO, a socket. A folder is left to the callers' own messages."""
    if os.path.isdir(path):
        return
    msg = regular_target_error(path, fix)
    if msg:
        raise TrainingError(msg)


def make_dir(folder: str, for_path: Optional[str] = None) -> str:
    """``os.makedirs(folder, exist_ok=True)``; what stops it is :func:`write_error` for ``for_path`` (the file
    to be written there; default the folder itself)."""
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.path.isdir(folder):  # a file of that name
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), folder)
    except OSError as e:
        raise write_error(for_path or folder, e) from e
    return folder


def check_folder(folder: str) -> None:
    """Fail now with what :func:`make_dir` would meet later if ``folder`` cannot become a folder: it is a file,
    or its nearest existing parent is (nothing is created)."""
    p = os.path.abspath(folder)
    if os.path.exists(p) and not os.path.isdir(p):
        raise write_error(folder, FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), folder))
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    if not os.path.isdir(p):
        raise write_error(folder, NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), folder))


def refuse_inputs(out_name: str, out: str, inputs: Mapping[str, str], fix: Optional[str] = None) -> None:
    """Refuse writing ``out`` (named ``out_name``, e.g. "--out") if it is one of ``inputs`` (label -> path):
    writing it would destroy that input. ``fix``: what to do (default: give ``out_name`` another path). An ``out``
    that is a device, a FIFO or a socket is refused too (:func:`refuse_special`): the write would replace it."""
    refuse_special(out, fix or f"give {out_name} a file name")
    for label, path in inputs.items():
        if same_file(out, path):
            raise TrainingError(
                f"{out_name} '{out}' is the {label} '{path}': writing it would destroy that "
                f"input. {fix or f'Give {out_name} another path'}"
            )


#: the lock file of a run folder (``python -m training train``): held while a training writes there
RUN_LOCK = ".satclassify-train.lock"


class RunLock:
    """One training at a time per run folder: :meth:`take` locks ``<folder>/.satclassify-train.lock`` (an
    exclusive ``flock``; the file says which process holds it) or refuses with :func:`busy_error`; the kernel
    releases the lock when the process ends in any way (SIGKILL, a crash), so a lock left by a dead run is never
    in the way. Without ``fcntl`` (Windows) the file is created with ``O_EXCL`` and one whose process is gone
    (``core.contract.paths.pid_alive``) is taken over. :meth:`release` removes the file."""

    def __init__(self):
        self.fd, self.path = None, None

    def take(self, folder: str) -> "RunLock":
        path = os.path.join(folder, RUN_LOCK)
        if fcntl is None:
            return self._take_excl(path, folder)
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as e:
                raise write_error(path, e) from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = _read_owner(fd)
                os.close(fd)
                raise busy_error(folder, owner) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except OSError:
                same = False
            if not same:  # removed by its previous holder between our open and flock: lock the new file
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, _owner_text().encode())
            self.fd, self.path = fd, path
            return self

    def _take_excl(self, path, folder):
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
            except FileExistsError:
                with open(path, "rb") as f:
                    owner = _parse_owner(f.read(200))
                if owner and owner_dead(owner[0], owner[1]):
                    os.remove(path)  # left by a run that is gone
                    continue
                raise busy_error(folder, owner) from None
            except OSError as e:
                raise write_error(path, e) from e
            os.write(fd, _owner_text().encode())
            self.fd, self.path = fd, path
            return self
        raise busy_error(folder, None)

    def release(self) -> None:
        if self.fd is None or self.path is None:
            return
        try:
            os.remove(self.path)  # still holding the lock: a waiting process re-checks the file it locked
        except OSError:
            pass
        os.close(self.fd)
        self.fd = self.path = None


def lock_owner(folder: str) -> Optional[Tuple[int, str]]:
    """(pid, host id) of the live training holding ``folder``'s run lock, ``(0, "")`` when it cannot be told
    who, None when the folder is free."""
    path = os.path.join(folder, RUN_LOCK)
    if not os.path.exists(path):
        return None
    if fcntl is None:
        with open(path, "rb") as f:
            owner = _parse_owner(f.read(200))
        return owner if owner and not owner_dead(owner[0], owner[1]) else None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_owner(fd) or (0, "")
    finally:
        os.close(fd)  # closing drops a lock we got: the file was left by a run that is gone
    return None


def busy_error(folder: str, owner: Optional[Tuple[int, str]]) -> TrainingError:
    pid = f" (process {owner[0]}{'' if owner[1] == HOST_ID else ' on another computer'})" if owner and owner[0] else ""
    return TrainingError(
        f"--out '{folder}' is in use by another training{pid}: two runs in one folder would mix "
        "their checkpoints. Wait for it to finish, or choose another --out folder"
    )


def _owner_text():
    return f"{os.getpid()} {HOST_ID} {socket.gethostname()}\n"


def _parse_owner(data):
    parts = data.decode("utf-8", "replace").split()
    if len(parts) >= 2 and parts[0].isdigit():
        return int(parts[0]), parts[1]
    return None


def _read_owner(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return _parse_owner(os.read(fd, 200))
    except OSError:
        return None
