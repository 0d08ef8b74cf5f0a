"""CPU states and policies are enums, compared as members, written as their names.

Model code used to compare strings (`k.policies.after_panic == "safe_halt"`,
`c.activity == "gone"`): a typo there is a silent False. Now each is a
`StrEnum`, so JSON, fingerprints and sweep keys keep the very same strings.
"""

import ast
import json
from dataclasses import asdict
from pathlib import Path

import pytest

import haltlab
from haltlab.engine.core import Status
from haltlab.engine.explorer import Timeouts
from haltlab.engine.ops import Activity, Wait
from haltlab.kernel.idle import OTHERS, Others
from haltlab.kernel.policies import POLICIES, AfterPanic, PanicStart, Policies
from haltlab.machine.cpu import HW_STATES, HwState
from haltlab.machine.machine import Pvpanic
from haltlab.scenarios.panic import PanicConfig
from haltlab.scenarios.panic_race import VARIANTS, PanicRaceConfig

ROOT = Path(haltlab.__file__).parent
ENUMS = (Activity, Status, HwState, AfterPanic, PanicStart, Others, Pvpanic, Timeouts)
NAMES = {m.value for e in ENUMS for m in e}


def _string_comparisons(path: Path) -> list[str]:
    """`x == "halted"`, `x in ("idle", "gone")` and the like, with a state or
    policy name as the literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        for right in [node.left, *node.comparators]:
            literals = right.elts if isinstance(right, (ast.Tuple, ast.Set, ast.List)) else [right]
            for lit in literals:
                if isinstance(lit, ast.Constant) and lit.value in NAMES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lit.value!r}")
    return found


def test_model_code_compares_no_state_or_policy_by_string():
    layers = ("engine", "machine", "kernel", "scenarios")
    bad = [hit for layer in layers for p in sorted((ROOT / layer).rglob("*.py"))
           for hit in _string_comparisons(p)]
    assert bad == []


def test_the_values_are_the_strings_results_always_carried():
    assert HW_STATES == ("running", "irqs_off", "in_nmi", "halted", "mwait", "offline")
    assert [a.value for a in Activity] == ["running", "spinning", "halted", "mwait", "idle", "gone"]
    assert list(AfterPanic) == ["mdelay", "safe_halt"] and list(PanicStart) == ["cmpxchg", "load-store"]
    assert list(Others) == ["idle", "busy", "irqsoff"] and list(Pvpanic) == ["none", "pause"]
    assert list(Timeouts) == ["quiescent", "any"]


def test_names_given_to_configs_become_members_and_json_keeps_the_names():
    cfg = PanicConfig(after_panic="safe_halt", others="irqsoff", pvpanic="pause")
    assert cfg.after_panic is AfterPanic.SAFE_HALT and cfg.others is Others.IRQSOFF
    assert cfg.pvpanic is Pvpanic.PAUSE
    assert Policies(after_panic="safe_halt").after_panic is AfterPanic.SAFE_HALT
    race = PanicRaceConfig(variant="load-store", timeouts="any")
    assert race.variant is PanicStart.LOAD_STORE and race.timeouts is Timeouts.ANY
    as_json = json.dumps(asdict(cfg), sort_keys=True)
    plain = dict(asdict(cfg), after_panic="safe_halt", others="irqsoff", pvpanic="pause")
    assert as_json == json.dumps(plain, sort_keys=True)


def test_names_for_option_parsers_are_plain_strings():
    # click 8.2+ matches Enum choices by member name (SAFE_HALT): the CLI's
    # choices must be the values as plain str.
    for names in (list(OTHERS), list(POLICIES["after_panic"]), list(POLICIES["panic_start"]), VARIANTS):
        assert names and all(type(n) is str for n in names)


def test_a_wait_must_spin_halt_or_mwait():
    with pytest.raises(ValueError, match="spins, halts or mwaits"):
        Wait(None, Activity.RUNNING)
