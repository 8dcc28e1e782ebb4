#!/usr/bin/env python3
"""Write the tool reference (every SatClassify tool's parameters and outputs) into README.md.

The tables are generated from the algorithms themselves, between the markers
``<!-- tools:start -->`` and ``<!-- tools:end -->``; tests/plugin/test_docs.py fails when they are stale.

    .venv-qgis/bin/python scripts/tool_reference.py          (rewrites README.md)
    .venv-qgis/bin/python scripts/tool_reference.py --check  (exit 1 if README.md is stale)
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
START, END = "<!-- tools:start -->", "<!-- tools:end -->"


def _type(d):
    t = d.type()
    if t == "enum" and _catalogue(d):
        return "enum (by id): a model of the model list (shipped in resources/onnx/, or added by the user)"
    if t == "enum":
        opts = d.options()
        return "enum: " + ", ".join(f"{i} = {o}" for i, o in enumerate(opts))
    if t == "number":
        from satclassify_plugin import compat

        return "integer" if d.dataType() == compat.NUMBER_INTEGER else "number"
    return t


def _catalogue(d):
    """An enum whose options are the model list (they depend on the installation: not listed here)."""
    meta = d.metadata() or {}
    return bool((meta.get("satclassify") or {}).get("model_catalogue"))


def _default(d):
    if _catalogue(d):
        return "the first shipped model"
    v = d.defaultValue()
    if v is None or v == "":
        return ""
    if d.type() == "enum" and isinstance(v, int):
        return str(v)
    return str(v)


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def reference(provider):
    from satclassify_plugin import compat

    lines = []
    algs = sorted(provider.algorithms(), key=lambda a: (a.groupId(), a.name()))
    for alg in algs:
        lines.append(f"#### `{alg.id()}` — {alg.displayName()}")
        lines.append("")
        lines.append("| parameter | type | default | notes |")
        lines.append("|---|---|---|---|")
        for d in alg.parameterDefinitions():
            notes = [d.description()]
            if compat.has_flag(d.flags(), compat.PARAM_FLAG_OPTIONAL):
                notes.append("optional")
            if compat.has_flag(d.flags(), compat.PARAM_FLAG_ADVANCED):
                notes.append("advanced")
            lines.append(f"| `{d.name()}` | {_cell(_type(d))} | {_cell(_default(d))} | {_cell('; '.join(notes))} |")
        outs = [o for o in alg.outputDefinitions() if alg.parameterDefinition(o.name()) is None]
        if outs:
            lines.append("")
            lines.append("Outputs: " + ", ".join(f"`{o.name()}` ({o.description()})" for o in outs) + ".")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render(text, block):
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md lacks the markers {START} ... {END}")
    return pattern.sub(lambda _m: f"{START}\n{block}{END}", text)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, ROOT)
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from satclassify_plugin.provider import SatClassifyProvider

    prov = SatClassifyProvider()
    QgsApplication.processingRegistry().addProvider(prov)
    with open(README, encoding="utf-8") as f:
        text = f.read()
    new = render(text, reference(prov))
    if "--check" in argv:
        stale = new != text
        print("README.md tool reference is stale: run scripts/tool_reference.py" if stale else "up to date")
        return 1 if stale else 0
    with open(README, "w", encoding="utf-8") as f:
        f.write(new)
    print("README.md tool reference written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
