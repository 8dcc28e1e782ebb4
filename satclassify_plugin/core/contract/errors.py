"""Errors raised by core code. Algorithms turn them into QgsProcessingException."""


class SatClassifyError(Exception):
    """A problem with the user's input or data, with a message that names the fix."""


# --- operating-system and GDAL I/O errors as messages --------------------------------------------------------
import errno as _errno  # noqa: E402

#: what an I/O failure means for the user, and what to do
_ERRNO_TEXT = {
    _errno.ENOSPC: ("the disk is full", "free space or choose another folder"),
    getattr(_errno, "EDQUOT", -1): ("the disk quota is exceeded", "free space or choose another folder"),
    _errno.EROFS: ("the disk is read-only", "choose a folder you can write to"),
    _errno.EACCES: ("permission denied", "choose a folder you can write to, or fix its permissions"),
    _errno.EPERM: ("operation not permitted (an immutable file or folder?)", "choose another folder"),
    _errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    _errno.EISDIR: ("it is a folder", "give a file name"),
    _errno.ENAMETOOLONG: ("the path is too long", "choose a shorter path"),
    _errno.ENOENT: ("it does not exist", "check the path"),
}
#: GDAL reports the same conditions in its messages (RuntimeError with UseExceptions)
_GDAL_TEXT = (
    ("no space left on device", _errno.ENOSPC),
    ("disk quota", getattr(_errno, "EDQUOT", -1)),
    ("read-only file system", _errno.EROFS),
    ("permission denied", _errno.EACCES),
    ("operation not permitted", _errno.EPERM),
)
_DAMAGED = (
    "tiffread",
    "tiffreadencoded",
    "ireadblock failed",
    "read error",
    "truncated",
    "unexpected end",
    "failed to read",
    "cannot read",
    "not a tiff",
    "corrupt",
)


def io_error_message(e: BaseException, path: str = "") -> str:
    """A user message for an OSError or a GDAL RuntimeError: what failed, why, and the fix.

    ``path``: the file the caller was writing (named instead of a temporary name in the error)."""
    code = getattr(e, "errno", None)
    text = str(e).strip()
    if code is None:
        low = text.lower()
        code = gdal_error_code(text)
        if code is None:
            if any(s in low for s in _DAMAGED):
                return (
                    f"GDAL could not read {path or 'a file'}: {text.rstrip('.')}. The file is truncated or "
                    "damaged: copy or download it again"
                )
            if path and "write" in low:
                return (
                    f"cannot write '{path}': GDAL reported '{text}': check that the disk has free space and "
                    "the folder is writable"
                )
            return f"GDAL failed on {path or 'a file'}: {text}"
    where = path or getattr(e, "filename", None) or ""
    why, fix = os_error_text(e, code)
    return f"cannot write '{where}': {why}: {fix}" if where else f"a file operation failed: {why}: {fix}"


def gdal_error_code(text: str):
    """The errno a GDAL error message describes (disk full, read-only, ...), None when it names none."""
    low = text.lower()
    return next((c for s, c in _GDAL_TEXT if s in low), None)


def os_error_text(e: BaseException, code=None):
    """(what happened, what to do) for an OSError's errno (or ``code``)."""
    code = getattr(e, "errno", None) if code is None else code
    return _ERRNO_TEXT.get(code, (getattr(e, "strerror", None) or str(e), "check the path and the disk"))


def is_gdal_error(e: BaseException) -> bool:
    """A RuntimeError raised inside GDAL's Python bindings (osgeo), as opposed to a programming error."""
    import os
    import traceback

    if not isinstance(e, RuntimeError):
        return False
    marker = os.sep + "osgeo" + os.sep
    return any(marker in f.filename for f in traceback.extract_tb(e.__traceback__))
