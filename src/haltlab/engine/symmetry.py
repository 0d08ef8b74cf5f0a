"""Symmetry among interchangeable CPUs: one stored state per orbit.

When every CPU of a scenario runs the same program in the same role (the race:
all CPUs call `panic()` at once), renaming the CPUs of a reachable state gives
a reachable state with the same future up to the renaming, and the same
verdicts if the properties do not single out a CPU by number. The explorer
then stores a canonical form of each state (the state renamed by a permutation
chosen from the state itself) and explores one state per orbit (Ip and Dill's
scalarsets; Emerson and Sistla). The argument, and what it needs of the model,
is in docs/design.md ("Reductions").

Renaming a state must rename every CPU id the state holds, or the canonical
form is wrong and pruning unsound. Per-CPU parts (hardware flags, stacks, the
difference-bound matrix of a timed exploration) move by position; CPU ids held
as values are found by declaration:

* a `Var` declares `kind=CPU` (an id, negative values being sentinels such as
  PANIC_CPU_INVALID), `kind=CPUMASK` (an int used as a bitmap) or `kind=PLAIN`;
* a coroutine declares its locals with `@cpu_locals(cpu=..., cpumask=...,
  plain=...)` (`this_cpu = smp_processor_id()`, the old value a cmpxchg on
  `panic_cpu` returns, a mask computed from one);
* interrupts in flight name their target CPU (the explorer knows);
* the ghost state is typed by the scenario's `CpuSymmetry(ghost=...)`.

The checked rule: under symmetry every int (not bool) held in a Var or in a
local of a suspended coroutine must have a declared kind. An undeclared one
raises `SymmetryError` naming the variable, instead of being left unrenamed
(silently unsound). So does an initial state that is not itself symmetric.

The canonical form: each interchangeable CPU gets a colour, a serialization of
what it looks like from inside (its hardware, its stack with ids written as
self/other, which shared variables name it, which masks and ghost sets hold it,
which interrupts are on their way to it), refined by the colours of the CPUs it
names; CPUs are renamed in order of colour, ties broken by number. Any
permutation gives a sound key (equal keys are equal renamed states); the
colours only make equal orbits meet. tests/engine/test_symmetry.py checks that
on the race the number of states is the number of orbits of the unreduced
graph (computed by brute force over every permutation).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from itertools import permutations

from haltlab.engine.store import stable_repr
from haltlab.engine.timing import permute_clocks

__all__ = ["VarKind", "CPU", "CPUMASK", "PLAIN", "SetOf", "Items", "SymmetryError", "CpuSymmetry",
           "cpu_locals", "canonical", "permuted", "check_symmetric_root", "concrete_choices",
           "rename_choice", "compose", "invert", "canonical_and_plain"]


class VarKind(enum.Enum):
    CPU = "cpu"            # a CPU id; negative values are sentinels and stay as they are
    CPUMASK = "cpumask"    # an int used as a bitmap of CPUs
    PLAIN = "plain"        # holds no CPU id


CPU, CPUMASK, PLAIN = VarKind.CPU, VarKind.CPUMASK, VarKind.PLAIN


@dataclass(frozen=True)
class SetOf:
    """A frozenset (or sorted tuple) whose elements are of `kind`."""
    kind: object


@dataclass(frozen=True)
class Items:
    """A tuple of (name, value) pairs whose values are of `kind` (the kernel's
    ghost fingerprint: `(("panic_owners", frozenset({0})), ...)`)."""
    kind: object


class SymmetryError(TypeError):
    """A CPU-valued datum whose kind is not declared, or a state the declared
    symmetry does not hold for."""


@dataclass(frozen=True)
class CpuSymmetry:
    """What a scenario declares (`Run.symmetry`): the CPUs that are
    interchangeable, and the kind of its ghost state."""

    cpus: tuple[int, ...]
    ghost: object = PLAIN
    frozen: tuple[int, ...] = field(default=())   # CPUs that keep their number


_LOCALS: dict[str, dict[str, object]] = {}


def cpu_locals(*, cpu: tuple[str, ...] = (), cpumask: tuple[str, ...] = (), plain: tuple[str, ...] = (),
               **schemas):
    """Declare which locals of a coroutine hold CPU ids or masks (and which
    ints are plain), for renaming under symmetry. Registered by qualified
    name, which is what a state's stack records; two functions of one name
    (x86's and arm64's `panic_smp_self_stop`) must agree."""
    kinds: dict[str, object] = {**{n: CPU for n in cpu}, **{n: CPUMASK for n in cpumask},
                                **{n: PLAIN for n in plain}, **schemas}

    def register(fn):
        name = fn.__code__.co_qualname
        old = _LOCALS.setdefault(name, kinds)
        if old != kinds:
            raise SymmetryError(f"{name}(): two declarations of its CPU locals disagree: {old} and {kinds}")
        return fn
    return register


# --- typing: CPU ids marked where they are ------------------------------------------

class _Cpu:
    __slots__ = ("v",)

    def __init__(self, v: int) -> None:
        self.v = v


class _Mask:
    __slots__ = ("v",)

    def __init__(self, v: int) -> None:
        self.v = v


def _has_int(value) -> bool:
    t = type(value)
    if t is int:
        return True
    if t is tuple or t is frozenset:
        return any(_has_int(v) for v in value)
    return False


def _typed(value, kind, where: str):
    if kind is PLAIN or value is None:
        return value
    if kind is CPU:
        if type(value) is not int:
            raise SymmetryError(f"{where}: declared a CPU id, holds {value!r}")
        return _Cpu(value) if value >= 0 else value
    if kind is CPUMASK:
        if type(value) is not int or value < 0:
            raise SymmetryError(f"{where}: declared a cpumask, holds {value!r}")
        return _Mask(value)
    if isinstance(kind, SetOf):
        return frozenset(_typed(v, kind.kind, where) for v in value)
    if isinstance(kind, Items):
        return tuple((name, _typed(v, kind.kind, f"{where}[{name!r}]")) for name, v in value)
    if isinstance(kind, tuple):
        if type(value) is not tuple or len(value) != len(kind):
            raise SymmetryError(f"{where}: declared a tuple of {len(kind)}, holds {value!r}")
        return tuple(_typed(v, k, where) for v, k in zip(value, kind))
    raise SymmetryError(f"{where}: unknown kind {kind!r}")


def _typed_locals(chain, strict: bool) -> tuple:
    out = []
    for qualname, line, local_fp in chain:
        decl = _LOCALS.get(qualname, {})
        locs = []
        for var, val in local_fp:
            kind = decl.get(var)
            if kind is None:
                if strict and _has_int(val):
                    raise SymmetryError(
                        f"{qualname}(): local {var!r} holds {val!r} and has no declared kind; under "
                        "symmetry every int a CPU keeps must be declared with @cpu_locals(cpu=..., "
                        "cpumask=..., plain=...) so that renaming CPUs renames it")
                locs.append((var, val))
            else:
                locs.append((var, _typed(val, kind, f"{qualname}(): local {var!r}")))
        out.append((qualname, line, tuple(locs)))
    return tuple(out)


def _typed_state(run, sym: CpuSymmetry, fp: tuple | None = None) -> tuple:
    if fp is None:
        fp = run.fingerprint()
    if len(fp) == 6:
        mem, hw, inflight, strands, reset, ghost = fp
        dbm = None
    elif len(fp) == 7:
        mem, hw, inflight, strands, reset, dbm, ghost = fp
    else:
        raise SymmetryError(f"a state fingerprint of {len(fp)} parts: symmetry knows the layouts "
                            "(memory, hardware, in flight, stacks, reset, [clocks], ghost)")
    kinds = run.machine.memory.vars
    tmem = []
    for name, value in mem:
        kind = kinds[name].kind
        if kind is None:
            if _has_int(value) and type(value) is not bool:
                raise SymmetryError(f"shared variable {name!r} holds {value!r} and has no declared kind; "
                                    "under symmetry give it kind=CPU, CPUMASK or PLAIN")
            tmem.append((name, value))
        else:
            tmem.append((name, _typed(value, kind, f"shared variable {name!r}")))
    tinflight = tuple((_Cpu(t), v) for t, v in inflight)
    tstrands = tuple((status, tuple((k, op, w, _typed_locals(chain, True)) for k, op, w, chain in stack))
                     for status, stack in strands)
    tghost = _typed(ghost, sym.ghost, "ghost state") if ghost is not None else None
    return (tuple(tmem), hw, tinflight, tstrands, reset, dbm, tghost, len(fp))


# --- renaming ------------------------------------------------------------------------

def _rename(value, perm):
    t = type(value)
    if t is _Cpu:
        return perm[value.v]
    if t is _Mask:
        m, out = value.v, 0
        while m:
            low = m & -m
            out |= 1 << perm[low.bit_length() - 1]
            m ^= low
        return out
    if t is tuple:
        return tuple(_rename(v, perm) for v in value)
    if t is frozenset:
        return frozenset(_rename(v, perm) for v in value)
    return value


def permuted(typed: tuple, perm) -> tuple:
    """The fingerprint of the state with CPU i renamed perm[i] (plain values,
    in the layout of `Run.fingerprint()`)."""
    mem, hw, inflight, strands, reset, dbm, ghost, parts = typed
    n = len(perm)
    new_hw, new_strands = [None] * n, [None] * n
    for i in range(n):
        new_hw[perm[i]] = hw[i]
        new_strands[perm[i]] = _rename(strands[i], perm)
    out = [_rename(mem, perm), tuple(new_hw), tuple(sorted(_rename(inflight, perm))), tuple(new_strands), reset]
    if parts == 7:
        out.append(permute_clocks(dbm, perm))
    out.append(_rename(ghost, perm))
    return tuple(out)


# --- colours and the canonical form ------------------------------------------------

def _rel(value, me: int, colours):
    """`value` as CPU `me` sees it: itself, others by colour."""
    t = type(value)
    if t is _Cpu:
        return "S" if value.v == me else ("O", colours[value.v])
    if t is _Mask:
        m = value.v
        others = []
        for cpu in range(len(colours)):
            if m >> cpu & 1 and cpu != me:
                others.append(colours[cpu])
        # A frozen CPU's colour is a tuple, the others' ints: sorted by repr,
        # a multiset order that is the same whatever the mix.
        return ("M", bool(m >> me & 1), tuple(sorted(others, key=repr)))
    if t is tuple:
        return tuple(_rel(v, me, colours) for v in value)
    if t is frozenset:
        return ("<set>", tuple(sorted((_rel(v, me, colours) for v in value), key=repr)))
    return value


def _dbm_view(clocks, me: int, n: int):
    """What CPU `me`'s timing looks like without naming CPUs: its clock's
    bounds and its own segment and deadline (`haltlab.engine.timing`)."""
    if clocks is None:
        return None
    zone, segment, deadline, _irq, _rem, notice = clocks
    k, c = 3 * n + 1, me + 1
    return (zone[c * k], zone[c], segment[me], deadline[me], notice[me])


def _colours(typed: tuple, sym: CpuSymmetry, n: int) -> list[str]:
    mem, hw, inflight, strands, reset, dbm, ghost, _ = typed
    shared = (mem, inflight, ghost)
    colours: list = [0] * n
    for cpu in sym.frozen:
        colours[cpu] = ("F", cpu)
    distinct = 1
    for _round in range(n):
        sigs = list(colours)
        for i in sym.cpus:
            sigs[i] = stable_repr((colours[i], hw[i], _rel(strands[i], i, colours), _rel(shared, i, colours),
                                   _dbm_view(dbm, i, n)))
        ranks = {s: r for r, s in enumerate(sorted({sigs[i] for i in sym.cpus}))}
        new = list(colours)
        for i in sym.cpus:
            new[i] = ranks[sigs[i]]
        colours = new
        now = len(ranks)
        if now == distinct or now == len(sym.cpus):
            break
        distinct = now
    return colours


def canonical(run) -> tuple[tuple, tuple[int, ...]]:
    """The canonical form of `run`'s state and the permutation that gave it
    (`perm[i]`: the number CPU i has in the canonical form)."""
    canon, perm, _fp = canonical_and_plain(run)
    return canon, perm


def canonical_and_plain(run) -> tuple[tuple, tuple[int, ...], tuple]:
    """`canonical()`, and the state's own fingerprint, computed once for both.
    Where the permutation is the identity the canonical form *is* that
    fingerprint (renaming by the identity only unwraps the typed CPU ids), so
    it is returned as it is rather than rebuilt (`permuted()` walks the whole
    state: about a tenth of a symmetric flood search's time)."""
    sym = run.symmetry
    fp = run.fingerprint()
    typed = _typed_state(run, sym, fp)
    perm = _canonical_perm(typed, sym, run.machine.ncpus)
    if all(i == p for i, p in enumerate(perm)):
        return fp, perm, fp
    return permuted(typed, perm), perm, fp


def _canonical_perm(typed, sym: CpuSymmetry, n: int) -> tuple[int, ...]:
    colours = _colours(typed, sym, n)
    order = sorted(sym.cpus, key=lambda i: (colours[i], i))
    slots = sorted(sym.cpus)
    perm = list(range(n))
    for slot, cpu in zip(slots, order):
        perm[cpu] = slot
    return tuple(perm)


def orbit_key(run) -> tuple:
    """The least renamed fingerprint over every permutation (by serialization):
    the true orbit representative, for tests on small runs (n! renamings)."""
    sym = run.symmetry
    typed = _typed_state(run, sym)
    n = run.machine.ncpus
    best = None
    for p in permutations(sym.cpus):
        perm = list(range(n))
        for src, dst in zip(sym.cpus, p):
            perm[src] = dst
        cand = stable_repr(permuted(typed, perm))
        if best is None or cand < best:
            best = cand
    return best


def check_symmetric_root(run) -> None:
    """The initial state must be invariant under swapping any two
    interchangeable CPUs (adjacent swaps generate every permutation), or the
    orbits of reachable states are not what the explorer assumes."""
    sym = run.symmetry
    typed = _typed_state(run, sym)
    n = run.machine.ncpus
    ident = permuted(typed, tuple(range(n)))
    cpus = sorted(sym.cpus)
    for a, b in zip(cpus, cpus[1:]):
        perm = list(range(n))
        perm[a], perm[b] = b, a
        if permuted(typed, perm) != ident:
            raise SymmetryError(f"the initial state is not symmetric under swapping CPU{a} and CPU{b}: "
                                "the CPUs declared interchangeable do not start alike")


# --- choices along a path ----------------------------------------------------------

def rename_choice(choice: str, perm) -> str:
    """`c1`, `t1`, `i1.NMI` with CPU 1 renamed perm[1]."""
    kind, rest = choice[0], choice[1:]
    cpu, dot, vector = rest.partition(".")
    return f"{kind}{perm[int(cpu)]}{dot}{vector}"


def compose(g, h) -> tuple[int, ...]:
    """r -> g[h[r]]."""
    return tuple(g[x] for x in h)


def invert(g) -> tuple[int, ...]:
    out = [0] * len(g)
    for i, x in enumerate(g):
        out[x] = i
    return tuple(out)


def concrete_choices(edges, perms, edge_ids, start=None) -> list[str]:
    """The choices of a path of quotient edges, renamed into the CPUs of the run
    that follows them from the root (see `Exploration`); `start` is the
    renaming in force at the path's first state (the identity at the root)."""
    return concrete_walk(edges, perms, edge_ids, start)[0]


def concrete_walk(edges, perms, edge_ids, start=None) -> tuple[list[str], tuple[int, ...]]:
    """`concrete_choices`, and the renaming in force at the path's end:
    representative CPU r of the last state is CPU g[r] of the run."""
    g = start
    out = []
    for e in edge_ids:
        token = edges.tokens[edges.tok[e]]
        sigma = perms[edges.perm[e]]
        if g is None:
            g = tuple(range(len(sigma)))
        out.append(rename_choice(token, g))
        g = compose(g, sigma)
    return out, g
