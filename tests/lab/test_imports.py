"""The lab measures the real thing: it imports nothing from the model."""

import ast
from pathlib import Path

import haltlab.lab

MODEL = ("haltlab.engine", "haltlab.machine", "haltlab.kernel", "haltlab.scenarios", "haltlab.checks")


def test_lab_imports_nothing_from_the_model():
    root = Path(haltlab.lab.__file__).parent
    bad = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.relative_to(root)}: {n}" for n in names if n.startswith(MODEL)]
    assert bad == []


def test_every_lab_module_declares_all():
    root = Path(haltlab.lab.__file__).parent
    missing = [str(p.relative_to(root)) for p in root.rglob("*.py") if "__all__" not in p.read_text()]
    assert missing == []
