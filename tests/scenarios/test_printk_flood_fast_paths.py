"""The flood run's speed-ups change its speed, never its results.

A flood run (`run_printk_flood`) makes thousands of ops, most of them atomics
whose jittered cost is drawn afresh, on a ring buffer of ~131 records. Its fast
paths: `Machine.cost_ns()`/`done()` find a jittered key's base without a
KeyError, `Jitter.draw()` calls a bound `random`, `READ_ONCE`/`WRITE_ONCE` are
`_Rmw`s that start without calling their `fn`, `KernelConfig.has()` reads the
commits kept at construction, and the ring finds a record by its distance from
the tail instead of scanning (`_finalize()`, `read_valid()`). `_reference`
below puts the code they replaced back (the generic `_Rmw`, the scans, the
KeyError path, the property) and drives every CPU through the generic
`Driver.run_strand()` with no chaining; each configuration must then give
byte-identical results, consoles, interrupt logs, printk logs, event counts and
generator states, across runs that end, livelock, time out, drop records and
fire 13fb0f74d702's guard.
"""

import sys

import pytest

import haltlab.scenarios.printk_flood as flood
from haltlab.engine import ops
from haltlab.engine.core import Driver
from haltlab.engine.simulator import Simulator
from haltlab.kernel import printk_ringbuffer as prb
from haltlab.kernel.kernel import KernelConfig
from haltlab.machine.jitter import Jitter
from haltlab.machine.machine import Machine
from haltlab.machine.profile import load_profile
from haltlab.results import dumps
from haltlab.scenarios.printk_flood import PrintkFloodConfig
from haltlab.sweep.flood import run_seed


class _ReferenceSimulator(Simulator):
    """Every op yielded to the generic step loop, every completion through the heap."""

    def run_strand(self, s, value, chain=False):
        Driver.run_strand(self, s, value)

    def _then(self, at_ns, chain, fn, args):
        return super()._then(at_ns, False, fn, args)

    def on_op(self, s, op):
        pass


def _finalize_scan(ring, seq):
    out = tuple(prb.RingRecord(r.seq, r.begin_lpos, r.next_lpos, prb.FINALIZED, r.text) if r.seq == seq else r
                for r in ring.records)
    return prb.Ring(ring.data_bytes, ring.descs, ring.next_seq, ring.head_lpos, out), None


def _read_valid_scan(ring, seq, skip_non_finalized):
    for r in ring.records:
        if r.seq < seq:
            continue
        if r.state == prb.FINALIZED:
            return r
        if not (skip_non_finalized and r.seq + 1 < ring.next_seq):
            return None
    return None


def _cost_ns_keyerror(self, key):
    try:
        return self._costs[key]
    except KeyError:
        v = self.profile.cost_ns(key)
        if self.jitter is not None and key in self.jitter.keys:
            return self.jitter.draw(v)
        self._costs[key] = v
        return v


def _done_keyerror(self, key):
    try:
        return self._done[key]
    except KeyError:
        if self.jitter is not None and key in self.jitter.keys:
            return ops.Done(None, self.cost_ns(key))
        d = self._done[key] = ops.Done(None, self.cost_ns(key))
        return d


def _draw_plain(self, base_ns):
    if base_ns == 0 or self.fraction == 0:
        return base_ns
    return round(base_ns * (1 + self.fraction * (2 * self._rng.random() - 1)))


def _read_once_rmw(var):
    return ops._Rmw("READ_ONCE", var, lambda old: (old, old), writes=False)


def _write_once_rmw(var, value):
    return ops._Rmw("WRITE_ONCE", var, lambda old: (value, None))


@pytest.fixture
def reference(monkeypatch):
    """Turns the reference on (the fast code stays until it is called)."""
    def on():
        monkeypatch.setattr(flood, "Simulator", _ReferenceSimulator)
        monkeypatch.setattr(prb, "_finalize", _finalize_scan)
        monkeypatch.setattr(prb, "read_valid", _read_valid_scan)
        monkeypatch.setattr(Machine, "cost_ns", _cost_ns_keyerror)
        monkeypatch.setattr(Machine, "done", _done_keyerror)
        monkeypatch.setattr(Jitter, "draw", _draw_plain)
        monkeypatch.setattr(KernelConfig, "has", lambda self, commit: commit in self.commits)
        fast = {"READ_ONCE": (ops.READ_ONCE, _read_once_rmw), "WRITE_ONCE": (ops.WRITE_ONCE, _write_once_rmw)}
        for name, module in list(sys.modules.items()):       # ops and every module that imported them
            for op, (mine, generic) in fast.items():
                if name.startswith("haltlab.") and getattr(module, op, None) is mine:
                    monkeypatch.setattr(module, op, generic)
    return on


def _observed(cfg, profile):
    """The result as JSON, and everything the run left behind."""
    runs = []
    build = flood.build_printk_flood

    def keep(c, p=None):
        runs.append(build(c, p))
        return runs[-1]
    flood.build_printk_flood = keep
    try:
        result = flood.run_printk_flood(cfg, profile)
    finally:
        flood.build_printk_flood = build
    (run,) = runs
    m, d = run.machine, run.driver
    return (dumps(result), m.console, m.irq_log, sorted(run.kernel.log.items()), d.events_run, d.rng.getstate(),
            [c.time_in_ns for c in m.cpus], m.jitter._rng.getstate() if m.jitter else None, run.kernel.prb.value)


_SLOW = {"devkmsg_user_ns": "250 us"}
CONFIGS = [
    (dict(seed=run_seed(0, 0)), {}),                            # S2's campaign: ends
    (dict(seed=run_seed(0, 7)), {}),
    (dict(seed=run_seed(0, 3)), _SLOW),                         # livelock proven
    (dict(seed=0, kernel="v5.18"), _SLOW),                      # drops, the guard fires
    (dict(seed=2, kernel="v6.1", log_buf_shift=12), _SLOW),     # 6.1's shape, a 4 KiB ring: drops
    (dict(seed=1, kernel="v6.9", log_buf_shift=12), _SLOW),     # 779dbc2e78d7, b1c4c67a5e90
    (dict(seed=0, kernel="v6.6"), {}),                          # 60 s timeout
    (dict(seed=1, console_spin="panic-cpu-only"), {}),
    (dict(seed=2, cpus=3, log_buf_shift=12), _SLOW),            # two flooders
    (dict(seed=3, flood_irqs_off=True), {}),
    (dict(seed=4, jitter=False), {}),
]


@pytest.mark.parametrize("kw,overrides", CONFIGS,
                         ids=lambda x: ",".join(f"{k}={v}" for k, v in x.items()) or "profile")
def test_the_fast_paths_give_the_reference_run_byte_for_byte(kw, overrides, reference):
    profile = load_profile("kvm-x86").with_overrides(**overrides) if overrides else None
    cfg = PrintkFloodConfig(**kw)
    fast = _observed(cfg, profile)
    reference()
    slow = _observed(cfg, profile)
    assert fast[0] == slow[0]           # the result, as JSON
    assert fast == slow


def test_the_configurations_cover_every_way_a_run_is_decided():
    """Guards the test above: its runs end, livelock and time out, and some drop records."""
    results = [flood.run_printk_flood(PrintkFloodConfig(**kw), load_profile("kvm-x86").with_overrides(**o)
                                      if o else None) for kw, o in CONFIGS]
    assert {r["decided_by"] for r in results} == {"end", "livelock", "timeout"}
    assert any(r["guard_fired"] for r in results) and any(r["drop_notices_after_trigger"] for r in results)


def test_the_reference_takes_the_slow_paths(reference):
    """Guards the test above against comparing a path with itself."""
    from haltlab.kernel import printk
    assert type(printk.READ_ONCE(None)) is ops._ReadOnce and type(printk.WRITE_ONCE(None, 0)) is ops._WriteOnce
    assert flood.Simulator is Simulator and prb._finalize is not _finalize_scan
    reference()
    assert type(printk.READ_ONCE(None)) is ops._Rmw and type(printk.WRITE_ONCE(None, 0)) is ops._Rmw
    assert flood.Simulator is _ReferenceSimulator and prb._finalize is _finalize_scan
    assert prb.read_valid is _read_valid_scan and Machine.cost_ns is _cost_ns_keyerror
