"""The explorer's compact state store: 16-byte state digests, edges as integer
arrays, per-state flags as bits.

A state's fingerprint is a nested tuple of a few hundred values; kept as the
dictionary key it cost about 10 KB per state (1.5 GB for 152k states, issue 7).
Here the key is a 16-byte BLAKE2b digest of a canonical serialization instead,
and the graph's edges are three `array` columns (source, choice, destination)
with one table of choice tokens (`c1`, `i1.NMI`, ...) shared by every edge.

The serialization must be a function of the value alone, the same in every
process: `repr()` is, for the ints, strings, enums, bools and tuples a
fingerprint is made of, except inside a `frozenset` (its iteration order
follows the hashes of its elements, and `str` hashes are salted per process).
Those are rewritten as a tagged tuple of their elements sorted by their own
serialization (`_stable`), only in the components whose repr shows one, so the
common case stays at the speed of one C-level `repr()`.

A 128-bit digest makes an accidental collision (two states taken for one, so a
part of the graph silently unexplored) about as likely as 2^-128 per pair: 10^-26
for 10^6 states. `debug=True` keeps every full tuple beside its digest and
raises `StoreError` on a collision, and on a tuple whose digest changed (a
serialization that is not canonical); `haltlab explore --debug` turns it on.

Labels (the atomic facts an `eventually` property is judged on) are one bit each
per state, decoded back to a frozenset on reading; `Exploration.labels` reads
like the dict it used to be.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator, Mapping, Sequence

__all__ = ["StoreError", "StateStore", "Edges", "Labels", "digest", "digest_serialized", "stable_repr",
           "part_repr", "tuple_repr",
           "GOAL", "TERMINAL", "UNEXPANDED"]

# Per-state flag bits (`StateStore.flags`).
GOAL = 1          # the goal held there: not expanded (the question is answered)
TERMINAL = 2      # no choice left (or the goal): where at_end is judged
UNEXPANDED = 4    # a bound left it unexplored: its successors are unknown
_PRESENT = 1 << 63  # in `Labels.bits`: this state was labelled (bits 0-62 are its facts)


class StoreError(RuntimeError):
    """Two different states had one digest, or one state two (debug mode)."""


def _stable(value):
    """`value` with every frozenset replaced by a sorted, tagged tuple."""
    if isinstance(value, tuple):
        return tuple(_stable(v) for v in value)
    if isinstance(value, frozenset):
        items = [_stable(v) for v in value]
        return ("<frozenset>", *sorted(items, key=repr))
    return value


_STABLE_OF_REPR: dict[str, str] = {}
"""repr -> stable serialization, for values that hold a frozenset (the ghost
state holds several in every state): `_stable()` walks the value in Python,
and the same few values come back state after state. Exact: the stable
serialization is a function of the repr, since `_stable()` only sorts each
frozenset's elements by their own serializations, which the repr lists (by
induction from the leaves, whose stable serialization is their repr)."""
_STABLE_OF_REPR_MAX = 1 << 16


def part_repr(value) -> str:
    """`stable_repr()` of one element of a fingerprint tuple."""
    r = repr(value)
    if "frozenset(" not in r:
        return r
    out = _STABLE_OF_REPR.get(r)
    if out is None:
        if len(_STABLE_OF_REPR) >= _STABLE_OF_REPR_MAX:
            _STABLE_OF_REPR.clear()
        out = _STABLE_OF_REPR[r] = repr(_stable(value))
    return out


def tuple_repr(parts: list[str]) -> str:
    """The serialization of a tuple whose elements serialize as `parts`
    (`repr()`'s own layout, the one-element tuple's trailing comma included):
    a caller that kept some elements' serializations composes the tuple's
    from them instead of serializing it again (`ExplorerDriver`)."""
    if len(parts) == 1:
        return "(" + parts[0] + ",)"
    return "(" + ", ".join(parts) + ")"


def stable_repr(value) -> str:
    """A serialization of a fingerprint that is equal for equal values in any
    process (see the module docstring)."""
    if isinstance(value, tuple):
        return "(" + ", ".join([part_repr(part) for part in value]) + ")"
    return part_repr(value)


def digest(value) -> bytes:
    return hashlib.blake2b(stable_repr(value).encode(), digest_size=16).digest()


def digest_serialized(text: str) -> bytes:
    """`digest(value)` from `stable_repr(value)` composed by the caller."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class Edges(Sequence):
    """The graph's edges as `(src, token, dst)` triples, stored as three integer
    columns and a token table (12 bytes an edge with the permutation column,
    instead of a tuple's ~80; at most 65,536 distinct tokens and permutations).
    `perm` (symmetry) is a fourth column: the index of the CPU permutation that
    maps the destination's stored representative onto the state this edge
    actually reached (0, the identity, without symmetry)."""

    def __init__(self) -> None:
        self.src = array("I")
        self.tok = array("H")
        self.dst = array("I")
        self.perm = array("H")
        self.tokens: list[str] = []
        self._token_ids: dict[str, int] = {}

    def append(self, edge: tuple[int, str, int], perm: int = 0) -> None:
        src, token, dst = edge
        t = self._token_ids.get(token)
        if t is None:
            t = self._token_ids[token] = len(self.tokens)
            self.tokens.append(token)
        self.src.append(src)
        self.tok.append(t)
        self.dst.append(dst)
        self.perm.append(perm)

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.src[i], self.tokens[self.tok[i]], self.dst[i]

    def __iter__(self) -> Iterator[tuple[int, str, int]]:
        tokens = self.tokens
        for s, t, d in zip(self.src, self.tok, self.dst):
            yield s, tokens[t], d


class Labels(Mapping):
    """State id -> frozenset of atomic facts, one bit per distinct fact."""

    def __init__(self) -> None:
        self.bits = array("Q")
        self.facts: list = []
        self._fact_bit: dict = {}
        self._decoded: dict[int, frozenset] = {}

    def set(self, sid: int, facts: frozenset) -> None:
        mask = 0
        for f in facts:
            b = self._fact_bit.get(f)
            if b is None:
                if len(self.facts) >= 63:
                    raise ValueError("more than 63 distinct label facts in one exploration")
                b = self._fact_bit[f] = len(self.facts)
                self.facts.append(f)
            mask |= 1 << b
        while len(self.bits) <= sid:
            self.bits.append(0)
        self.bits[sid] = mask | _PRESENT
        self._decoded.clear()

    def _facts_of(self, mask: int) -> frozenset:
        out = self._decoded.get(mask)
        if out is None:
            out = self._decoded[mask] = frozenset(f for b, f in enumerate(self.facts) if mask >> b & 1)
        return out

    def __getitem__(self, sid: int) -> frozenset:
        if not (0 <= sid < len(self.bits)) or not self.bits[sid] & _PRESENT:
            raise KeyError(sid)
        return self._facts_of(self.bits[sid] & ~_PRESENT)

    def __iter__(self):
        return (sid for sid, m in enumerate(self.bits) if m & _PRESENT)

    def mask(self, sid: int) -> int:
        """The state's facts as bits (0 when it has none or no label)."""
        return self.bits[sid] & ~_PRESENT if sid < len(self.bits) else 0

    def __len__(self) -> int:
        return sum(1 for m in self.bits if m & _PRESENT)

    def with_fact(self, fact) -> set[int]:
        """The states whose facts include `fact` (faster than walking items())."""
        b = self._fact_bit.get(fact)
        if b is None:
            return set()
        return {sid for sid, m in enumerate(self.bits) if m >> b & 1 and m & _PRESENT}


class StateStore:
    """Digest -> state id, and one flag byte per state."""

    def __init__(self, *, debug: bool = False) -> None:
        self.ids: dict[bytes, int] = {}
        self.flags = bytearray()
        self.debug = debug
        self._full: dict[bytes, tuple] = {}
        self._digest_of: dict[tuple, bytes] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def key(self, fp: tuple) -> bytes:
        d = digest(fp)
        if self.debug:
            self._check(fp, d)
        return d

    def _check(self, fp: tuple, d: bytes) -> None:
        other = self._full.setdefault(d, fp)
        if other != fp:
            raise StoreError(f"digest collision: {d.hex()} is the digest of two different states")
        earlier = self._digest_of.setdefault(fp, d)
        if earlier != d:
            raise StoreError(f"one state serialized two ways ({earlier.hex()} and {d.hex()}): "
                             "the serialization is not canonical")

    def add(self, key: bytes) -> tuple[int, bool]:
        """The state's id, and whether it is new."""
        sid = self.ids.get(key)
        if sid is not None:
            return sid, False
        sid = self.ids[key] = len(self.ids)
        self.flags.append(0)
        return sid, True

    def mark(self, sid: int, flag: int) -> None:
        self.flags[sid] |= flag

    def with_flag(self, flag: int) -> frozenset[int]:
        return frozenset(i for i, f in enumerate(self.flags) if f & flag)
