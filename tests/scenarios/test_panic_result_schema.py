"""The panic result is what `scenarios/panic_result.py` says it is, on every
profile and the configurations that add or drop fields (a guest's host view,
bare metal, a reboot, a pvpanic pause, a failed stop)."""

import pytest

from haltlab.results import conforms
from haltlab.scenarios.panic import PanicConfig, run_panic
from haltlab.scenarios.panic_result import SCHEMA_VERSION, PanicResult

CONFIGS = [
    PanicConfig(),
    PanicConfig(after_panic="safe_halt", others="busy"),
    PanicConfig(profile="xeon-gold-6154", cpus=8, others="irqsoff"),
    PanicConfig(profile="arm64-server-24", cpus=4, others="irqsoff"),
    PanicConfig(profile="qemu-tcg-x86", cpus=2, pvpanic="pause"),
    PanicConfig(cpus=2, panic_timeout_s=1),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.profile}-{c.others}-{c.after_panic}")
def test_results_conform_to_the_schema(cfg):
    r = run_panic(PanicConfig(**{**cfg.__dict__, "observe_ns": 100_000_000}))
    assert conforms(r, PanicResult) == []
    assert r["schema_version"] == SCHEMA_VERSION


def test_the_check_sees_a_field_the_schema_does_not_name():
    r = dict(run_panic(PanicConfig(cpus=2, observe_ns=100_000_000)))
    r["stop_others_ns"] = 1          # the name before schema version 1
    del r["smp_send_stop_ns"]
    assert conforms(r, PanicResult) == ["result: missing smp_send_stop_ns",
                                        "result: unknown field stop_others_ns"]
