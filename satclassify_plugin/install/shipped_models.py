"""The Processing models (.model3) the plugin ships, and their installation into the user's models folder.

QGIS lists a model in the toolbox (Models) when its .model3 file is in
``<profile>/processing/models``. The plugin copies its models there on start. A model the user edited
(its content differs from what the plugin wrote there last) is never overwritten: it is left alone and
the log says so, so user edits survive plugin upgrades.

Pure Python (no qgis import) so the copy rules are unit-tested without QGIS.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from typing import Callable, List, Optional

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "models")
#: file next to the installed models recording the hash of each file the plugin wrote
LEDGER = ".satclassify_models.json"


def shipped_models(folder: str = MODELS_DIR) -> List[str]:
    """Paths of the .model3 files shipped with the plugin, sorted."""
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".model3"))


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def install_models(dest: str, source: str = MODELS_DIR, log: Optional[Callable[[str], None]] = None) -> List[str]:
    """Copy the shipped models into ``dest`` (the user's models folder). Returns the files written.

    A file is (over)written when it is missing, or when it is exactly what the plugin wrote last time
    (an older shipped version). A file the user changed is kept and reported through ``log``.
    Writes go to a temporary name first, so QGIS never reads half a model.
    """
    log = log or (lambda _m: None)
    os.makedirs(dest, exist_ok=True)
    ledger_path = os.path.join(dest, LEDGER)
    try:
        with open(ledger_path, encoding="utf-8") as f:
            ledger = json.load(f)
        if not isinstance(ledger, dict):
            ledger = {}
    except (OSError, ValueError):
        ledger = {}
    written = []
    for src in shipped_models(source):
        name = os.path.basename(src)
        target = os.path.join(dest, name)
        new = _digest(src)
        if os.path.exists(target):
            have = _digest(target)
            if have == new:
                ledger[name] = new
                continue
            if ledger.get(name) != have:
                log(f"kept your edited model {target}; the plugin's version is {src}")
                continue
        tmp = target + ".part"
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
        ledger[name] = new
        written.append(target)
    with open(ledger_path, "w", encoding="utf-8") as f:
        json.dump(ledger, f, indent=1, sort_keys=True)
    return written
