#!/usr/bin/env python3
"""Build the installable plugin zip: root folder satclassify_plugin/ with metadata.txt and LICENSE.

The zip also carries the training package's code (training/, no tests; about 0.2 MB) and
requirements-training.txt under satclassify_plugin/training_pkg/: "Set up training environment..." installs
torch and the rest from the package index, and the trainmodel tool runs this copy in that environment
(satclassify_plugin/install/training_env.py).

Usage: python3 scripts/build_zip.py [OUT.zip]     (default dist/satclassify_plugin.zip)
       python3 scripts/build_zip.py --install PLUGINS_DIR   (copy the same tree into a QGIS profile's
                                                            python/plugins folder)
       python3 scripts/build_zip.py --profile CONFIG_DIR    (a QGIS config dir for QGIS_CUSTOM_CONFIG_PATH:
                                                            plugin copied into profiles/default and enabled)
"""

import argparse
import configparser
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import zipfile

try:  # POSIX: serialise installs into one profile; Windows has no fcntl (and no parallel qgis_process script)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "satclassify_plugin"
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
SKIP_EXT = (".pyc", ".pyo", ".orig", ".rej", "~")
#: folders of satclassify_plugin/ that are not part of the plugin: headless/ is the pip-installed satclassify command
#: (docs/headless.md), which QGIS never loads
NOT_IN_ZIP = {"headless"}


def plugin_files():
    """(absolute source path, path inside the zip) for every file the plugin ships."""
    base = os.path.join(ROOT, PKG)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS and not d.startswith(".") and not (dirpath == base and d in NOT_IN_ZIP)
        )
        for f in sorted(filenames):
            if f.endswith(SKIP_EXT) or f.startswith("."):
                continue
            src = os.path.join(dirpath, f)
            yield src, os.path.join(PKG, os.path.relpath(src, base))
    for extra in ("metadata.txt", "LICENSE"):
        yield os.path.join(ROOT, extra), f"{PKG}/{extra}"
    yield from training_files()


#: where the zip carries the training package (install/training_env.py BUNDLED)
TRAINING_DIR = "training_pkg"


def training_files():
    """(source, path inside the zip) of the training package's code and its requirements."""
    base = os.path.join(ROOT, "training")
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith(SKIP_EXT) or f.startswith("."):
                continue
            src = os.path.join(dirpath, f)
            yield src, os.path.join(PKG, TRAINING_DIR, "training", os.path.relpath(src, base))
    yield os.path.join(ROOT, "requirements-training.txt"), f"{PKG}/{TRAINING_DIR}/requirements-training.txt"


def build_zip(out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for src, arc in plugin_files():
            z.write(src, arc)
    os.replace(tmp, out)
    return out


def _tree_hash():
    h = hashlib.sha256()
    for src, arc in plugin_files():
        h.update(arc.encode() + b"\0")
        with open(src, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


@contextlib.contextmanager
def _locked(folder):
    """An exclusive lock for installs into ``folder`` (parallel qgis_process runs share one profile)."""
    os.makedirs(folder, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(os.path.join(folder, ".satclassify-install.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


STAMP = ".satclassify-tree-hash"


def install(plugins_dir):
    """Copy the plugin into ``plugins_dir``; a copy of the same tree already there is kept as it is.

    The new copy is built under a temporary name and renamed into place, under a lock: a qgis_process run
    that is loading the plugin while another one installs never sees a half-copied tree."""
    target = os.path.join(plugins_dir, PKG)
    digest = _tree_hash()
    with _locked(plugins_dir):
        try:
            with open(os.path.join(target, STAMP)) as f:
                if f.read().strip() == digest:
                    return target
        except OSError:
            pass
        tmp = tempfile.mkdtemp(prefix=f".{PKG}.", dir=plugins_dir)
        try:
            for src, arc in plugin_files():
                dst = os.path.join(tmp, os.path.relpath(arc, PKG))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)
            with open(os.path.join(tmp, STAMP), "w") as f:
                f.write(digest)
            old = None
            if os.path.exists(target):
                old = tempfile.mkdtemp(prefix=f".{PKG}.old.", dir=plugins_dir)
                os.rename(target, os.path.join(old, PKG))
            os.rename(tmp, target)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def install_profile(config_dir, profile="default"):
    """Install into CONFIG_DIR/profiles/PROFILE and enable the plugin (qgis_process loads enabled plugins)."""
    pdir = os.path.join(config_dir, "profiles", profile)
    install(os.path.join(pdir, "python", "plugins"))
    ini = os.path.join(pdir, "QGIS", "QGIS3.ini")
    with _locked(os.path.dirname(ini)):
        cfg = configparser.RawConfigParser(strict=False)
        cfg.optionxform = str
        if os.path.exists(ini):
            cfg.read(ini, encoding="utf-8")
        if cfg.has_section("PythonPlugins") and cfg.get("PythonPlugins", PKG, fallback="") == "true":
            return pdir
        if not cfg.has_section("PythonPlugins"):
            cfg.add_section("PythonPlugins")
        cfg.set("PythonPlugins", PKG, "true")
        tmp = ini + f".{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            cfg.write(f, space_around_delimiters=False)
        os.replace(tmp, ini)
    return pdir


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, "dist", PKG + ".zip"))
    ap.add_argument("--install", metavar="PLUGINS_DIR")
    ap.add_argument("--profile", metavar="CONFIG_DIR")
    a = ap.parse_args(argv)
    if a.profile:
        print(install_profile(a.profile))
    elif a.install:
        print(install(a.install))
    else:
        out = build_zip(a.out)
        print(f"{out} ({os.path.getsize(out) / 1e6:.2f} MB)")


if __name__ == "__main__":
    sys.exit(main())
