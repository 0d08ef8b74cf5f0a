"""State fingerprints for the explorer.

A state is: shared memory, each CPU's hardware flags and pending interrupts, the
interrupts still in flight, and each CPU's stack of contexts as (function, line,
locals) for every coroutine in the chain, plus what the CPU is waiting for. Two
states with equal fingerprints have the same future, which is what lets the
explorer prune revisits.

That holds only if every local that can influence the future is in the
fingerprint, so locals must be values: ints, strings, tuples, frozensets, enums,
shared `Var`s (by name; their contents are in memory), and objects that declare a
`__fingerprint__()` (the kernel, the machine). Anything else (a list, a dict, an
arbitrary object) is refused with the function and variable named, rather than
hashed by identity and silently breaking pruning.

Declared abstractions: kernel side records that no kernel code reads back (the
text of log records, timestamps, `k.marks`, `k.parked`) are not part of the state.
"""

from __future__ import annotations

import enum
import types

from haltlab.engine.memory import Var

__all__ = ["FingerprintError", "value_fingerprint", "stack_fingerprint", "coroutine_chain", "rewrite_state"]

_PLAIN = (int, str, bool, float, type(None), bytes)
_PLAIN_TYPES = frozenset(_PLAIN)   # the common case, by exact type: one set lookup


class FingerprintError(TypeError):
    """A local variable that the explorer cannot put in a state fingerprint."""


def value_fingerprint(value, where: str):
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, _PLAIN) or isinstance(value, enum.Enum):
        return value
    if isinstance(value, Var):
        return ("var", value.name)
    if isinstance(value, tuple):
        return tuple(value_fingerprint(v, where) for v in value)
    if isinstance(value, frozenset):
        return frozenset(value_fingerprint(v, where) for v in value)
    fp = getattr(value, "__fingerprint__", None)
    if fp is not None and not isinstance(value, type):
        return fp()
    if isinstance(value, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return ("fn", value.__qualname__)
    raise FingerprintError(f"{where}: a {type(value).__name__} cannot be fingerprinted; "
                           "locals that reach the explorer must be immutable values")


def coroutine_chain(coro):
    """A coroutine and those it awaits, outermost first."""
    while isinstance(coro, types.CoroutineType):
        yield coro
        coro = coro.cr_await


def stack_fingerprint(frames) -> tuple:
    """(kind, op, ((qualname, line, locals), ...)) for each frame, bottom first."""
    out = []
    plain = _PLAIN_TYPES
    for frame in frames:
        chain = []
        for coro in coroutine_chain(frame.coro):
            f = coro.cr_frame
            if f is None:               # finished or never started
                chain.append((coro.cr_code.co_qualname, -1, ()))
                continue
            name = coro.cr_code.co_qualname
            try:
                # Plain values stand for themselves (`value_fingerprint` returns
                # them as they are): tested inline, without a call per local.
                local_fp = tuple([(var, val) if type(val) in plain else (var, value_fingerprint(val, ""))
                                  for var, val in sorted(f.f_locals.items())])
            except FingerprintError:
                # Found again to name it: formatting a location for every local
                # of every state up front cost about 6% of the explorer's time.
                for var, val in sorted(f.f_locals.items()):
                    value_fingerprint(val, f"{name}(): local {var!r}")
                raise
            chain.append((name, f.f_lineno, local_fp))
        op = frame.op.describe() if frame.op is not None else None
        waiting = frame.outcome is not None
        out.append((frame.kind, op, waiting, tuple(chain)))
    return tuple(out)


def rewrite_state(fp: tuple, memory, local) -> tuple:
    """A state fingerprint (`Run.fingerprint()`'s layout: memory, hardware, in
    flight, stacks, reset, clocks, ghost) with each shared variable's value
    replaced by `memory(name, value)` and each coroutine local's by
    `local(qualname, var, value)`: the hook a declared abstraction
    (`Run.abstraction`) rewrites a state through, so that it never needs to
    know the layout."""
    mem, hw, inflight, strands, *rest = fp
    mem = tuple((name, memory(name, value)) for name, value in mem)
    strands = tuple(
        (status, tuple((kind, op, waiting, tuple((qualname, line, tuple((var, local(qualname, var, val))
                                                                          for var, val in locs))
                                                 for qualname, line, locs in chain))
                       for kind, op, waiting, chain in stack))
        for status, stack in strands)
    return (mem, hw, inflight, strands, *rest)
