"""Time in the explorer: which interleavings the operations' durations allow.

Untimed, the explorer lets any CPU take the next step: a CPU printing an
80-character console line may be overtaken by a million printk attempts on
another CPU, which a machine cannot do. Timed, each step happens at an instant
and the gaps between a CPU's steps are the durations of what it did in between,
from the profile's costs; the explorer then offers only the steps that some
assignment of those durations allows. The rule is the timed-automata one, with
one clock per CPU and one per interrupt target in a zone (`haltlab.engine.zone`):

* **CPU segments.** A CPU's step is the instant its held operation takes effect.
  Everything it then does up to its next held operation (the op's own cost, the
  local ops after it, a delay, an interrupt handler it takes) adds to the
  segment's duration `[lo, hi]`; its clock is reset at the step. Its next step
  is enabled when its clock can be `>= lo`, and time cannot pass beyond `hi`
  (an invariant), so no other CPU can fit more work into the segment than the
  segment lasts.
* **Bounded waits.** A wait with a timeout (`spin_until(..., timeout_ns)`, the
  one-second wait of `smp_send_stop()`) times out when its clock can reach the
  timeout and must by then: a one-second wait times out after one second of the
  other CPUs' work, however those CPUs loop. This replaces untimed mode's
  `--timeouts quiescent` rule. A wait whose condition comes true ends at the
  CPU's next step, with no bound on when (it may miss a short window; weak
  fairness makes it notice a condition that stays true).
* **Interrupts in flight** arrive between `lo` and `hi` of their latency after
  the send, measured on the target's interrupt clock.
* **Spinners notice.** A CPU in `spin_until()` whose condition holds must step
  within one poll (`cpu_relax_ns`), on its third clock (`Clocks._notice`).
* **Widening** (`Timing.WIDENED`): a run back at a discrete state with another
  zone widens it (`Clocks.widen_at`), for loops inside long operations.

Durations come from the profile: a cost `c` becomes `[c - t*c, c + t*c]` with
`t` the profile's `timing_tolerance` (or `--timing-tolerance`). Every verdict
names `t` and the profile, which is what it rests on.

Soundness (what the rule may over-approximate, never under-approximate, so a
proof of safety or of the absence of a fair livelock holds for every duration
within the intervals, and a counterexample may only be one that needs extreme
durations within them):
* a zone is the exact set of clock values the intervals allow (integer bounds,
  closed intervals, canonical matrices: `zone.py`), and freeing a clock nothing
  reads until its next reset is exact;
* when an interrupt interrupts a segment, the rest of the segment after the
  handler is taken as `[0, hi]` (its elapsed part is forgotten): more behaviours;
* when a second interrupt is sent to a CPU that has one in flight, the older
  one loses its lower bound (both are measured on the newest send's clock;
  the upper bound stays valid because that clock is younger): more behaviours;
* a wait resumed after an interrupt handler may time out from 0 up to the
  timeout plus the handler's time: more behaviours.
The state is finite because every active clock is bounded by an invariant (a
segment's `hi`, a timeout, a latency) and every other clock is freed.
"""

from __future__ import annotations

import enum
from haltlab.engine.core import Status, Strand
from haltlab.engine.ops import Activity
from haltlab.engine.zone import INF, Zone

__all__ = ["Timing", "Clocks", "Covering", "DELAY", "discharged_by", "interval", "permute_clocks"]

DELAY = ("delay",)
"""The label fact of a state whose zone lets time pass (`Clocks.facts`)."""


class Timing(enum.StrEnum):
    """Whether the explorer lets durations decide which interleavings happen."""

    TIMED = "timed"          # durations from the profile bound the interleavings
    WIDENED = "widened"      # timed, and a zone that comes back to the same discrete state is widened
    UNTIMED = "untimed"      # pure interleaving: any CPU may go next

    @property
    def timed(self) -> bool:
        """Do durations bound the interleavings (timed or widened)?"""
        return self is not Timing.UNTIMED


def interval(cost_ns: int, tolerance_pct: int) -> tuple[int, int]:
    """`[c - t*c, c + t*c]` in integer ns (the low end rounded down, the high end up)."""
    lo = cost_ns * (100 - tolerance_pct) // 100
    hi = -(-cost_ns * (100 + tolerance_pct) // 100)
    return max(lo, 0), hi


class Clocks:
    """The timing part of one explored run: a zone and what each clock bounds.

    Clock `1 + cpu` measures a CPU's segment or wait; clock `1 + ncpus + cpu`
    the interrupts in flight to that CPU; clock `1 + 2 * ncpus + cpu` how long a
    spinning CPU's condition has held without the CPU noticing. The driver calls `begin_step()` before
    a choice runs and `end_step()` after it; the costs the CPU incurs in between
    come through `charge()`, sends through `sent()`."""

    def __init__(self, ncpus: int, tolerance_pct: int, *, poll_ns: int = 0) -> None:
        if not 0 <= tolerance_pct <= 100:
            raise ValueError(f"timing tolerance {tolerance_pct} %: must be 0 to 100")
        self.ncpus = ncpus
        self.tolerance_pct = tolerance_pct
        self.zone = Zone(3 * ncpus)
        # A spinning CPU notices its condition within one poll (`cpu_relax_ns`):
        # the high end of that, or None for no bound (the fairness rule alone).
        self.poll_hi = interval(poll_ns, tolerance_pct)[1] if poll_ns else None
        self.notice: list[int | None] = [None] * ncpus    # the bound on clock 1 + 2n + cpu, while it runs
        self._seen: dict[tuple, tuple] = {}           # `widen_at`: this run's last zone per discrete state
        self.segment: list[tuple[int, int] | None] = [None] * ncpus   # to the next step
        self.deadline: list[tuple[int, int] | None] = [None] * ncpus  # a bounded wait's timeout
        self.irq: dict[tuple[int, str], tuple[int, int]] = {}         # in flight: latency bounds
        self.remainder: list[tuple[tuple[int, int], ...]] = [()] * ncpus  # (stack depth, hi) under handlers
        self._acc = [[0, 0] for _ in range(ncpus)]
        self._depth = [0] * ncpus
        self._fresh: list[object] = [None] * ncpus   # the op started last in this step, per CPU
        self._settled = False

    # --- fed by the driver while a step runs ----------------------------------------------

    def charge(self, cpu: int, cost_ns: int) -> None:
        """CPU `cpu` is busy for `cost_ns` (an op's cost, a delay, a console line)."""
        if cost_ns:
            lo, hi = interval(cost_ns, self.tolerance_pct)
            acc = self._acc[cpu]
            acc[0] += lo
            acc[1] += hi

    def started(self, cpu: int, op: object) -> None:
        self._fresh[cpu] = op

    def sent(self, target: int, vector: str, latency_ns: int) -> None:
        """An interrupt was sent to `target` at this instant (already in flight: merged)."""
        if (target, vector) in self.irq:
            return
        for key, (lo, hi) in list(self.irq.items()):
            if key[0] == target:
                self.irq[key] = (0, hi)     # now measured on a younger clock: lower bound lost
        self.irq[(target, vector)] = interval(latency_ns, self.tolerance_pct)
        self.zone.reset(1 + self.ncpus + target)

    # --- what is enabled --------------------------------------------------------------------

    def may_step(self, cpu: int) -> bool:
        seg = self.segment[cpu]
        return seg is None or self.zone.can_reach(1 + cpu, seg[0])

    def may_time_out(self, cpu: int) -> bool:
        dl = self.deadline[cpu]
        return dl is not None and self.zone.can_reach(1 + cpu, dl[0])

    def may_arrive(self, target: int, vector: str) -> bool:
        return self.zone.can_reach(1 + self.ncpus + target, self.irq[(target, vector)][0])

    # --- a step -------------------------------------------------------------------------------

    def begin_step(self, strands: list[Strand], kind: str, cpu: int, vector: str | None) -> None:
        """The chosen step happens now: narrow the zone to the instants it can
        happen at, and reset the clock of the CPU that acts."""
        self.settle(strands)
        z = self.zone
        for s in strands:
            self._depth[s.cpu] = len(s.stack)
            self._fresh[s.cpu] = None
        if kind == "i":
            key = (cpu, vector)
            z.at_least(1 + self.ncpus + cpu, self.irq.pop(key)[0])
            if not any(t == cpu for t, _v in self.irq):
                z.free(1 + self.ncpus + cpu)
            return
        if kind == "t":
            z.at_least(1 + cpu, self.deadline[cpu][0])
        elif self.segment[cpu] is not None:
            z.at_least(1 + cpu, self.segment[cpu][0])
        z.reset(1 + cpu)
        self._acc[cpu] = [0, 0]
        self.segment[cpu] = self.deadline[cpu] = None

    def end_step(self, strands: list[Strand], actor: int | None, interrupted: set[int]) -> None:
        """After the step: each CPU that ran (`actor`, and the CPUs in
        `interrupted` that took an interrupt) gets its new segment or wait
        bounds, then time may pass up to the earliest deadline."""
        z = self.zone
        for s in strands:
            cpu = s.cpu
            if cpu != actor and cpu not in interrupted:
                continue
            old_hi = 0
            if cpu != actor:
                # An interrupt handler ran on a CPU that was in a segment or a
                # wait: its clock restarts at the handler, and what was left of
                # the old segment is at most its upper bound.
                old = self.segment[cpu] or self.deadline[cpu]
                old_hi = old[1] if old is not None else 0
                z.reset(1 + cpu)
                self.segment[cpu] = self.deadline[cpu] = None
                if len(s.stack) > self._depth[cpu] and old_hi:
                    self.remainder[cpu] = self.remainder[cpu] + ((self._depth[cpu], old_hi),)
                    old_hi = 0                  # added when the handler returns
            lo, hi = self._acc[cpu]
            hi += old_hi
            self._acc[cpu] = [0, 0]
            rem = self.remainder[cpu]
            while rem and len(s.stack) <= rem[-1][0]:
                hi += rem[-1][1]     # a handler returned: the interrupted work's rest follows
                rem = rem[:-1]
            self.remainder[cpu] = rem
            self._place(s, lo, hi)
        self._notice(strands, {actor, *interrupted})
        z.up()
        self._invariants()

    # --- what a timed lasso must meet (`haltlab.checks.liveness.TimeDivergence`) ----------

    def due(self) -> frozenset[str]:
        """The obligations in this state: `c<cpu>` for a CPU whose clock an
        invariant bounds (a segment's high end, a bounded wait's timeout, a
        spinner's poll), so it must act (`c`, `t`, or take an interrupt: each
        resets that clock) within a bounded time; `i<cpu>` for a CPU with an
        interrupt in flight, which must arrive. A time-divergent run that is
        in such a state forever meets the obligation infinitely often (the
        argument: docs/design.md, "Timed lassos")."""
        out = {f"c{cpu}" for cpu in range(self.ncpus)
               if self.segment[cpu] is not None or self.deadline[cpu] is not None
               or self.notice[cpu] is not None}
        out.update(f"i{target}" for target, _v in self.irq)
        return frozenset(out)

    def can_delay(self) -> bool:
        """Can time pass here: does the zone hold a valuation from which a
        delay (1 ns: the bounds are integers, so any positive delay allows
        one of 1 ns) stays in it? No when some clock is at its invariant's
        bound in every valuation (a segment of `[0, 0]`: the CPU must step at
        this instant), which is what a Zeno cycle is made of."""
        z = self.zone.copy()
        for i in range(1, z.k):
            hi = z.upper(i)
            if hi < INF and not z.at_most(i, hi - 1):
                return False
        return True

    def facts(self) -> frozenset:
        """The state's timing facts for the liveness judge, as label facts
        (tuples, so they never clash with a property's name): `("due", o)` for
        each obligation, `DELAY` when time can pass."""
        out = {("due", o) for o in self.due()}
        if self.can_delay():
            out.add(DELAY)
        return frozenset(out)

    def widen_at(self, key: tuple) -> None:
        """`Timing.WIDENED`: the run is at discrete state `key` (its
        fingerprint, the declared abstraction applied, without the zone). If
        this run was at `key` before with another zone, the zone becomes the
        widening of that one by this one (`Zone.widen`), then the invariants
        again: the run came around a loop that changed nothing but time (a
        flooder's iterations inside one console line, about 1,600 at kvm-x86's
        costs), and the widened zone holds every number of further iterations
        at once. Along a run the zone at a discrete state then only grows, so
        the loop costs two or three states instead of one per iteration.

        Path-local on purpose: what a state's successors are depends on the
        run's own history, so the explorer reaches such states again only by
        the search's own path (`Run.path_dependent`, `engine.reach` mode
        "root"), whose history is the one the state was found with. Sound for
        proofs, not exact for counterexamples: docs/design.md, "Widening"."""
        old = self._seen.get(key)
        if old is not None and old != tuple(self.zone.d):
            self.zone.widen(old)
            self._invariants()
        self._seen[key] = tuple(self.zone.d)

    def _notice(self, strands: list[Strand], disturbed: set) -> None:
        """Start, keep or stop each spinning CPU's notice clock. A CPU in
        `spin_until()` whose condition holds must notice it within one poll
        (its step, `c<cpu>`, by `poll_hi` after the condition came true); a
        condition that goes false again first frees the clock (a window shorter
        than a poll may be missed, as on hardware). A CPU that stepped or took a
        handler in this step starts its poll afresh. Without it (the rule
        before), a spinner could sit on a true condition for any time, so a
        one-second timeout elsewhere could pass while a CPU spun on a free
        lock with interrupts off: a deadlock no machine has."""
        if self.poll_hi is None:
            return
        z, base = self.zone, 1 + 2 * self.ncpus
        for s in strands:
            cpu = s.cpu
            w = s.top.outcome if s.status is Status.WAITING else None
            holds = (w is not None and w.state is Activity.SPINNING and w.until is not None and w.until())
            if holds:
                if self.notice[cpu] is None or cpu in disturbed:
                    z.reset(base + cpu)
                    self.notice[cpu] = self.poll_hi
            elif self.notice[cpu] is not None:
                z.free(base + cpu)
                self.notice[cpu] = None

    def settle(self, strands: list[Strand]) -> None:
        """The initial state: every CPU ran to its first held op at time 0."""
        if self._settled:
            return
        self._settled = True
        for target in range(self.ncpus):
            if not any(t == target for t, _v in self.irq):
                self.zone.free(1 + self.ncpus + target)   # no interrupt in flight: nothing reads it
        for cpu in range(self.ncpus):
            self.zone.free(1 + 2 * self.ncpus + cpu)       # no spinner has noticed anything yet
        for s in strands:
            lo, hi = self._acc[s.cpu]
            self._acc[s.cpu] = [0, 0]
            self._place(s, lo, hi)
        self._notice(strands, set())
        self.zone.up()
        self._invariants()

    def _place(self, s: Strand, lo: int, hi: int) -> None:
        cpu = s.cpu
        self.segment[cpu] = self.deadline[cpu] = None
        if s.status is Status.READY:
            self.segment[cpu] = (lo, hi)
            return
        if s.status is Status.WAITING and s.top.outcome.timeout_ns is not None:
            timeout = interval(s.top.outcome.timeout_ns, self.tolerance_pct)
            if self._fresh[cpu] is s.top.op:
                self.deadline[cpu] = timeout
            else:                           # resumed after a handler: only the upper end is known
                self.deadline[cpu] = (0, timeout[1] + hi)
            return
        self.zone.free(1 + cpu)             # unbounded wait, done or gone: nothing reads its clock

    def _invariants(self) -> None:
        """After time may pass: free every clock nothing reads (as it goes
        on counting, a freed clock gains a lower bound with each delay, and
        two zones that differ only there are different states with the same
        future: the exact replay of a lasso then never comes back to its
        state), then bound the others by their invariants."""
        z, n = self.zone, self.ncpus
        busy = {target for target, _v in self.irq}
        for cpu in range(n):
            if self.segment[cpu] is None and self.deadline[cpu] is None:
                z.free(1 + cpu)
            if cpu not in busy:
                z.free(1 + n + cpu)
            if self.notice[cpu] is None:
                z.free(1 + 2 * n + cpu)
        for cpu in range(n):
            bound = self.segment[cpu] or self.deadline[cpu]
            if bound is not None:
                z.at_most(1 + cpu, bound[1])
        latest: dict[int, int] = {}
        for (target, _v), (_lo, hi) in self.irq.items():
            latest[target] = max(latest.get(target, 0), hi)
        for target, hi in latest.items():
            z.at_most(1 + n + target, hi)
        for cpu, hi in enumerate(self.notice):
            if hi is not None:
                z.at_most(1 + 2 * n + cpu, hi)

    def __fingerprint__(self) -> tuple:
        return (tuple(self.zone.d), tuple(self.segment), tuple(self.deadline),
                tuple(sorted(self.irq.items())), tuple(self.remainder), tuple(self.notice))


def discharged_by(choice: str) -> tuple[str, ...]:
    """The obligations (`Clocks.due`) a choice meets: `c1` or `t1` resets
    CPU1's clock; `i1.NMI` runs a handler on CPU1 (its clock restarts) and is
    an arrival of an interrupt in flight to it."""
    cpu = choice[1:].partition(".")[0]
    if choice[0] == "i":
        return (f"c{cpu}", f"i{cpu}")
    return (f"c{cpu}",)


class Covering:
    """Zone inclusion for the explorer's state store: a new timed state whose
    zone lies inside the zone of a visited state with the same everything else
    is that state, for reachability.

    Why: two interleavings that reach the same discrete state (memory, stacks,
    segments) usually reach it with different zones, and kept apart they
    multiply the states (the race at 3 CPUs: 403 discrete states, 2,548 zones).
    Every run from a state whose zone is included in a visited one's is also a
    run from the visited one (the same discrete state; every clock valuation of
    the smaller zone is one of the larger), so no reachable state, violation or
    end state is lost (Daws and Tripakis 1998; UPPAAL's passed-list inclusion).
    For liveness the recorded graph then simulates the real one: a graph
    without a fair non-progress cycle proves there is none, and a lasso found
    in it is checked by replay (`haltlab.checks.properties`)."""

    def __init__(self) -> None:
        self._zones: dict[tuple, list[tuple[tuple, int]]] = {}

    @staticmethod
    def _split(fp: tuple) -> tuple[tuple, tuple] | None:
        clocks = fp[5]
        if clocks is None:
            return None
        return (fp[:5], fp[6:], clocks[1:]), clocks[0]

    def find(self, fp: tuple) -> int | None:
        """The id of a visited state whose zone includes `fp`'s, if any."""
        split = self._split(fp)
        if split is None:
            return None
        key, zone = split
        for other, sid in self._zones.get(key, ()):
            if all(a <= b for a, b in zip(zone, other)):
                return sid
        return None

    def add(self, fp: tuple, sid: int) -> None:
        split = self._split(fp)
        if split is not None:
            key, zone = split
            self._zones.setdefault(key, []).append((zone, sid))


def permute_clocks(fp: tuple | None, perm) -> tuple | None:
    """The timing part of a fingerprint (`Clocks.__fingerprint__()`) with CPU i
    renamed `perm[i]`: its segment clock `1 + i` and its interrupt clock
    `1 + n + i` move to the renamed CPU's, and so do its bounds; for symmetry
    (`haltlab.engine.symmetry`)."""
    if fp is None:
        return None
    zone, segment, deadline, irq, remainder, notice = fp
    n = len(perm)
    k = 3 * n + 1
    if len(zone) != k * k or len(segment) != n:
        raise ValueError(f"a timing state for {len(segment)} CPUs and {len(zone)} zone entries, "
                         f"renamed for {n} CPUs")
    clock = [0] + [1 + p for p in perm] + [1 + n + p for p in perm] + [1 + 2 * n + p for p in perm]
    out = [0] * len(zone)
    for i in range(k):
        ci = clock[i] * k
        for j in range(k):
            out[ci + clock[j]] = zone[i * k + j]
    new_seg, new_dl, new_rem, new_notice = [None] * n, [None] * n, [()] * n, [None] * n
    for i in range(n):
        new_seg[perm[i]], new_dl[perm[i]], new_rem[perm[i]] = segment[i], deadline[i], remainder[i]
        new_notice[perm[i]] = notice[i]
    new_irq = tuple(sorted(((perm[t], v), b) for (t, v), b in irq))
    return (tuple(out), tuple(new_seg), tuple(new_dl), new_irq, tuple(new_rem), tuple(new_notice))
