"""Architecture code: each arch module provides the same small set of entry points."""

from __future__ import annotations

from types import ModuleType

__all__ = ["arch_ops"]


def arch_ops(arch: str) -> ModuleType:
    if arch == "x86_64":
        from haltlab.kernel.arch import x86
        return x86
    if arch == "arm64":
        from haltlab.kernel.arch import arm64
        return arm64
    raise ValueError(f"no kernel model for arch {arch!r}")
