"""The lab: real Linux kernels under QEMU, measuring what the model predicts.

A pipeline of small steps, each its own module and each testable without QEMU
except the runner: images (which kernel), initramfs (what the guest runs),
guest (its /init scripts), qemu (the command line), runner (one QEMU process
and its channels: serial.py, qmp.py), sampler (host CPU), parse and classify
(pure: console text and channels in, facts and verdicts out), stats, and the
experiments built from them (experiments/panic.py, kexec.py, flood.py).

Imports nothing from the model (engine, machine, kernel, scenarios): the lab
must measure the real thing, not what the model thinks it is.
"""

__all__: list[str] = []
