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

An object's `__fingerprint__()` stands for the object, whose state is elsewhere
in the fingerprint (memory, the ghost state) or immutable (a frozen record):
it must not change while the object is a local, since a CPU's part of the
fingerprint is kept until that CPU runs again (`stack_fingerprint_cacheable`;
`explore(debug=True)` recomputes every kept part and checks it).

Declared abstractions: kernel side records that no kernel code reads back (the
text of log records, timestamps, `k.marks`, `k.parked`) are not part of the state.
"""

from __future__ import annotations

import enum
import types

from haltlab.engine.memory import Var
from haltlab.engine.store import part_repr, tuple_repr

__all__ = ["FingerprintError", "value_fingerprint", "stack_fingerprint", "stack_fingerprint_cacheable",
           "coroutine_chain", "rewrite_state"]

_PLAIN = (int, str, bool, float, type(None), bytes)
_PLAIN_TYPES = frozenset(_PLAIN)   # the common case, by exact type: one set lookup


class FingerprintError(TypeError):
    """A local variable that the explorer cannot put in a state fingerprint."""


def value_fingerprint(value, where: str):
    if type(value) in _PLAIN_TYPES:
        return value
    by_type = _BY_TYPE.get(type(value))
    if by_type is not None:
        return by_type(value)
    return _value_fingerprint(value, where)


def _named(value):
    return value.__fingerprint__()


def _var(value):
    return ("var", value.name)


_BY_TYPE: dict[type, object] = {}
"""type -> how a value of exactly that type is fingerprinted, for the types
whose answer depends only on the type (an enum, a `Var`, an object with its
own `__fingerprint__()`): the kernel and the shared holders are locals of most
coroutines, and the chain of `isinstance()` tests below cost about 2 us each."""


def _same(value):
    return value


def _value_fingerprint(value, where: str):
    if isinstance(value, _PLAIN) or isinstance(value, enum.Enum):
        _BY_TYPE[type(value)] = _same               # an enum, or a subclass of a plain type
        return value
    if isinstance(value, Var):
        _BY_TYPE[type(value)] = _var
        return ("var", value.name)
    if isinstance(value, tuple):
        return tuple(value_fingerprint(v, where) for v in value)
    if isinstance(value, frozenset):
        return frozenset(value_fingerprint(v, where) for v in value)
    fp = getattr(value, "__fingerprint__", None)
    if fp is not None and not isinstance(value, type):
        if getattr(type(value), "__fingerprint__", None) is not None:
            _BY_TYPE[type(value)] = _named         # the type's own method, not an instance attribute
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
    return stack_fingerprint_cacheable(frames)[0]


_AWAITS = (types.CoroutineType, types.GeneratorType)


def stack_fingerprint_cacheable(frames, kept: dict | None = None,
                                serialize: bool = False) -> tuple[tuple, bool, str | None]:
    """`stack_fingerprint(frames)`, and whether it can change only when the CPU
    runs (so a driver may keep it until then, `ExplorerDriver`).

    Every value it is made of is immutable (the refusals above) or a `Var`'s
    name, a coroutine's locals and line change only while it runs, and its
    frames' ops and outcomes only while its CPU runs. The one way around that
    is a closure: a coroutine with free variables reads cells another function
    owns, and that function may run on another CPU; such a stack is not
    cacheable (none in the model today).

    `kept` (a dict the caller keeps per CPU between calls, updated here)
    holds each coroutine's (qualname, line, locals) together with what it was
    awaiting: a coroutine still suspended in the same await of a coroutine or
    generator that has not finished has not run since (it resumes only when
    what it awaits finishes, and a finished one cannot be awaited again), so
    its entry stands; only the coroutines that ran are walked again, at the
    bottom of the chain where the CPU's last step was.

    With `serialize`, the third item is `store.part_repr()` of the
    fingerprint, composed from each coroutine's own serialization (kept with
    its entry): the same text, without serializing the coroutines that did
    not run again; else None."""
    out = []
    plain = _PLAIN_TYPES
    chains = []
    cacheable = True
    for frame in frames:
        chain = []
        coro = frame.coro
        while type(coro) is types.CoroutineType:
            chain.append(coro)
            if coro.cr_code.co_freevars:
                cacheable = False
            coro = coro.cr_await
        chains.append(chain)
    # A closure anywhere on the stack may have changed a cell of any frame
    # on it: then nothing kept is used, nor kept.
    old = kept if kept and cacheable else None
    new: dict | None = {} if kept is not None else None
    frame_texts = [] if serialize else None
    for frame, coros in zip(frames, chains):
        chain = []
        texts = [] if serialize else None
        for coro in coros:
            code = coro.cr_code
            awaited = coro.cr_await
            if old is not None:
                prev = old.get(id(coro))
                if (prev is not None and prev[0] is coro and prev[1] is awaited and awaited is not None
                        and (awaited.cr_frame if type(awaited) is types.CoroutineType
                             else getattr(awaited, "gi_frame", None)) is not None):
                    chain.append(prev[2])
                    if serialize:
                        if prev[3] is None:
                            prev[3] = part_repr(prev[2])
                        texts.append(prev[3])
                    new[id(coro)] = prev
                    continue
            f = coro.cr_frame
            if f is None:               # finished or never started
                entry = (code.co_qualname, -1, ())
            else:
                name = code.co_qualname
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
                entry = (name, f.f_lineno, local_fp)
            chain.append(entry)
            text = part_repr(entry) if serialize else None
            if serialize:
                texts.append(text)
            if new is not None and type(awaited) in _AWAITS:
                new[id(coro)] = [coro, awaited, entry, text]
        op = frame.op.describe() if frame.op is not None else None
        waiting = frame.outcome is not None
        out.append((frame.kind, op, waiting, tuple(chain)))
        if serialize:
            frame_texts.append("(" + repr(frame.kind) + ", " + repr(op) + ", " + repr(waiting) + ", "
                               + tuple_repr(texts) + ")")
    if kept is not None:
        kept.clear()
        if cacheable:
            kept.update(new)
    return tuple(out), cacheable, (tuple_repr(frame_texts) if serialize else None)


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
