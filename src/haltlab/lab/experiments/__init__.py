"""The lab's experiments: each `run_<name>(config) -> dict`, JSON-able, CLI-independent."""

from haltlab.lab.experiments.flood import FloodConfig, run_flood
from haltlab.lab.experiments.kexec import KexecConfig, run_kexec
from haltlab.lab.experiments.panic import PanicConfig, run_panic

__all__ = ["PanicConfig", "run_panic", "KexecConfig", "run_kexec", "FloodConfig", "run_flood"]
