"""The model catalogue: the ONNX models the tools offer in a list, so a user picks a model without typing a path.

Two kinds of entries, shipped ones first:

* **shipped**: every ``.onnx`` file in the plugin's ``resources/onnx/`` folder (the plugin zip carries them); the
  id is the file name without ``.onnx`` (``eurosat_rgb_satimnet``).
* **user**: models the user added (Plugins > SatClassify > Manage models..., or :meth:`Catalogue.add_file` /
  :meth:`Catalogue.add_url`), kept in a user folder (``<QGIS profile>/satclassify/models``, or the folder named by
  the environment variable ``SATCLASSIFY_MODELS_DIR``) with a small JSON index (``index.json``: id, file, display
  name, where it came from, SHA-256, date added).

Adding validates before anything becomes visible: a local file's card is checked (the same checks the tools run:
:func:`~satclassify_plugin.core.classify.inference.load_model` on the CPU) and the file is copied in under a
temporary name, then renamed; a URL is downloaded with the plugin's one HTTP client
(:class:`~satclassify_plugin.core.net.HttpClient`: deadlines, retries, cancel) into a temporary folder, its
SHA-256 compared with the one the user gave, its card checked, and only then renamed in. A checksum mismatch, a
file that is not a SatClassify model or a failed download leaves nothing behind and says why.

:func:`card_summary` / :func:`summary_text` give what a user needs to choose: classes, bands, resolution, patch
size, figures (the card's ``training.metrics`` and any cross-validation block), dataset, licence, citation.

Pure Python (no qgis import), unit-tested without QGIS; needs onnxruntime only to read cards.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional
from urllib.parse import unquote, urlparse

from ..core.contract.errors import SatClassifyError
from ..core.contract.paths import file_digest

#: the models shipped in the plugin folder (the zip carries them)
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "onnx")
#: environment variable naming the user models folder (tests, qgis_process jobs); default: in the QGIS profile
ENV_DIR = "SATCLASSIFY_MODELS_DIR"
INDEX = "index.json"
INDEX_VERSION = 1
EXT = ".onnx"
_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CatalogueError(SatClassifyError):
    """A model could not be added, found or removed (the message says why and what to do)."""


@dataclass(frozen=True)
class Entry:
    id: str  # stable: what a saved Processing model or qgis_process passes as MODEL_ID
    path: str
    shipped: bool
    name: str = ""  # display name (default: the id)
    source: str = ""  # user models: the file or URL it came from
    sha256: str = ""
    added: str = ""  # user models: ISO date

    @property
    def label(self) -> str:
        """The id with where it comes from, for lists (``eurosat_rgb_satimnet (shipped)``)."""
        name = f"{self.name} [{self.id}]" if self.name and self.name != self.id else self.id
        return f"{name} ({'shipped' if self.shipped else 'added'})"


def user_dir(settings_dir: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> str:
    """The user models folder: ``$SATCLASSIFY_MODELS_DIR`` when set, else ``<settings_dir>/satclassify/models``
    (``settings_dir``: the QGIS profile folder, ``QgsApplication.qgisSettingsDirPath()``)."""
    env = os.environ if environ is None else environ
    folder = str(env.get(ENV_DIR, "") or "").strip()
    if folder:
        return os.path.abspath(os.path.expanduser(folder))
    if not settings_dir:
        settings_dir = os.path.join(os.path.expanduser("~"), ".satclassify")
    return os.path.join(settings_dir, "satclassify", "models")


def model_id_of(name: str) -> str:
    """A stable id from a file name or URL path segment: the stem, characters other than letters, digits, ``_``,
    ``.``, ``-`` replaced by ``_`` (``model``  when nothing is left)."""
    stem = os.path.basename(str(name).replace("\\", "/"))
    if stem.lower().endswith(EXT):
        stem = stem[: -len(EXT)]
    stem = _ID_CHARS.sub("_", stem).strip("._-")
    return stem or "model"


def sha256_of(path: str) -> str:
    return file_digest(path, "sha256")


def normalise_sha256(text: str) -> str:
    """A SHA-256 as 64 lower-case hex digits (``sha256:`` prefix and spaces allowed); else a clear error."""
    s = "".join(str(text or "").split()).lower()
    if s.startswith("sha256:"):
        s = s[len("sha256:") :]
    if not _SHA256.match(s):
        raise CatalogueError(
            f"the expected SHA-256 must be 64 hexadecimal digits (e.g. the output of "
            f"'sha256sum model.onnx'), not '{text}'"
        )
    return s


def read_card(path: str):
    """The model card of ``path`` after the checks the tools run (ONNX file, card present and valid, bands and
    classes matching the graph): :func:`~satclassify_plugin.core.classify.inference.load_model` on the CPU."""
    from ..core.classify.inference import load_model

    try:
        model = load_model(path, "CPU", threads=1)
    except SatClassifyError as e:
        raise CatalogueError(f"'{os.path.basename(path)}' is not a usable SatClassify model: {e}") from None
    except Exception as e:  # onnxruntime refuses a corrupt graph with its own exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CatalogueError(f"'{os.path.basename(path)}' is not a usable ONNX model: {first}") from None
    card = model.card
    del model  # the session (and its copy of the weights) goes now
    return card


class Catalogue:
    """The shipped models of ``shipped_folder`` and the user models of ``user_folder`` (see the module docstring)."""

    def __init__(self, user_folder: str, shipped_folder: Optional[str] = None):
        self.user_folder = user_folder
        self.shipped_folder = SHIPPED_DIR if shipped_folder is None else shipped_folder

    # -- listing ---------------------------------------------------------------------------------------------
    def shipped(self) -> List[Entry]:
        folder = self.shipped_folder
        if not os.path.isdir(folder):
            return []
        return [
            Entry(model_id_of(f), os.path.join(folder, f), True)
            for f in sorted(os.listdir(folder))
            if f.lower().endswith(EXT) and not f.startswith(".")
        ]

    def _index(self) -> Dict[str, Any]:
        path = os.path.join(self.user_folder, INDEX)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {"schema_version": INDEX_VERSION, "models": []}
        except (OSError, ValueError) as e:
            raise CatalogueError(f"the model index {path} cannot be read ({e}): fix or delete it") from None
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise CatalogueError(f"the model index {path} has no 'models' list: fix or delete it")
        return {"schema_version": INDEX_VERSION, "models": [m for m in models if isinstance(m, dict)]}

    def _write_index(self, index: Dict[str, Any]) -> None:
        os.makedirs(self.user_folder, exist_ok=True)
        path = os.path.join(self.user_folder, INDEX)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(index, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    def user(self) -> List[Entry]:
        """The user models whose file is there, in the order they were added."""
        out, seen = [], {e.id for e in self.shipped()}
        for m in self._index()["models"]:
            mid, file = str(m.get("id", "")), str(m.get("file", ""))
            path = os.path.join(self.user_folder, os.path.basename(file))
            if not mid or mid in seen or not file or not os.path.isfile(path):
                continue
            seen.add(mid)
            out.append(
                Entry(
                    mid,
                    path,
                    False,
                    str(m.get("name") or mid),
                    str(m.get("source") or ""),
                    str(m.get("sha256") or ""),
                    str(m.get("added") or ""),
                )
            )
        return out

    def entries(self) -> List[Entry]:
        """Shipped models (by file name), then user models (in the order added)."""
        return self.shipped() + self.user()

    def ids(self) -> List[str]:
        return [e.id for e in self.entries()]

    def default_id(self) -> Optional[str]:
        """The first shipped model (None when the plugin ships none)."""
        shipped = self.shipped()
        return shipped[0].id if shipped else None

    def get(self, model_id: str) -> Entry:
        for e in self.entries():
            if e.id == model_id:
                return e
        have = ", ".join(self.ids()) or "none"
        raise CatalogueError(
            f"no model '{model_id}' in the model list (models: {have}): add it with Plugins > "
            "SatClassify > Manage models..., or give the .onnx file as MODEL"
        )

    # -- adding ----------------------------------------------------------------------------------------------
    def _new_id(self, wanted: Optional[str], base: str, sha256: str) -> Optional[str]:
        """The id for a new model: ``wanted`` (an error when taken), else ``base`` or ``base_2``, ``base_3``...
        None when the same file (same SHA-256) is already in the list under ``base`` (nothing to add)."""
        taken = {e.id: e for e in self.entries()}
        if wanted:
            mid = model_id_of(wanted)
            if mid in taken:
                if not taken[mid].shipped and taken[mid].sha256 == sha256:
                    return None
                raise CatalogueError(
                    f"the model list already has a model '{mid}'"
                    f"{' (shipped with the plugin)' if taken[mid].shipped else ''}: choose "
                    "another name, or remove that model first"
                )
            return mid
        for e in taken.values():
            if not e.shipped and e.sha256 == sha256:
                return None
        mid, n = base, 1
        while mid in taken or os.path.exists(os.path.join(self.user_folder, mid + EXT)):
            n += 1
            mid = f"{base}_{n}"
        return mid

    def _install(self, tmp_path: str, mid: str, name: str, source: str, sha256: str) -> Entry:
        """Rename the checked ``tmp_path`` (inside the user folder) to ``<id>.onnx`` and record it in the index."""
        dest = os.path.join(self.user_folder, mid + EXT)
        index = self._index()
        os.replace(tmp_path, dest)
        index["models"] = [m for m in index["models"] if m.get("id") != mid]
        entry = {
            "id": mid,
            "file": mid + EXT,
            "name": name or mid,
            "source": source,
            "sha256": sha256,
            "added": datetime.date.today().isoformat(),
        }
        index["models"].append(entry)
        try:
            self._write_index(index)
        except OSError:
            os.remove(dest)
            raise
        return self.get(mid)

    def _existing(self, sha256: str) -> Entry:
        return next(e for e in self.user() if e.sha256 == sha256)

    def add_file(
        self,
        path: str,
        model_id: Optional[str] = None,
        name: Optional[str] = None,
        log: Callable[[str], None] = lambda m: None,
    ) -> Entry:
        """Add a local ``.onnx`` file (copied into the user folder) after checking its card. Returns the entry;
        the same file added twice is one entry."""
        if not path or not os.path.isfile(path):
            raise CatalogueError(f"model file '{path}' does not exist")
        card = read_card(path)
        sha = sha256_of(path)
        mid = self._new_id(model_id, model_id_of(path), sha)
        if mid is None:
            e = self._existing(sha) if not model_id else self.get(model_id_of(model_id))
            log(f"{os.path.basename(path)} is already in the model list as '{e.id}'")
            return e
        os.makedirs(self.user_folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{mid}.", suffix=".part", dir=self.user_folder)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            if sha256_of(tmp) != sha:
                raise CatalogueError(f"copying {path} into {self.user_folder} gave a different file: check the disk")
            entry = self._install(tmp, mid, name or "", os.path.abspath(path), sha)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        log(f"added model '{mid}' ({card.architecture}, {len(card.heads[0].classes)} classes) from {path}")
        return entry

    def add_url(
        self,
        url: str,
        sha256: str,
        model_id: Optional[str] = None,
        name: Optional[str] = None,
        download: Optional[Callable[[str, str], Any]] = None,
        monitor=None,
        log: Callable[[str], None] = lambda m: None,
        proxy=None,
    ) -> Entry:
        """Download ``url`` (http or https), check its SHA-256 against ``sha256`` and its card, then add it.

        ``download(url, dest)``: default the plugin's :meth:`HttpClient.download
        <satclassify_plugin.core.net.HttpClient.download>` (``monitor``: progress, messages, cancel; ``proxy``: a
        ``core.net.ProxyConfig``, default the standard proxy variables). The file
        goes to a temporary folder inside the user folder; a failed download, a checksum mismatch or a file that
        is not a model removes it: nothing is added."""
        want = normalise_sha256(sha256)
        parsed = urlparse(str(url or "").strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CatalogueError(f"'{url}' is not an http(s) URL: give the address of an .onnx file")
        url = parsed.geturl()
        base = model_id_of(unquote(parsed.path.rstrip("/").rsplit("/", 1)[-1]))
        for e in self.user():
            if e.sha256 == want and (not model_id or e.id == model_id_of(model_id)):
                log(f"{url} is already in the model list as '{e.id}' (same SHA-256)")
                return e
        client = None
        if download is None:
            from ..core.net import HttpClient

            client = HttpClient(monitor=monitor, proxy=proxy)
            download = client.download
        os.makedirs(self.user_folder, exist_ok=True)
        tmpdir = tempfile.mkdtemp(prefix=".download-", dir=self.user_folder)
        try:
            tmp = os.path.join(tmpdir, base + EXT)
            download(url, tmp)
            if not os.path.isfile(tmp):
                raise CatalogueError(f"the download of {url} gave no file")
            got = sha256_of(tmp)
            if got != want:
                raise CatalogueError(
                    f"checksum mismatch for {url}: the downloaded file has SHA-256 {got}, expected "
                    f"{want}. Nothing was added (the file was removed): check the URL and the "
                    "checksum"
                )
            try:
                card = read_card(tmp)
            except CatalogueError as e:
                raise CatalogueError(f"{e} (downloaded from {url}; nothing was added)") from None
            mid = self._new_id(model_id, base, got)
            if mid is None:
                return self._existing(got)
            entry = self._install(tmp, mid, name or "", url, got)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
            if client is not None:
                client.session.close()
        log(
            f"added model '{mid}' ({card.architecture}, {len(card.heads[0].classes)} classes) from {url}, "
            "SHA-256 verified"
        )
        return entry

    def remove(self, model_id: str) -> None:
        """Remove a user model (its file and its index entry); shipped models cannot be removed."""
        e = self.get(model_id)
        if e.shipped:
            raise CatalogueError(f"'{model_id}' is shipped with the plugin and cannot be removed")
        index = self._index()
        index["models"] = [m for m in index["models"] if m.get("id") != model_id]
        self._write_index(index)
        if os.path.exists(e.path):
            os.remove(e.path)


# -- card summaries ------------------------------------------------------------------------------------------
def _numbers(d: Any, prefix: str = "", depth: int = 0) -> Dict[str, float]:
    """Numeric leaves of a (nested) dict as ``{"a.b": value}`` (lists, e.g. per-class arrays, are left out)."""
    out: Dict[str, float] = {}
    if not isinstance(d, Mapping) or depth > 2:
        return out
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float)):
            out[key] = float(v)
        elif isinstance(v, Mapping):
            out.update(_numbers(v, key + ".", depth + 1))
    return out


#: blocks of a card's ``training`` section that hold figures (the first are what ``python -m training export``
#: writes; the others what a card may add: cross-validation, evaluation on a named set)
FIGURE_BLOCKS = ("metrics", "crossval", "cross_validation", "figures", "evaluation")
_TEXT_KEYS = {
    "licence": ("licence", "license"),
    "citation": ("citation",),
    "url": ("url", "homepage"),
    "description": ("description",),
}


def _text(*sources: Any, keys=()) -> str:
    for src in sources:
        if isinstance(src, Mapping):
            for k in keys:
                v = src.get(k)
                if isinstance(v, str) and v.strip():
                    return v.strip()
    return ""


def card_summary(card) -> Dict[str, Any]:
    """What a user needs to choose a model, from a :class:`~satclassify_plugin.core.contract.modelcard.ModelCard`:
    architecture, task, classes (first head), bands, resolution, patch size, input clip, figures, dataset,
    licence, citation, url, description, epochs."""
    training = card.training if isinstance(card.training, Mapping) else {}
    dataset = training.get("dataset")
    ds = dataset if isinstance(dataset, Mapping) else {}
    head = card.heads[0]
    figures: Dict[str, float] = {}
    for block in FIGURE_BLOCKS:
        v = training.get(block)
        if isinstance(v, Mapping):
            figures.update(_numbers(v, "" if block == "metrics" else block + "."))
    out = {
        "architecture": card.architecture,
        "task": "multi-label" if head.multilabel else "single-label",
        "heads": [h.name for h in card.heads],
        "classes": [c.name for c in head.classes],
        "bands": list(card.bands),
        "resolution_m": card.resolution_m,
        "tile_size": card.tile_size,
        "input_clip": card.input_clip,
        "figures": figures,
        "dataset": (str(ds.get("name") or "") if ds else (str(dataset) if isinstance(dataset, str) else "")),
        "licence": _text(training, ds, keys=_TEXT_KEYS["licence"]),
        "citation": _text(training, ds, keys=_TEXT_KEYS["citation"]),
        "url": _text(training, ds, keys=_TEXT_KEYS["url"]),
        "description": _text(training, keys=_TEXT_KEYS["description"]),
        "epochs": training.get("epochs") if isinstance(training.get("epochs"), int) else None,
    }
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}" if not float(v).is_integer() else str(int(v))


def summary_text(summary: Mapping[str, Any]) -> str:
    """The summary as plain text lines (the Manage models dialog shows it; the log of a tool run too)."""
    lines = []
    if summary.get("description"):
        lines.append(summary["description"])
    lines.append(
        f"Architecture: {summary['architecture']} ({summary['task']}"
        f"{', heads ' + ', '.join(summary['heads']) if len(summary['heads']) > 1 else ''})"
    )
    classes = summary["classes"]
    lines.append(f"Classes ({len(classes)}): {', '.join(classes)}")
    res = summary.get("resolution_m")
    lines.append(
        f"Bands: {' '.join(summary['bands'])}"
        + (f" at {_fmt(res)} m" if res else "")
        + f", patch {summary['tile_size']} px"
        + (", input clipped (card input_clip)" if summary.get("input_clip") else "")
    )
    figures = summary.get("figures") or {}
    if figures:
        lines.append("Figures: " + ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items()))
    else:
        lines.append("Figures: none in the card")
    for key, label in (("dataset", "Dataset"), ("licence", "Licence"), ("citation", "Citation"), ("url", "URL")):
        if summary.get(key):
            lines.append(f"{label}: {summary[key]}")
    if not summary.get("licence"):
        lines.append("Licence: not stated in the card")
    if summary.get("epochs"):
        lines.append(f"Trained for {summary['epochs']} epochs")
    return "\n".join(lines)


_cache: Dict[tuple, Dict[str, Any]] = {}


def entry_summary(entry: Entry) -> Dict[str, Any]:
    """:func:`card_summary` of an entry's model (read once per file version)."""
    st = os.stat(entry.path)
    key = (os.path.abspath(entry.path), st.st_size, st.st_mtime_ns)
    if key not in _cache:
        _cache[key] = card_summary(read_card(entry.path))
    return _cache[key]
