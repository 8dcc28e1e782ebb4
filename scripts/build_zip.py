#!/usr/bin/env python3
"""Build the installable plugin zip: root folder satclassify_plugin/ with metadata.txt and LICENSE.

Usage: python3 scripts/build_zip.py [OUT.zip]     (default dist/satclassify_plugin.zip)
       python3 scripts/build_zip.py --install PLUGINS_DIR   (copy the same tree into a QGIS profile's
                                                            python/plugins folder)
       python3 scripts/build_zip.py --profile CONFIG_DIR    (a QGIS config dir for QGIS_CUSTOM_CONFIG_PATH:
                                                            plugin copied into profiles/default and enabled)
"""
import argparse
import os
import shutil
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = "satclassify_plugin"
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
SKIP_EXT = (".pyc", ".pyo", ".orig", ".rej", "~")


def plugin_files():
    """(absolute source path, path inside the zip) for every file the plugin ships."""
    base = os.path.join(ROOT, PKG)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith(SKIP_EXT) or f.startswith("."):
                continue
            src = os.path.join(dirpath, f)
            yield src, os.path.join(PKG, os.path.relpath(src, base))
    for extra in ("metadata.txt", "LICENSE"):
        yield os.path.join(ROOT, extra), f"{PKG}/{extra}"


def build_zip(out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for src, arc in plugin_files():
            z.write(src, arc)
    os.replace(tmp, out)
    return out


def install(plugins_dir):
    target = os.path.join(plugins_dir, PKG)
    if os.path.exists(target):
        shutil.rmtree(target)
    for src, arc in plugin_files():
        dst = os.path.join(plugins_dir, arc)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
    return target


def install_profile(config_dir, profile="default"):
    """Install into CONFIG_DIR/profiles/PROFILE and enable the plugin (qgis_process loads enabled plugins)."""
    import configparser

    pdir = os.path.join(config_dir, "profiles", profile)
    install(os.path.join(pdir, "python", "plugins"))
    ini = os.path.join(pdir, "QGIS", "QGIS3.ini")
    os.makedirs(os.path.dirname(ini), exist_ok=True)
    cfg = configparser.RawConfigParser(strict=False)
    cfg.optionxform = str
    if os.path.exists(ini):
        cfg.read(ini, encoding="utf-8")
    if not cfg.has_section("PythonPlugins"):
        cfg.add_section("PythonPlugins")
    cfg.set("PythonPlugins", PKG, "true")
    with open(ini, "w", encoding="utf-8") as f:
        cfg.write(f, space_around_delimiters=False)
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
