"""The SPIN peer (benchmarks/peers/panic_race.pml) explores the explorer's race.

Real SPIN and gcc, no mocks: the Promela model for 2 and 3 CPUs is generated,
`spin -a`, compiled (gcc -O0: a quarter of -O2's compile time, and the search
is the same) and run unreduced, and its stored-state count must be the
explorer's (within `spin_peer.STATE_TOLERANCE`); the load-store claim must fail
SPIN's "one panic CPU" assertion and the cmpxchg one must pass every check.
This is what lets benchmarks/bench_vs_spin.py time the two on the same state
space.

bin/test installs spin, gcc and libc6-dev (haltlab_test_packages in bin/_setup.sh). When
they are missing the tests are skipped, saying so, except under CI=true, where
the tools are part of the set-up and their absence is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from haltlab.scenarios.panic_race import PanicRaceConfig, explore_panic_race

PEERS = Path(__file__).resolve().parents[2] / "benchmarks" / "peers"


def _load_spin_peer():
    """benchmarks/ is not a package; load the peer's module by path (registered
    in sys.modules, which its dataclasses need)."""
    spec = importlib.util.spec_from_file_location("spin_peer", PEERS / "spin_peer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("spin_peer", module)
    spec.loader.exec_module(module)
    return module


spin_peer = _load_spin_peer()


@pytest.fixture(scope="module")
def tools():
    missing = spin_peer.missing_tools()
    if missing:
        why = (f"{' and '.join(missing)} not on PATH: the SPIN peer needs Debian's spin and gcc "
               "(bin/test installs them as root, haltlab_test_packages in bin/_setup.sh)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"under CI=true the tools are part of the set-up: {why}")
        pytest.skip(why)


@pytest.mark.parametrize("cpus", [2, 3])
def test_unreduced_state_count_is_the_explorers(tools, tmp_path, cpus):
    spin = spin_peer.verify(cpus, "cmpxchg", reduce=False, workdir=tmp_path, opt="-O0")
    ex = explore_panic_race(PanicRaceConfig(cpus=cpus))
    assert ex.verdict == "ok"
    assert spin.errors == 0, spin.assertion     # the cmpxchg claim passes every assertion
    assert abs(spin.states - ex.states) <= spin_peer.STATE_TOLERANCE, (spin.states, ex.states)
    # pan counts the initial state as a transition too; beyond that, the same edges.
    assert spin.transitions - 1 == ex.transitions


@pytest.mark.parametrize("cpus", [2, 3])
def test_load_store_claim_fails_spins_assertion(tools, tmp_path, cpus):
    spin = spin_peer.verify(cpus, "load-store", reduce=False, workdir=tmp_path, opt="-O0")
    assert spin.errors == 1
    assert spin.assertion == "((panic_owners&(panic_owners-1))==0)"   # AT_MOST_ONE(panic_owners)


def test_the_model_is_written_for_the_cpu_count_asked():
    text = spin_peer.promela(5, "load-store")
    assert text.startswith("#define NCPUS 5\n#define LOAD_STORE\n")
    assert "#define LOAD_STORE" not in spin_peer.promela(5)
    with pytest.raises(ValueError, match="2 to 8"):
        spin_peer.promela(9)
