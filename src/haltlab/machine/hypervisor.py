"""The host's view of a guest: what each vCPU costs the hypervisor.

Stands for KVM (`virt/kvm/kvm_main.c`, `arch/x86/kvm/x86.c`) and the VMM process
around it. A vCPU thread burns a host CPU whenever the vCPU executes, whatever the
guest does with it (a busy `mdelay()` loop, a spin, an NMI handler); it releases
the host CPU only when the guest halts and KVM blocks the thread. Around that, the
host pays per event:

* every VM exit costs `vm_exit_roundtrip_ns` (exit, handling, re-entry): a timer
  tick that fires while the vCPU runs, an IPI the guest sends (an ICR write), a HLT;
* every wake-up of a halted vCPU costs `halt_wakeup_ns` (wake the thread,
  schedule it in, enter the guest);
* before blocking, KVM may poll for up to `vcpu->halt_poll_ns`, which it adapts per
  vCPU exactly as `kvm_vcpu_halt()` does: grow after a short halt, shrink after a
  halt longer than the maximum, never poll when halts are long. A tick every 4 ms
  is a long halt, so polling stays off for a panicked guest; the model shows that
  rather than assuming it.

Perf samples are host CPU time times the sampling frequency, as `perf record -F`
takes them; cycles are host CPU time times the host clock.
"""

from __future__ import annotations

__all__ = ["Hypervisor", "VcpuCost"]


class VcpuCost:
    """Host CPU spent on one vCPU, split by why."""

    __slots__ = ("guest_ns", "exit_ns", "wakeup_ns", "poll_ns", "exits", "wakeups",
                 "halt_poll_ns", "halted_since_ns")

    def __init__(self) -> None:
        self.guest_ns = 0      # the vCPU executing guest code
        self.exit_ns = 0       # handling VM exits
        self.wakeup_ns = 0     # waking the halted vCPU thread
        self.poll_ns = 0       # halt polling before blocking
        self.exits = 0
        self.wakeups = 0
        self.halt_poll_ns = 0  # KVM's per-vCPU adaptive poll window
        self.halted_since_ns: int | None = None

    @property
    def host_ns(self) -> int:
        return self.guest_ns + self.exit_ns + self.wakeup_ns + self.poll_ns


class Hypervisor:
    """Host CPU accounting for every vCPU of one guest."""

    def __init__(self, profile, ncpus: int) -> None:
        self.exit_ns = profile.cost_ns("vm_exit_roundtrip_ns")
        self.wake_ns = profile.cost_ns("halt_wakeup_ns")
        self.max_poll_ns = profile.cost_ns("halt_poll_ns")
        self.grow = profile.get("halt_poll_ns_grow")
        self.grow_start_ns = profile.cost_ns("halt_poll_ns_grow_start")
        self.shrink = profile.get("halt_poll_ns_shrink")
        self.vmm_background = profile.get("vmm_background_cpu_s_per_s")
        self.perf_freq_hz = profile.get("perf_freq_hz")
        self.host_cpu_hz = profile.get("host_cpu_hz")
        self.vcpus = [VcpuCost() for _ in range(ncpus)]

    def vm_exit(self, cpu: int) -> None:
        v = self.vcpus[cpu]
        v.exits += 1
        v.exit_ns += self.exit_ns

    def guest_ran(self, cpu: int, ns: int) -> None:
        self.vcpus[cpu].guest_ns += ns

    def halt(self, cpu: int, now_ns: int) -> None:
        """The guest executed HLT: an exit, then poll or block."""
        v = self.vcpus[cpu]
        self.vm_exit(cpu)
        v.halted_since_ns = now_ns

    def wake(self, cpu: int, now_ns: int) -> None:
        """An interrupt ends the halt: `kvm_vcpu_halt()`'s bookkeeping."""
        v = self.vcpus[cpu]
        if v.halted_since_ns is None:
            return
        halt_ns = now_ns - v.halted_since_ns
        v.halted_since_ns = None
        poll = min(v.halt_poll_ns, self.max_poll_ns)
        v.poll_ns += min(poll, halt_ns)
        if halt_ns > poll:          # polling did not catch it: the thread blocked
            v.wakeups += 1
            v.wakeup_ns += self.wake_ns
        self._adapt(v, halt_ns)

    def _adapt(self, v: VcpuCost, halt_ns: int) -> None:
        if not self.max_poll_ns:
            v.halt_poll_ns = 0
        elif halt_ns <= v.halt_poll_ns:
            pass
        elif v.halt_poll_ns and halt_ns > self.max_poll_ns:
            # shrink_halt_poll_ns(), with Linux kernel commit ae232ea46088 ("KVM: do
            # not shrink halt_poll_ns below grow_start"): below grow_start, stop polling.
            shrunk = 0 if not self.shrink else int(v.halt_poll_ns // self.shrink)
            v.halt_poll_ns = 0 if shrunk < self.grow_start_ns else shrunk
        elif v.halt_poll_ns < self.max_poll_ns and halt_ns < self.max_poll_ns:
            grown = max(int(v.halt_poll_ns * self.grow), self.grow_start_ns) if self.grow else v.halt_poll_ns
            v.halt_poll_ns = min(grown, self.max_poll_ns)

    def samples(self, host_ns: int) -> int:
        return host_ns * int(self.perf_freq_hz) // 1_000_000_000

    def cycles(self, host_ns: int) -> int:
        return host_ns * int(self.host_cpu_hz) // 1_000_000_000
