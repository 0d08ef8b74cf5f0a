"""The explorer's trace, for a person: each operation beside the kernel
function and C file it mirrors, printed literally.

The explorer records where each CPU was as `function:line`, the line being a
line of haltlab's Python model (`haltlab/kernel/panic.py:91`), not of the
kernel's C. This view finds the model module that defines that function at
that line and names the C file it mirrors: the module's `C_FILES` entry for the
function if there is one (an arch module mirrors several files), else its
`C_FILE` constant, else the first `*.c` path its docstring names (every kernel
model module's docstring names its C file, drgn's habit).

The text is a `rich.text.Text`, never markup: `panic_on_other_cpu:100:` read
as markup is an emoji (`:100:`), and `[c1]` a style tag.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text

import haltlab

__all__ = ["TRACE_HEADER", "Location", "kernel_location", "trace_lines", "trace_text"]

TRACE_HEADER = ("trace: one line per operation, grouped under the choice that ran it; "
                "each names the kernel function and the C file it mirrors, then the model's "
                "Python line (haltlab/kernel/...py:N), which is where the location points")

_PACKAGE_PARENT = Path(haltlab.__file__).parent.parent
_WHERE = re.compile(r"^(?P<function>\w+):(?P<line>\d+): (?P<what>.*)$", re.S)
_C_PATH = re.compile(r"`((?:[\w-]+/)*[\w-]+\.c)`")


@dataclass(frozen=True)
class Location:
    function: str
    c_file: str | None      # "kernel/panic.c"; None for model glue with no C counterpart
    model_file: str         # "haltlab/kernel/panic.py"
    line: int


def _c_file(module, function: str) -> str | None:
    per_function = getattr(module, "C_FILES", {})
    if function in per_function:
        return per_function[function]
    explicit = getattr(module, "C_FILE", None)
    if isinstance(explicit, str):
        return explicit
    found = _C_PATH.search(module.__doc__ or "")
    return found.group(1) if found else None


@functools.lru_cache(maxsize=1)
def _functions() -> dict[str, list[tuple[int, int, str, str | None]]]:
    """function name -> [(first line, last line, model file, C file)] over every
    module of the kernel model."""
    import haltlab.kernel
    table: dict[str, list[tuple[int, int, str, str | None]]] = {}
    for info in pkgutil.walk_packages(haltlab.kernel.__path__, "haltlab.kernel."):
        module = importlib.import_module(info.name)
        model_file = Path(module.__file__).relative_to(_PACKAGE_PARENT).as_posix()
        for name, fn in vars(module).items():
            if inspect.isfunction(fn) and fn.__module__ == module.__name__:
                lines, first = inspect.getsourcelines(fn)
                table.setdefault(name, []).append((first, first + len(lines) - 1, model_file,
                                                   _c_file(module, name)))
    return table


def _other_arch(model_file: str, arch: str | None) -> bool:
    """Whether `model_file` is another architecture's module than `arch`'s
    (`haltlab/kernel/arch/x86.py` and `x86_crash.py` are x86_64's): the arch
    modules define the same entry points, so a name and a line can fall in two."""
    if arch is None or not model_file.startswith("haltlab/kernel/arch/"):
        return False
    from haltlab.kernel.arch import arch_ops
    mine = arch_ops(arch).__name__.rsplit(".", 1)[1]
    return Path(model_file).stem.split("_")[0] != mine


def kernel_location(function: str, line: int, arch: str | None = None) -> Location | None:
    """The model function `function` whose source holds `line`, or None (a name
    the kernel model does not define, such as a scenario's own coroutine); with
    `arch` (the run's `profile.arch`), never another architecture's."""
    for first, last, model_file, c_file in _functions().get(function, ()):
        if first <= line <= last and not _other_arch(model_file, arch):
            return Location(function, c_file, model_file, line)
    return None


def _op_line(cpu: int, what: str, arch: str | None = None) -> str:
    m = _WHERE.match(what)
    if m is None:
        return f"    CPU{cpu} {what}"
    loc = kernel_location(m["function"], int(m["line"]), arch)
    if loc is None:
        return f"    CPU{cpu} {m['function']}() [model line {m['line']}]: {m['what']}"
    c_file = f" {loc.c_file}" if loc.c_file else ""
    return f"    CPU{cpu} {loc.function}(){c_file} [{loc.model_file}:{loc.line}]: {m['what']}"


def trace_lines(trace: list[tuple[str, int, str]], arch: str | None = None) -> list[str]:
    """The header, then one line per operation under the choice that ran it
    (`arch`: the run's, which tells the arch modules' same-named functions apart)."""
    lines, last = [TRACE_HEADER], None
    for choice, cpu, what in trace:
        if choice != last:
            step, _, token = choice.partition(":")
            lines.append(f"step {step} [{token}]" if token else "boot")
            last = choice
        lines.append(_op_line(cpu, what, arch))
    return lines


def trace_text(trace: list[tuple[str, int, str]], arch: str | None = None) -> Text:
    """`trace_lines` as one literal rich Text (no markup, no emoji codes)."""
    return Text("\n".join(trace_lines(trace, arch)))
