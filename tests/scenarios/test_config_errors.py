"""Library errors name config fields, never command-line flags.

`scenarios/panic.py`, `scenarios/panic_race.py`, `kernel/commits.py` and
`kernel/policies.py` raised `UserError("--cpus 0: ...")`; a caller of the Python
API has no flags. Each now raises `ConfigError(field, value, why)` with the
dataclass field; the CLI maps fields to its flags.
"""

import pytest

from haltlab.errors import ConfigError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.kernel import KernelConfig
from haltlab.kernel.policies import Policies, choose
from haltlab.scenarios.panic import PanicConfig, simulate_panic
from haltlab.scenarios.panic_race import PanicRaceConfig, explore_panic_race


def _refused(call) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        call()
    assert "--" not in str(e.value)                     # no flag in a library message
    assert str(e.value).startswith(f"{e.value.field} ")
    return e.value


@pytest.mark.parametrize("kw, field, value", [
    (dict(cpus=0), "cpus", 0),
    (dict(cpus=9000), "cpus", 9000),
    (dict(cpus=4, panic_cpu=4), "panic_cpu", 4),
    (dict(others="sleepy"), "others", "sleepy"),
    (dict(after_panic="nap"), "after_panic", "nap"),
    (dict(kernel="v2.6"), "kernel", "v2.6"),
    (dict(observe_ns=0), "observe_ns", 0),
    (dict(pvpanic="crash"), "pvpanic", "crash"),
    (dict(panic_timeout_s=-1), "panic_timeout_s", -1),
    (dict(trigger_ns=-5), "trigger_ns", -5),
])
def test_a_bad_panic_config_names_its_field_and_value(kw, field, value):
    e = _refused(lambda: simulate_panic(PanicConfig(**kw)))
    assert (e.field, e.value) == (field, value)


@pytest.mark.parametrize("kw, field", [
    (dict(cpus=1), "cpus"), (dict(cpus=9), "cpus"), (dict(variant="lock"), "variant"),
    (dict(timeouts="never"), "timeouts"), (dict(kernel="v2.6"), "kernel"),
    (dict(max_states=0), "max_states"),
])
def test_a_bad_race_config_names_its_field(kw, field):
    assert _refused(lambda: explore_panic_race(PanicRaceConfig(**kw))).field == field


def test_kernel_presets_and_policies_name_the_field_they_fill():
    assert _refused(lambda: commit_set("v9.9")).field == "kernel"
    assert _refused(lambda: KernelConfig(version="v9.9")).field == "version"
    assert _refused(lambda: Policies(after_panic="nap")).field == "after_panic"
    assert _refused(lambda: choose("panic_start", "lock", field="variant")).field == "variant"
