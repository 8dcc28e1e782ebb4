"""The training package's shape (issue 26): functions short enough to read, exporting and evaluating a model
without the training loop."""

import ast
import os
import subprocess
import sys

from .conftest import ROOT

MAX_FUNCTION_LINES = 80


def function_lengths(folder):
    """[(lines, 'path:line name')] of every function and method under ``folder`` (def line to last line)."""
    out = []
    for base, _dirs, files in os.walk(folder):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(base, name)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    out.append(
                        (node.end_lineno - first + 1, f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.name}")
                    )
    return sorted(out, reverse=True)


def test_no_function_in_training_is_longer_than_80_lines():
    lengths = function_lengths(os.path.join(ROOT, "training"))
    assert len(lengths) > 100  # the walk found the package
    long = [f"{where} ({n} lines)" for n, where in lengths if n > MAX_FUNCTION_LINES]
    assert not long, "split these functions into steps: " + "; ".join(long)


def test_the_length_rule_sees_a_long_function(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n" + "    x = 1\n" * 85 + "\n\ndef g():\n    pass\n")
    assert function_lengths(str(tmp_path))[0][0] == 86


def test_export_and_evaluate_do_not_import_the_training_loop():
    code = (
        "import sys\nimport training.cli, training.export, training.evaluate, training.evaluate_onnx, "
        "training.quantize, training.card, training.checkpoint\n"
        "print(sorted(m for m in ('training.train', 'training.crossval', 'training.ddp') if m in sys.modules))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
