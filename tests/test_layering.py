"""Imports go one way: engine <- machine <- kernel <- scenarios; the checker on
the engine only; the lab on nothing of the model; report and CLI on top.

Walks every module under src/haltlab with `ast` (imports inside functions
included, relative imports resolved), so a lazy import cannot slip past.
"""

import ast
from pathlib import Path


import haltlab

ROOT = Path(haltlab.__file__).parent
LEAVES = {"errors", "results", "procs"}          # imported from anywhere; import at most `errors`

# layer -> the haltlab layers it may import (besides itself)
ALLOWED = {
    "engine": set(),
    "machine": {"engine", "errors", "results"},
    "kernel": {"engine", "machine", "errors"},
    "scenarios": {"engine", "machine", "kernel", "checks", "errors", "results"},
    "checks": {"engine"},
    "lab": {"errors", "results", "procs"},
    "errors": set(),
    "results": {"errors"},
    "procs": set(),             # output-path checks raise UserError
}
# Anything else (report, cli*, sweep, the package __init__) sits on top: it may
# import anything, and any import of it from a layer above counts as upward.


def _modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _dotted(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = ["haltlab", *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every haltlab module `path` imports, as a dotted name."""
    package = _dotted(path) if path.name == "__init__.py" else _dotted(path).rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out |= {f"{name}.{a.name}" for a in node.names}   # `from haltlab import kernel`
    return {n for n in out if n == "haltlab" or n.startswith("haltlab.")}


def _target_layer(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) < 2:
        return None
    layer = parts[1]
    return layer if (ROOT / layer).is_dir() or (ROOT / f"{layer}.py").is_file() else None


def _violations() -> list[str]:
    bad = []
    for path in _modules():
        layer = _layer(path)
        if layer not in ALLOWED:
            continue
        for name in sorted(_imports(path)):
            target = _target_layer(name)
            if target is None or target == layer:
                continue
            if target not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(ROOT)} ({layer}) imports {name} ({target})")
    return bad


def test_imports_go_one_way():
    assert _violations() == []


def test_the_walker_sees_imports():
    # Guards the test above against vacuous success: known edges must be seen.
    assert "haltlab.kernel.panic" in _imports(ROOT / "scenarios" / "panic.py")
    assert "haltlab.engine.ops" in _imports(ROOT / "kernel" / "idle.py")
    kernel_imports = _imports(ROOT / "kernel" / "kernel.py")
    assert "haltlab.kernel.arch" in kernel_imports          # a lazy import inside a method
    assert _layer(ROOT / "engine" / "core.py") == "engine" and _layer(ROOT / "cli.py") == "cli"


def test_every_layer_with_a_rule_exists():
    # A renamed layer would make its rule vacuous; `checks` alone may be absent.
    missing = [layer for layer in ALLOWED
               if not ((ROOT / layer).is_dir() or (ROOT / f"{layer}.py").is_file())]
    assert missing in ([], ["checks"])


def _missing_all(paths) -> list[str]:
    missing = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                 for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                 if isinstance(t, ast.Name)}
        if "__all__" not in names:
            missing.append(str(path.relative_to(ROOT)))
    return missing


def test_every_module_defines_all():
    assert _missing_all(p for p in _modules() if p.name != "__init__.py") == []


def test_every_package_init_defines_all():
    assert _missing_all(p for p in _modules() if p.name == "__init__.py") == []
