"""printk's lockless ring buffer as a finite ring (`kernel/printk/printk_ringbuffer.c`).

Shape: 6.1's (`prb_reserve()`, `prb_final_commit()`, `prb_read_valid()`), with
6.9's b1c4c67a5e90 as a commit. The sizes are the kernel's: a data ring of
2^CONFIG_LOG_BUF_SHIFT bytes (`log_buf_shift`, a profile key) and a descriptor
ring of 2^(LOG_BUF_SHIFT - PRB_AVGBITS) entries (`_DEFINE_PRINTKRB` with
PRB_AVGBITS = 5); a record's data block is its text rounded up to 8 bytes plus
the 8-byte block id (`to_blk_size()`), and a block never wraps: one that would
cross the end of the ring starts again at its beginning, the rest of the lap
wasted (`get_next_lpos()`). So a 991-character flood record takes 1000 bytes,
and a 128 KiB ring holds 131 of them.

What the kernel does and the model keeps:
* writers never wait for readers: reserving pushes the tail, dropping the
  oldest records until the new block fits (`data_push_tail()`) and a
  descriptor is free (`desc_push_tail()`);
* a record is reserved, then filled, then finalized; a reader stops at a
  record that is reserved but not finalized ("Must stop", `_prb_read_valid()`):
  a CPU stopped by an NMI between the two leaves every later record unread,
  until 6.9's b1c4c67a5e90 lets the panic CPU skip it when later records exist;
* a reader behind the tail jumps to it: the gap is what the console counts as
  dropped.
Abridged: the tail cannot be pushed past a reserved record, so the writer's
reservation fails (the kernel's `prb_reserve()` returns false and the record is
lost); records are finalized at commit (every printk the model makes ends in a
newline, so `prb_final_commit()`, never a continuation line).

The whole ring is one shared variable holding an immutable value, updated by
one `lockless_update()` per reservation or commit: the kernel's cmpxchg loops
take effect at one point each (`engine.ops.lockless_update` says why that keeps
every outcome).

For the explorer, `SeqWindow` is the declared abstraction that keeps a flood's
state space finite: it rewrites every sequence number in a state relative to
the ring's tail (docs/design.md, "printk", argues why nothing is lost).
"""

from __future__ import annotations

from dataclasses import dataclass

from haltlab.engine.fingerprint import rewrite_state
from haltlab.engine.ops import READ_ONCE, lockless_update
from haltlab.engine.symmetry import cpu_locals

__all__ = ["Ring", "RingRecord", "prb_reserve", "prb_final_commit", "prb_read_valid",
           "prb_next_seq", "ring_sizes", "blk_size", "SeqWindow", "seq_locals", "PRB_AVGBITS"]

PRB_AVGBITS = 5             # kernel/printk/printk.c: average record text 32 bytes
_ID_BYTES = 8               # sizeof(struct prb_data_block.id) on a 64-bit kernel

RESERVED, FINALIZED = "reserved", "finalized"


_SEQ_LOCALS: dict[str, frozenset[str]] = {}
_DROPPED_LOCALS: dict[str, frozenset[str]] = {}


def seq_locals(*names: str, dropped: tuple[str, ...] = ()):
    """Declare which locals of a coroutine hold sequence numbers (records
    too), and which hold a dropped-record count, for `SeqWindow`; by qualified
    name, as `engine.symmetry.cpu_locals` does."""
    def register(fn):
        _SEQ_LOCALS[fn.__code__.co_qualname] = frozenset(names)
        _DROPPED_LOCALS[fn.__code__.co_qualname] = frozenset(dropped)
        return fn
    return register


@dataclass(frozen=True)
class RingRecord:
    seq: int
    begin_lpos: int          # where its block starts (the data ring's logical position)
    next_lpos: int           # where the next block may start
    state: str               # RESERVED or FINALIZED
    text: str

    def __fingerprint__(self) -> tuple:
        """As a local of a waiting coroutine (the record it is printing)."""
        return ("record", self.seq, self.state, self.text)


@dataclass(frozen=True)
class Ring:
    """The ring's state: the records still in it, oldest first. The tail is
    the oldest record's sequence number (`next_seq` when it is empty)."""

    data_bytes: int
    descs: int
    next_seq: int = 0
    head_lpos: int = 0
    records: tuple[RingRecord, ...] = ()

    @property
    def tail_seq(self) -> int:
        return self.records[0].seq if self.records else self.next_seq


def blk_size(text: str) -> int:
    """`to_blk_size()`: the text rounded up to the id's size, plus the id."""
    n = len(text.encode())
    return (n + _ID_BYTES - 1) // _ID_BYTES * _ID_BYTES + _ID_BYTES


def ring_sizes(log_buf_shift: int) -> tuple[int, int]:
    """(data ring bytes, descriptors) of `_DEFINE_PRINTKRB(printk_rb_static, ...)`."""
    return 1 << log_buf_shift, 1 << (log_buf_shift - PRB_AVGBITS)


def _reserve(ring: Ring, text: str) -> tuple[Ring, int | None]:
    size = blk_size(text)
    if size > ring.data_bytes:
        return ring, None                               # data_check_size()
    begin = ring.head_lpos
    if begin // ring.data_bytes != (begin + size - 1) // ring.data_bytes:
        nxt = (begin // ring.data_bytes + 1) * ring.data_bytes + size   # the block wraps: start the next lap
    else:
        nxt = begin + size
    records = ring.records
    drop = 0
    while drop < len(records) and (nxt - records[drop].begin_lpos > ring.data_bytes
                                   or len(records) - drop >= ring.descs):
        if records[drop].state != FINALIZED:
            return ring, None         # the tail cannot pass a record still being written
        drop += 1
    rec = RingRecord(ring.next_seq, begin, nxt, RESERVED, text)
    return Ring(ring.data_bytes, ring.descs, ring.next_seq + 1, nxt, records[drop:] + (rec,)), rec.seq


def _finalize(ring: Ring, seq: int) -> tuple[Ring, None]:
    # The records' sequence numbers are consecutive (`_reserve()` appends
    # `next_seq` and drops from the front), so record `seq` is found by its
    # distance from the oldest, not by a scan.
    records = ring.records
    i = seq - records[0].seq if records else -1
    if 0 <= i < len(records):
        r = records[i]
        records = records[:i] + (RingRecord(r.seq, r.begin_lpos, r.next_lpos, FINALIZED, r.text),) + records[i + 1:]
    return Ring(ring.data_bytes, ring.descs, ring.next_seq, ring.head_lpos, records), None


async def prb_reserve(k, text: str) -> int | None:
    """Reserve a record for `text` (filled at once: the model's text is known
    when the record is made); its sequence number, or None when the tail
    could not be pushed."""
    return await lockless_update(k.prb, lambda ring: _reserve(ring, text), "prb_reserve")


@cpu_locals(plain=("seq",))
@seq_locals("seq")
async def prb_final_commit(k, seq: int) -> None:
    await lockless_update(k.prb, lambda ring: _finalize(ring, seq), "prb_final_commit")


def read_valid(ring: Ring, seq: int, skip_non_finalized: bool) -> RingRecord | None:
    """`_prb_read_valid()` on a ring value: the first readable record at or
    after `seq` (the tail's when `seq` is behind it), or None when there is
    none yet or the next one is still being written. With
    `skip_non_finalized` (6.9's panic CPU) a record still being written is
    passed over when later ones exist."""
    records = ring.records
    if not records:
        return None
    i = max(0, seq - records[0].seq)           # consecutive sequence numbers (`_finalize()`)
    for i in range(i, len(records)):
        r = records[i]
        if r.state == FINALIZED:
            return r
        if not (skip_non_finalized and r.seq + 1 < ring.next_seq):
            return None
    return None


@cpu_locals(plain=("seq",))
@seq_locals("seq")
async def prb_read_valid(k, seq: int, skip_non_finalized: bool = False) -> RingRecord | None:
    ring = await READ_ONCE(k.prb)
    return read_valid(ring, seq, skip_non_finalized)


async def prb_next_seq(k) -> int:
    return (await READ_ONCE(k.prb)).next_seq


# --- the explorer's abstraction: sequence numbers relative to the tail ------------------

class SeqWindow:
    """The explorer's view of sequence numbers: each one held anywhere (the
    ring's records, the console's position, a local) is replaced by its
    distance from the ring's tail; a position behind the tail by -1, and a
    record a reader holds (`RingRecord`) by -1 when it is just behind the tail
    and -2 when further.

    Why that loses nothing the properties see: printk's code uses sequence
    numbers only to compare them with each other and with the ring's records,
    to count a gap, and once to add one (the reader's position becomes the
    printed record's + 1); all of that depends on distances, a reader behind
    the tail reads the tail's record whatever its distance, and the + 1 lands
    on the tail exactly when the record was just behind it. No other
    arithmetic happens on a position, so the abstract successor of a state is
    the same whichever concrete state stands for it (tests/kernel/
    test_printk_abstraction.py walks random runs to check that). The one thing that
    differs between two merged states is the N of a "** N printk messages
    dropped **" notice (`dropped_vars` and the locals `seq_locals(dropped=...)` names, kept as 0
    or 1 here), which changes the
    length of one notice line by a few digits: untimed, nothing depends on a
    length; timed, docs/design.md says so as a declared approximation.
    `saturate` maps counters that only a comparison reads to their last
    distinct value (`panic_console_dropped`: only "> 10" is asked).
    Values are bounded (distances by the ring's records, counters by their
    caps), so a flood that never ends has finitely many states.
    """

    def __init__(self, seq_vars: tuple[str, ...], dropped_vars: tuple[str, ...] = (),
                 saturate: dict[str, int] | None = None, ring_var: str = "prb") -> None:
        self.seq_vars = frozenset(seq_vars)
        self.dropped_vars = frozenset(dropped_vars)
        self.saturate = dict(saturate or {})
        self.ring_var = ring_var

    def __call__(self, fp: tuple) -> tuple:
        ring = dict(fp[0])[self.ring_var]
        base = ring.tail_seq

        def rel(s):
            return s - base if s >= base else -1

        def rel_record(s):
            # A record being printed can fall behind the tail while it is:
            # one behind (its successor is the tail) and further behind differ,
            # since the reader then sets its position to the record's + 1.
            return s - base if s >= base - 1 else -2

        def memory(name, value):
            if name == self.ring_var:
                # Logical positions only matter as differences and modulo the
                # ring's size (where a block would wrap): relative to the
                # oldest block's start, plus where that start sits in the ring.
                lbase = value.records[0].begin_lpos if value.records else value.head_lpos
                return (value.data_bytes, value.descs, rel(value.next_seq), lbase % value.data_bytes,
                        value.head_lpos - lbase,
                        tuple((rel(r.seq), r.begin_lpos - lbase, r.next_lpos - lbase, r.state, r.text)
                              for r in value.records))
            if name in self.seq_vars:
                return rel(value)
            if name in self.dropped_vars:
                return min(value, 1)
            cap = self.saturate.get(name)
            if cap is not None:
                return min(value, cap)
            return value

        def local(qualname, var, value):
            names = _SEQ_LOCALS.get(qualname)
            if names is None:
                return value
            if var in _DROPPED_LOCALS[qualname]:
                return min(value, 1)
            if var not in names:
                return value
            if type(value) is tuple and value and value[0] == "record":
                return ("record", rel_record(value[1]), *value[2:])
            if type(value) is int:
                return rel(value)
            return value

        return rewrite_state(fp, memory, local)
