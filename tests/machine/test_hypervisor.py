"""What a vCPU costs the host, and KVM's adaptive halt polling.

The polling rules are `kvm_vcpu_halt()`, `grow_halt_poll_ns()` and
`shrink_halt_poll_ns()` of `virt/kvm/kvm_main.c` (7.1), with the kvm-x86
profile's module parameters: halt_poll_ns = 200 us, grow = 2, grow_start = 10 us,
shrink = 2:

* halt_ns <= poll window: leave it;
* window > 0 and halt_ns > max: shrink (divide; below grow_start it becomes 0,
  Linux kernel commit ae232ea46088 ("KVM: do not shrink halt_poll_ns below
  grow_start") (2021, also in 5.10.y));
* window < max and halt_ns < max: grow (multiply, at least grow_start), and a
  window above the max is clamped to it before the next poll.
"""


from haltlab.engine.ops import ndelay, safe_halt, set_cpu_state
from haltlab.engine.simulator import Simulator
from haltlab.machine.hypervisor import Hypervisor
from haltlab.machine.machine import Machine

US = 1_000
SEC = 1_000_000_000


def _one_vcpu(kvm, task, seconds=1):
    m = Machine(kvm, 1, record_timeline=False)

    async def tick(cpu):
        await ndelay(m.cost_ns("tick_handler_ns"))

    m.request_irq("LOCAL_TIMER", 0xEC, tick)
    sim = Simulator(m, seed=3)
    sim.start_task(0, task())
    sim.run(seconds * SEC)
    m.close(sim.now_ns)
    return m, m.hyp.vcpus[0]


def test_a_busy_vcpu_costs_one_host_cpu_second_per_second(kvm):
    async def busy():
        await ndelay(10 * SEC)

    _, v = _one_vcpu(kvm, busy)
    assert v.guest_ns == SEC
    assert (v.exits, v.wakeups, v.poll_ns) == (0, 0, 0)


def test_each_tick_that_hits_a_running_vcpu_is_one_exit(kvm):
    async def busy_with_tick():
        await set_cpu_state(tick_enabled=True)
        await ndelay(10 * SEC)

    _, v = _one_vcpu(kvm, busy_with_tick)
    assert abs(v.exits - 250) <= 1
    assert v.exit_ns == v.exits * kvm.cost_ns("vm_exit_roundtrip_ns")
    assert 1.0 <= v.host_ns / SEC < 1.01


def test_a_halted_vcpu_costs_almost_nothing_but_pays_per_wakeup(kvm):
    async def halt_loop():                      # idle without NO_HZ: tick keeps waking it
        await set_cpu_state(tick_enabled=True)
        while True:
            await safe_halt()

    m, v = _one_vcpu(kvm, halt_loop)
    ticks = sum(vector == "LOCAL_TIMER" for _, _, vector in m.irq_log)
    assert abs(ticks - 250) <= 1
    # A tick every 4 ms is a long halt (> 200 us): polling stays off, every
    # wake-up blocks and is paid in full; each HLT is one exit.
    assert v.wakeups == ticks and v.poll_ns == 0 and v.halt_poll_ns == 0
    assert v.wakeup_ns == v.wakeups * kvm.cost_ns("halt_wakeup_ns")
    assert abs(v.exits - ticks) <= 1
    per_tick = kvm.cost_ns("irq_entry_exit_ns") + kvm.cost_ns("tick_handler_ns")
    assert v.guest_ns <= ticks * per_tick + 10 * US
    assert v.host_ns == v.guest_ns + v.exit_ns + v.wakeup_ns
    assert v.host_ns / SEC < 0.005                    # vs 1.0 for a busy vCPU


# --- Hypervisor.halt / wake driven directly ----------------------------------------------

def _halts(kvm, gaps_ns):
    """Halt and wake vCPU0 once per gap; return the hypervisor and the poll window
    after each wake."""
    h = Hypervisor(kvm, 1)
    t, windows = 0, []
    for gap in gaps_ns:
        h.halt(0, t)
        t += gap
        h.wake(0, t)
        t += 1 * US                                   # runs a little between halts
        windows.append(h.vcpus[0].halt_poll_ns)
    return h, windows


def test_wakeups_every_4ms_never_turn_polling_on(kvm):
    h, windows = _halts(kvm, [4_000 * US] * 50)
    v = h.vcpus[0]
    assert set(windows) == {0}
    assert (v.wakeups, v.exits, v.poll_ns) == (50, 50, 0)


def test_wakeups_every_50us_grow_the_window_from_grow_start_doubling(kvm):
    h, windows = _halts(kvm, [50 * US] * 20)
    v = h.vcpus[0]
    # 0 -> 10 -> 20 -> 40 -> 80 us; at 80 us the 50 us halt is caught by polling
    # (halt_ns <= window), so the window stays and no wake-up is paid any more.
    assert windows[:6] == [10 * US, 20 * US, 40 * US, 80 * US, 80 * US, 80 * US]
    assert set(windows[4:]) == {80 * US}
    assert v.wakeups == 4
    assert v.poll_ns == (10 + 20 + 40) * US + 16 * 50 * US


def test_the_window_grows_up_to_the_maximum_and_no_further(kvm):
    _, windows = _halts(kvm, [190 * US] * 10)
    assert windows[:7] == [10 * US, 20 * US, 40 * US, 80 * US, 160 * US, 200 * US, 200 * US]
    assert max(windows) == kvm.cost_ns("halt_poll_ns")


def test_a_long_halt_polls_the_full_window_then_shrinks_it(kvm):
    h, windows = _halts(kvm, [190 * US] * 6)
    v = h.vcpus[0]
    assert windows[-1] == 200 * US
    polled, woken = v.poll_ns, v.wakeups
    h.halt(0, 10 * SEC)
    h.wake(0, 10 * SEC + 4_000 * US)
    assert v.poll_ns - polled == 200 * US                # polled the whole window in vain,
    assert v.wakeups - woken == 1                        # then blocked and was woken
    assert v.halt_poll_ns == 100 * US                    # shrink = 2 halves it


def test_repeated_long_halts_turn_polling_off_below_grow_start(kvm):
    _, windows = _halts(kvm, [190 * US] * 6 + [4_000 * US] * 6)
    assert windows[-6:] == [100 * US, 50 * US, 25 * US, 12_500, 0, 0]
