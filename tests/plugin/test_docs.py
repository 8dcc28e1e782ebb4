"""The README's tool reference is generated from the tools; it must not go stale."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_readme_tool_reference_is_current(provider):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import tool_reference

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = tool_reference.reference(provider)
    assert tool_reference.render(text, block) == text, (
        "README.md tool reference is stale: run .venv-qgis/bin/python scripts/tool_reference.py"
    )
    for alg in provider.algorithms():
        assert f"`{alg.id()}`" in block
        for d in alg.parameterDefinitions():
            assert f"| `{d.name()}` |" in block
