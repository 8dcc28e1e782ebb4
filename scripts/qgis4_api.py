"""Derive tests/data/qgis4_api.json: the QGIS 4 API names the plugin uses, read from QGIS's own binding files.

    python scripts/qgis4_api.py names                  # what the plugin uses from qgis.* (no QGIS needed)
    python scripts/qgis4_api.py report                 # counts checked and the QGIS 4 commit(s) (CI prints it)
    python scripts/qgis4_api.py from-sip DIR           # rebuild the data file from fetched .sip.in texts
    python scripts/qgis4_api.py extract --qgis-src SRC --ref TAG --commit SHA --date YYYY-MM-DD
                                                       # rebuild it from a whole QGIS 4.x checkout

How the list is derived:
 1. The names (``used_names``): every ``from qgis.<module> import Name`` in the plugin, scripts and benchmarks and
    every ``Name.attr.attr`` chain reached from such a name (the walker of tests/plugin/test_qt6_safe.py); the
    "new" paths that ``satclassify_plugin/compat.py`` picks first (``_pick(Qgis, "LayerType.Raster", ...)``); and
    the methods called on objects whose QGIS class is known without running anything (``receiver_uses``):
    ``self.x`` in a class derived from a QGIS class (``self.addParameter`` -> ``QgsProcessingAlgorithm``),
    ``v = QgsClass(...)`` then ``v.x``, ``QgsClass(...).x``, and the ``context`` / ``feedback`` arguments of the
    Processing methods a plugin class overrides.
 2. The API: the PyQt6 binding files QGIS 4 builds (``python/PyQt6/<module>/auto_generated/**/*.sip.in``) of
    every class used, parsed by ``parse_sip``: methods, attributes, nested classes, enums and their members,
    base classes. ``from-sip DIR`` reads the texts fetched into DIR (one file per binding file, at its repository
    path) with ``DIR/MANIFEST.json`` saying per file which commit it was read at, its date when known and the
    evidence that it is a QGIS 4 version; ``extract`` reads a whole checkout at one commit.
 3. The data file keeps, per class, the file, commit and QGIS 4 evidence it was read from and whether its member
    list is complete. Classes not found in DIR keep their previous entry, marked ``"status": "unconfirmed"``,
    so a partial read never drops a name. Qt names (qgis.PyQt.*) are not listed: tests/plugin/test_qgis4_api.py
    resolves them against real PyQt6.
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
# arguments whose QGIS class is fixed by the Processing method a plugin class overrides
TYPED_ARGUMENTS = {"context": "QgsProcessingContext", "feedback": "QgsProcessingFeedback"}
PROCESSING_BASES = ("QgsProcessingAlgorithm", "QgsProcessingLayerPostProcessorInterface")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def compat_new_paths(path=COMPAT):
    """``Qgis.<path>`` for every ``_pick(Qgis, "<path>", ...)`` in compat.py (the spelling used on QGIS 4)."""
    tree = ast.parse(_read(path), path)
    out = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "_pick"
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and isinstance(node.args[1], ast.Constant)
        ):
            out.append((node.lineno, node.args[0].id, node.args[1].value.split(".")))
        # _old_core("Class.Enum.Member")() called directly: used on every QGIS, QGIS 4 included
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Call)
            and isinstance(node.func.func, ast.Name)
            and node.func.func.id == "_old_core"
            and node.func.args
            and isinstance(node.func.args[0], ast.Constant)
        ):
            out.append((node.lineno, None, node.func.args[0].value.split(".")))
    return out


# --- methods called on objects of a known QGIS class ------------------------------------------------------
def _plugin_classes(trees):
    """{class name: (bases as written, names the class defines: methods, class attributes, self.x = ...)}."""
    out = {}
    for tree, imports in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            defined = set()
            for sub in ast.walk(node):
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    defined.add(sub.name)
                elif (
                    isinstance(sub, ast.Attribute)
                    and isinstance(sub.ctx, ast.Store)
                    and isinstance(sub.value, ast.Name)
                    and sub.value.id == "self"
                ):
                    defined.add(sub.attr)
            for stmt in node.body:
                for t in getattr(stmt, "targets", [getattr(stmt, "target", None)]):
                    if isinstance(t, ast.Name):
                        defined.add(t.id)
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            out[node.name] = (bases, defined, imports)
    return out


def _qgis_root(name, classes, imports, seen=()):
    """(module, QGIS class, names the plugin classes on the way define) for a plugin class name, or None."""
    if name in imports and imports[name][0] in QGIS_MODULES:
        return imports[name][0], imports[name][1], set()
    if name not in classes or name in seen:
        return None
    bases, defined, own_imports = classes[name]
    for b in bases:
        found = _qgis_root(b, classes, {**imports, **own_imports}, seen + (name,))
        if found:
            return found[0], found[1], found[2] | defined
    return None


def receiver_uses(files=None):
    """{(module, 'Class.attr'): [(relpath, line)]} for attributes reached through an object whose QGIS class
    is known from the source alone (see the module docstring)."""
    parsed = []
    for path in files or sources():
        tree = ast.parse(_read(path), path)
        parsed.append((path, tree, qgis_imports(tree)))
    classes = _plugin_classes([(t, i) for _, t, i in parsed])
    used = {}

    def add(module, cls, attr, rel, line):
        used.setdefault((module, f"{cls}.{attr}"), []).append((rel, line))

    for path, tree, imports in parsed:
        rel = os.path.relpath(path, ROOT)
        qgis_classes = {k: v for k, v in imports.items() if v[0] in QGIS_MODULES and k[:1].isupper()}
        for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
            root = _qgis_root(cls.name, classes, imports)
            if not root:
                continue
            module, qcls, defined = root
            for fn in [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
                args = {a.arg for a in fn.args.args}
                for node in ast.walk(fn):
                    if not isinstance(node, ast.Attribute) or not isinstance(node.value, ast.Name):
                        continue
                    if node.value.id == "self" and node.attr not in defined and not node.attr.startswith("__"):
                        add(module, qcls, node.attr, rel, node.lineno)
                    elif node.value.id in TYPED_ARGUMENTS and node.value.id in args and qcls in PROCESSING_BASES:
                        add("qgis.core", TYPED_ARGUMENTS[node.value.id], node.attr, rel, node.lineno)
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module))]:
            assigned = {}
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    v = node.value
                    cls = v.func.id if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) else None
                    assigned.setdefault(node.targets[0].id, set()).add(cls if cls in qgis_classes else None)
            typed = {k: next(iter(v)) for k, v in assigned.items() if len(v) == 1 and None not in v}
            for node in ast.walk(fn):
                if not isinstance(node, ast.Attribute):
                    continue
                v = node.value
                if isinstance(v, ast.Name) and v.id in typed:
                    module, name = qgis_classes[typed[v.id]]
                    add(module, name, node.attr, rel, node.lineno)
                elif isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id in qgis_classes:
                    module, name = qgis_classes[v.func.id]
                    add(module, name, node.attr, rel, node.lineno)
    return {k: sorted(set(v)) for k, v in used.items()}


def used_names(files=None, receivers=True):
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
    if receivers:
        for key, where in receiver_uses(files).items():
            used.setdefault(key, []).extend(where)
    return used


# --- .sip.in parsing -------------------------------------------------------------------------------------
_SKIP_BLOCKS = (
    "%Docstring",
    "%TypeHeaderCode",
    "%TypeCode",
    "%ConvertToSubClassCode",
    "%ConvertToTypeCode",
    "%ConvertFromTypeCode",
    "%MethodCode",
    "%ModuleHeaderCode",
    "%ModuleCode",
    "%PostInitialisationCode",
    "%RaiseCode",
    "%GCTraverseCode",
    "%GCClearCode",
    "%PickleCode",
    "%VirtualCatcherCode",
    "%TypeHintCode",
    "%InstanceCode",
    "%FinalisationCode",
    "%Property",
)
_CLASS = re.compile(r"^(class|struct)\s+(\w+)\s*(?::\s*([^{/;]+?))?\s*(?:/[^/]*/)?\s*(\{)?\s*$")
_ENUM = re.compile(r"^enum\s+(?:class\s+)?(\w+)")
_EXCEPTION = re.compile(r"^%Exception\s+(\w+)")
_TYPEDEF = re.compile(r"^typedef\b.*?\b(\w+)\s*;")
_CALL = re.compile(r"(~?\w+)\s*\(")
_ATTR = re.compile(r"^(?:static\s+)?(?:const\s+)?[\w:<>,\s\*&]+?[\s\*&](\w+)\s*(?:/[^/]*/)?\s*;$")
_ACCESS = re.compile(r"^(public|protected|private|signals|Q_SIGNALS)(\s+slots)?\s*:$")
_NOT_NAMES = {"if", "for", "while", "return", "operator", "SIP_PYCALLABLE", "QFlags", "QList", "QMap", "QVector"}


def _strip_comment(line):
    return re.sub(r"/\*.*?\*/", " ", line.split("//", 1)[0]).rstrip()


def parse_sip(text):
    """{class: {"members": set, "enums": {enum: [members]}, "bases": [...]}} from the text of a .sip.in / .sip
    file: a QGIS binding file as sipify writes it, or a skeleton with the same declarations. Nested classes are
    'Outer.Inner' (and a member 'Inner' of Outer); private members and %Docstring/%MethodCode/... bodies are
    skipped; an enum whose body lists no member keeps its name only (its members are then not known)."""
    classes, stack, depth = {}, [], 0  # stack: [(full name, brace depth outside its body)]
    access, paren, pending = "public", 0, None
    lines = iter(text.splitlines())
    for raw in lines:
        s = _strip_comment(raw).strip()
        if not s:
            continue
        if s.startswith(_SKIP_BLOCKS):
            for inner in lines:
                if inner.strip().startswith("%End"):
                    break
            continue
        m = _EXCEPTION.match(s)
        if m:
            classes.setdefault(m.group(1), {"members": set(), "enums": {}, "bases": ["Exception"]})
            continue
        if s.startswith("%"):  # %If / %End / %Feature: the declarations inside stay in
            continue
        if paren > 0:  # the rest of a signature spread over several lines
            paren += s.count("(") - s.count(")")
            continue
        owner = classes[stack[-1][0]] if stack else None
        m = _CLASS.match(s)
        if m:
            kind, name = m.group(1), m.group(2)
            full = f"{stack[-1][0]}.{name}" if stack else name
            if owner is not None and access != "private":
                owner["members"].add(name)
            bases = [b.strip().split("<")[0].split("::")[-1] for b in (m.group(3) or "").split(",") if b.strip()]
            bases = [re.sub(r"^(public|protected|private)\s+", "", b) for b in bases]
            classes.setdefault(full, {"members": set(), "enums": {}, "bases": bases})
            pending = (full, depth, kind)
            if m.group(4):
                s = "{"
            else:
                continue
        if s.startswith("{") and pending is not None:
            depth += 1
            stack.append(pending[:2])
            access = "private" if pending[2] == "class" else "public"
            pending = None
            continue
        if s.startswith("}"):
            depth -= 1
            if stack and depth <= stack[-1][1]:
                stack.pop()
                access = "public"
            continue
        if owner is None:
            continue
        m = _ACCESS.match(s)
        if m:
            access = "public" if m.group(1) in ("signals", "Q_SIGNALS") else m.group(1)
            continue
        m = _ENUM.match(s)
        if m:
            body = s
            while "}" not in body and not (body.endswith(";") and "{" not in body):
                body += " " + _strip_comment(next(lines)).strip()
            inside = body[body.index("{") + 1 : body.index("}")] if "{" in body and "}" in body else ""
            members = [re.split(r"[\s=]", p.strip())[0] for p in inside.split(",") if p.strip()]
            members = [x for x in members if re.fullmatch(r"[A-Za-z_]\w*", x)]
            if access != "private":
                owner["members"].add(m.group(1))
                if members:
                    owner["enums"][m.group(1)] = members
            continue
        if access == "private":
            paren = max(0, s.count("(") - s.count(")"))
            continue
        m = _TYPEDEF.match(s)
        if m:
            owner["members"].add(m.group(1))
            continue
        m = _CALL.search(s)
        if m:
            paren = max(0, s.count("(") - s.count(")"))
            name = m.group(1)
            if (
                not name.startswith("~")
                and name not in _NOT_NAMES
                and name != stack[-1][0].split(".")[-1]
                and "operator" not in s[: m.start()]
            ):
                owner["members"].add(name)
            continue
        m = _ATTR.match(s)
        if m and m.group(1) not in _NOT_NAMES:
            owner["members"].add(m.group(1))
    return classes


def _module_of(rel):
    parts = rel.replace(os.sep, "/").split("/")
    for mod in ("core", "gui", "analysis"):
        if mod in parts:
            return f"qgis.{mod}"
    return "qgis.core"


def _closure(wanted, parsed):
    """``wanted`` plus the QGIS base classes of every class in it (members are inherited)."""
    out, todo = set(), list(wanted)
    while todo:
        c = todo.pop()
        if c in out:
            continue
        out.add(c)
        for b in parsed.get(c, {}).get("bases", []):
            if b.startswith("Qgs") or b == "Qgis":
                todo.append(b)
    return out


_HEADER = re.compile(r"^//\s*(?P<repo>[\w.-]+/[\w.-]+)\s+(?P<path>\S+)\s+@\s+(?P<commit>[0-9a-f]{7,40})")


def read_tree(folder, manifest=None):
    """{class: entry} for every class in the .sip.in / .sip files under ``folder``. A file names the commit it was
    read at in a first line ``// qgis/QGIS <path> @ <commit>`` (or ``manifest["files"][path]["commit"]``);
    ``manifest["commits"][commit]`` says its date and whether it is a QGIS 4 version (``"qgis4"``), and
    ``manifest["partial"]`` lists the classes whose member list was not read whole."""
    manifest = manifest or {}
    commits, partial = manifest.get("commits", {}), set(manifest.get("partial", []))
    found = {}
    top = next(
        (
            os.path.join(folder, *sub.split("/"))
            for sub in ("python/PyQt6", "python")
            if os.path.isdir(os.path.join(folder, *sub.split("/")))
        ),
        folder,
    )
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for f in sorted(filenames):
            if not (f.endswith(".sip.in") or f.endswith(".sip")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), folder).replace(os.sep, "/")
            text = _read(os.path.join(dirpath, f))
            head = _HEADER.match(text)
            commit = manifest.get("files", {}).get(rel, {}).get("commit") or (head.group("commit") if head else "")
            notes = [ln[2:].strip() for ln in text.splitlines()[1:6] if ln.startswith("//")]
            meta = commits.get(commit, {})
            for cls, info in parse_sip(text).items():
                found[cls] = {
                    "module": _module_of(rel),
                    "file": rel,
                    "commit": commit,
                    "date": meta.get("date", ""),
                    "qgis4": bool(meta.get("qgis4")),
                    "evidence": " ".join(notes) or meta.get("what", ""),
                    "complete": cls not in partial,
                    "status": "read",
                    "bases": info["bases"],
                    "members": sorted(info["members"]),
                    "enums": {k: v for k, v in sorted(info["enums"].items())},
                }
    return found


def build(found, previous, wanted, qgis):
    """The data file: the classes in ``wanted`` (and their bases) from ``found``; a wanted class missing from
    ``found`` keeps its ``previous`` entry, marked unconfirmed."""
    keep = {c for c in _closure(wanted, found) if c in found}
    keep |= {c for c in found if c.split(".")[0] in keep}  # nested classes
    classes = {c: found[c] for c in keep}
    for cls in wanted - {c.split(".")[0] for c in keep}:
        old = dict(previous.get("classes", {}).get(cls, {"module": "qgis.core", "members": [], "enums": {}}))
        old.update(status="unconfirmed", complete=False)
        classes[cls] = old
    return {
        "about": previous.get("about", ABOUT),
        "qgis": qgis,
        "removed_in_qgis4": previous.get("removed_in_qgis4", {}),
        "python_additions": previous.get("python_additions", {}),
        "classes": {k: classes[k] for k in sorted(classes)},
    }


ABOUT = (
    "QGIS 4 API names the plugin uses (qgis.core / gui / analysis), for tests/plugin/test_qgis4_api.py. Derived "
    "by scripts/qgis4_api.py (see its docstring) from QGIS's PyQt6 binding files. Per class: the file, commit "
    "and QGIS 4 evidence it was read from; 'complete': the member list is the whole class; 'status': 'read' "
    "(from a binding file) or 'unconfirmed' (kept from an earlier list, not read). 'python_additions': names "
    "QGIS adds in Python (python/PyQt6/core/__init__.py.in), not in the binding files."
)


def wanted_classes(used):
    return {name.split(".")[0] for (module, name) in used if module in QGIS_MODULES}


def write(data):
    with open(DATA, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")


# --- resolving the plugin's names against the data file -------------------------------------------------
def _members(data, cls, seen=()):
    """(members, enums, complete, qt base) of ``cls`` with everything it inherits from QGIS classes."""
    entry = data["classes"].get(cls)
    if entry is None or cls in seen:
        return set(), {}, False, None
    members, enums = set(entry.get("members", [])), dict(entry.get("enums", {}))
    complete, qt_base = entry.get("complete", False), None
    for b in entry.get("bases", []):
        if b.startswith("Qgs") or b == "Qgis":
            m, e, c, q = _members(data, b, seen + (cls,))
            members |= m
            enums = {**e, **enums}
            complete = complete and c
            qt_base = qt_base or q
        elif b.startswith("Q"):
            qt_base = qt_base or b
    return members, enums, complete, qt_base


def resolve(data, used):
    """Look every qgis.core/gui/analysis name in ``used`` up in ``data``. Returns a dict: "missing" (messages),
    "qt" ({'QtClass.attr': where} left to PyQt6), "unchecked" (names on a class whose member list is partial),
    "unconfirmed" (classes not read from a binding file), "counts"."""
    removed, additions = data.get("removed_in_qgis4", {}), data.get("python_additions", {})
    out = {
        "missing": [],
        "qt": {},
        "unchecked": [],
        "unconfirmed": set(),
        "counts": {"names": 0, "classes": set(), "members": 0, "enum_members": 0},
    }
    counts = out["counts"]
    for (module, name), where in sorted(used.items()):
        if module not in QGIS_MODULES:
            continue
        counts["names"] += 1
        at = f"{where[0][0]}:{where[0][1]}"
        parts = name.split(".")
        hit = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in removed), None)
        if hit:
            out["missing"].append(f"{module}.{name} ({at}): removed in QGIS 4, use {removed[hit]}")
            continue
        cls = parts[0]
        entry = data["classes"].get(cls)
        if entry is None or entry.get("module") != module:
            out["missing"].append(f"{module}.{name} ({at}): no class {cls} in {module} of QGIS 4")
            continue
        counts["classes"].add(cls)
        if entry.get("status") == "unconfirmed":
            out["unconfirmed"].add(cls)
        for i, part in enumerate(parts[1:], start=1):
            owner = ".".join(parts[:i])
            members, enums, complete, qt_base = _members(data, owner)
            if f"{owner}.{part}" in additions:
                counts["members"] += 1
                break
            if part in enums:
                counts["members"] += 1
                if i + 1 < len(parts):
                    counts["enum_members"] += 1
                    if parts[i + 1] not in enums[part]:
                        out["missing"].append(
                            f"{module}.{name} ({at}): {owner}.{part} has no member {parts[i + 1]} in QGIS 4"
                        )
                break
            if part in members:
                counts["members"] += 1
                if f"{owner}.{part}" in data["classes"]:
                    continue  # a nested class: go on with its members
                break
            if complete and qt_base:
                out["qt"][f"{qt_base}.{part}"] = f"{module}.{name} ({at})"
                break
            if complete:
                out["missing"].append(
                    f"{module}.{name} ({at}): {owner} has no member {part} in QGIS 4"
                    + (f" ({data['hints'][name]})" if name in data.get("hints", {}) else "")
                )
            else:
                out["unchecked"].append(f"{module}.{name}")
            break
    counts["classes"] = len(counts["classes"])
    out["unconfirmed"] = sorted(out["unconfirmed"])
    return out


def report_line(data, used):
    r = resolve(data, used)
    c = r["counts"]
    commits = data["qgis"].get("commits", {})
    q4 = sum(1 for e in data["classes"].values() if e.get("qgis4"))
    qt_names = sum(1 for (m, _) in used if m.startswith("qgis.PyQt."))
    return (
        f"QGIS 4 API check: {c['names']} qgis.core/gui/analysis names ({c['classes']} classes, {c['members']} "
        f"members, {c['enum_members']} enum members) against {data['qgis']['release']}: {len(data['classes'])} "
        f"classes in {os.path.relpath(DATA, ROOT)} read at {len(commits)} commit(s) "
        f"({', '.join(k[:10] for k in commits)}), {q4} from a file with QGIS 4 evidence; "
        f"{len(r['unconfirmed'])} classes unconfirmed, {len(r['unchecked'])} names on partial member lists, "
        f"{len(r['missing'])} missing; {qt_names} qgis.PyQt names against PyQt6"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("names", help="list the qgis.* names the plugin uses")
    sub.add_parser("report", help="what the check covers and against which QGIS 4 commit(s)")
    fs = sub.add_parser("from-sip", help="rebuild the data file from .sip.in texts fetched into a folder")
    fs.add_argument("folder", help="a folder holding python/PyQt6/... files and MANIFEST.json (e.g. /tmp/qgis4_sip)")
    ex = sub.add_parser("extract", help="rebuild the data file from a QGIS 4.x source checkout")
    ex.add_argument("--qgis-src", required=True)
    ex.add_argument("--ref", required=True, help="the tag or branch read, e.g. final-4_0_0")
    ex.add_argument("--commit", default="")
    ex.add_argument("--date", default=datetime.date.today().isoformat())
    args = ap.parse_args(argv)
    used = used_names()
    if args.cmd == "names":
        for (module, name), where in sorted(used.items()):
            print(f"{module}:{name}  ({len(where)} uses, e.g. {where[0][0]}:{where[0][1]})")
        return 0
    previous = json.loads(_read(DATA)) if os.path.exists(DATA) else {"classes": {}}
    if args.cmd == "report":
        print(report_line(previous, used))
        return 0
    wanted = wanted_classes(used)
    if args.cmd == "from-sip":
        manifest_path = os.path.join(args.folder, "MANIFEST.json")
        manifest = json.loads(_read(manifest_path)) if os.path.exists(manifest_path) else {"files": {}}
        found = read_tree(args.folder, manifest)
        qgis = {k: v for k, v in manifest.items() if k not in ("files", "partial")}
        qgis.setdefault("release", "QGIS 4.x")
        used_commits = {e["commit"] for e in found.values() if e.get("commit")}
        qgis["commits"] = {c: d for c, d in qgis.get("commits", {}).items() if c in used_commits}
    else:
        found = read_tree(args.qgis_src)
        for e in found.values():
            e.update(commit=args.commit, date=args.date, qgis4=True, evidence=f"checkout of {args.ref}")
        qgis = {
            "release": args.ref,
            "commits": {args.commit: {"date": args.date, "what": args.ref, "qgis4": True}},
            "read_from": "python/PyQt6/{core,gui,analysis}/auto_generated/**/*.sip.in",
        }
    data = build(found, previous, wanted, qgis)
    data["hints"] = previous.get("hints", {})
    write(data)
    missing = sorted(c for c, e in data["classes"].items() if e.get("status") == "unconfirmed")
    print(
        f"{len(data['classes'])} classes written to {os.path.relpath(DATA, ROOT)}; not read from a binding file: "
        f"{missing}"
    )
    print(report_line(data, used))
    return 0


if __name__ == "__main__":
    sys.exit(main())
