"""Derive tests/data/qgis4_api.json: the QGIS 4 API names the plugin uses, read from QGIS's own binding files.

    python scripts/qgis4_api.py names                        # what the plugin uses from qgis.* (no QGIS needed)
    python scripts/qgis4_api.py extract --qgis-src DIR --ref TAG [--commit SHA --date YYYY-MM-DD]
                                                             # rewrite the data file from a QGIS 4.x checkout

How the list is derived:
 1. The names: every ``from qgis.<module> import Name`` in the plugin, scripts and benchmarks, and every
    ``Name.attr.attr`` chain reached from such a name, found by the walker of tests/plugin/test_qt6_safe.py
    (``qgis_imports`` / ``attribute_chains``; one walker for both checks), plus the "new" paths that
    ``satclassify_plugin/compat.py`` picks first (``_pick(Qgis, "LayerType.Raster", ...)``).
 2. The API: for each class used from qgis.core / qgis.gui / qgis.analysis, its ``.sip.in`` file under the QGIS
    source's python/PyQt6/<module>/auto_generated (the Qt6 bindings QGIS 4 builds; python/<module>/auto_generated
    when a tree has no PyQt6 copy): class name, method names, nested classes, enum names and the members of each
    enum (scoped ``enum class`` and plain). Only the classes the plugin uses are kept, with all their members.
 3. The file records the QGIS release/ref, commit and date it was read from, and per class whether its member
    list is complete (read from a binding file) or only the members the plugin uses, confirmed one by one from
    QGIS 4 material (documentation of that release) - ``"complete": false`` plus ``"source"``.

``extract`` keeps hand-confirmed entries for classes it cannot find, so a partial tree never drops a name.
Qt names (qgis.PyQt.*) are not listed here: tests/plugin/test_qgis4_api.py resolves them against real PyQt6.
"""
import argparse
import ast
import datetime
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "qgis4_api.json")
sys.path.insert(0, os.path.join(ROOT, "tests", "plugin"))

from test_qt6_safe import COMPAT, attribute_chains, qgis_imports, sources  # noqa: E402  (the one walker)

QGIS_MODULES = ("qgis.core", "qgis.gui", "qgis.analysis")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def compat_new_paths(path=COMPAT):
    """``Qgis.<path>`` for every ``_pick(Qgis, "<path>", ...)`` in compat.py (the spelling used on QGIS 4)."""
    tree = ast.parse(_read(path), path)
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_pick"
                and len(node.args) >= 2 and isinstance(node.args[0], ast.Name)
                and isinstance(node.args[1], ast.Constant)):
            out.append((node.lineno, node.args[0].id, node.args[1].value.split(".")))
        # _old_core("Class.Enum.Member")() called directly: used on every QGIS, QGIS 4 included
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Call)
                and isinstance(node.func.func, ast.Name) and node.func.func.id == "_old_core"
                and node.func.args and isinstance(node.func.args[0], ast.Constant)):
            out.append((node.lineno, None, node.func.args[0].value.split(".")))
    return out


def used_names(files=None):
    """{(module, 'Name' or 'Name.a.b'): [(relpath, line), ...]} for the plugin's qgis.* names."""
    used = {}
    for path in files or sources():
        rel = os.path.relpath(path, ROOT)
        tree = ast.parse(_read(path), path)
        imports = qgis_imports(tree)
        for module, name in imports.values():
            used.setdefault((module, name), []).append((rel, 0))
        for line, local, chain in attribute_chains(tree, imports):
            module, name = imports[local]
            used.setdefault((module, ".".join([name] + chain)), []).append((rel, line))
        if os.path.abspath(path) == os.path.abspath(COMPAT):
            for line, owner, chain in compat_new_paths(path):
                if owner is None:
                    used.setdefault(("qgis.core", ".".join(chain)), []).append((rel, line))
                elif owner in imports:
                    module, name = imports[owner]
                    used.setdefault((module, ".".join([name] + chain)), []).append((rel, line))
    return used


# --- .sip.in parsing -------------------------------------------------------------------------------------
_CLASS = re.compile(r"^\s*(?:class|struct)\s+(\w+)\b[^;]*$")
_ENUM = re.compile(r"^\s*enum\s+(?:class\s+)?(\w+)")
_METHOD = re.compile(r"^\s*(?:static\s+|virtual\s+|explicit\s+)*[\w:<>,\s\*&]*?\b(\w+)\s*\(")
_CONST = re.compile(r"^\s*static\s+const\s+[\w:<>\s\*]+?\b(\w+)\s*;")


def parse_sip(text):
    """{class: {"members": set, "enums": {name: [members]}}} from one .sip.in file (nested classes as
    'Outer.Inner' plus a member 'Inner' of Outer). Directive blocks (%Docstring ... %End) are skipped."""
    classes, stack, depth = {}, [], 0
    lines = iter(text.splitlines())
    for line in lines:
        s = line.strip()
        if s.startswith("%") and not s.startswith("%End"):
            for inner in lines:  # skip the directive body
                if inner.strip() == "%End":
                    break
            continue
        m = _ENUM.match(line)
        if m and stack:
            body = s
            while "}" not in body:
                body += " " + next(lines).strip()
            inside = body[body.index("{") + 1:body.index("}")]
            inside = re.sub(r"//[^\n]*?(?=\s\w+\s*[,=]|$)", " ", inside)
            members = [re.split(r"[\s=/]", p.strip())[0] for p in inside.split(",") if p.strip()]
            owner = classes[stack[-1][0]]
            owner["enums"][m.group(1)] = [x for x in members if re.fullmatch(r"\w+", x)]
            owner["members"].add(m.group(1))
            continue
        m = _CLASS.match(line)
        if m and not s.endswith(";"):
            name = m.group(1)
            full = f"{stack[-1][0]}.{name}" if stack else name
            if stack:
                classes[stack[-1][0]]["members"].add(name)
            classes.setdefault(full, {"members": set(), "enums": {}})
            stack.append((full, depth))
        depth += line.count("{") - line.count("}")
        while stack and depth <= stack[-1][1] and "}" in line:
            stack.pop()
        if not stack:
            continue
        m = _CONST.match(line) or _METHOD.match(line)
        if m and m.group(1) not in ("if", "for", "while", "return", "operator"):
            classes[stack[-1][0]]["members"].add(m.group(1))
    return classes


def extract(qgis_src, wanted_classes):
    """Parse every .sip.in of the QGIS tree's Qt6 bindings; return the wanted classes (and their nested ones)."""
    found = {}
    for module in ("core", "gui", "analysis"):
        base = os.path.join(qgis_src, "python", "PyQt6", module, "auto_generated")
        if not os.path.isdir(base):
            base = os.path.join(qgis_src, "python", module, "auto_generated")
        for dirpath, _, filenames in os.walk(base):
            for f in filenames:
                if not f.endswith(".sip.in"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), qgis_src)
                for cls, info in parse_sip(_read(os.path.join(dirpath, f))).items():
                    if cls.split(".")[0] in wanted_classes:
                        found[cls] = {"module": f"qgis.{module}", "file": rel, "complete": True,
                                      "members": sorted(info["members"]),
                                      "enums": {k: v for k, v in sorted(info["enums"].items())}}
    return found


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("names", help="list the qgis.* names the plugin uses")
    sub.add_parser("report", help="one line: the QGIS 4 release of the data file and what the check covers")
    ex = sub.add_parser("extract", help="rewrite the data file from a QGIS 4.x source checkout")
    ex.add_argument("--qgis-src", required=True)
    ex.add_argument("--ref", required=True, help="the tag or branch read, e.g. final-4_0_0")
    ex.add_argument("--commit", default="")
    ex.add_argument("--date", default=datetime.date.today().isoformat())
    args = ap.parse_args(argv)
    used = used_names()
    if args.cmd == "names":
        for (module, name), where in sorted(used.items()):
            print(f"{module}:{name}  ({len(where)} uses, e.g. {where[0][0]})")
        return 0
    if args.cmd == "report":
        data = json.loads(_read(DATA))
        qgis_names = [n for (m, n) in used if m in QGIS_MODULES]
        qt_names = [n for (m, n) in used if m.startswith("qgis.PyQt.")]
        confirmed = sum(1 for e in data["classes"].values() if e.get("status") == "confirmed")
        print(f"QGIS 4 API: {len(qgis_names)} qgis.core/gui/analysis names in {len(data['classes'])} classes "
              f"against QGIS {data['qgis']['release']} {data['qgis']['commit']} ({confirmed} classes read from QGIS 4 "
              f"material, {len(data['classes']) - confirmed} unconfirmed); {len(qt_names)} qgis.PyQt names against "
              f"PyQt6; {len(data.get('removed_in_qgis4', {}))} names listed as removed in QGIS 4")
        return 0
    wanted = {name.split(".")[0] for (module, name) in used if module in QGIS_MODULES}
    data = json.loads(_read(DATA)) if os.path.exists(DATA) else {"classes": {}}
    found = extract(args.qgis_src, wanted)
    for cls, entry in data.get("classes", {}).items():
        found.setdefault(cls, entry)  # keep hand-confirmed entries the tree did not have
    data["qgis"] = {"release": args.ref, "commit": args.commit, "date": args.date,
                    "read_from": "python/PyQt6/{core,gui,analysis}/auto_generated/**/*.sip.in"}
    data["classes"] = {k: found[k] for k in sorted(found)}
    with open(DATA, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
    missing = sorted(wanted - {c.split(".")[0] for c in found})
    print(f"{len(found)} classes written to {os.path.relpath(DATA, ROOT)}; not found in QGIS {args.ref}: {missing}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
