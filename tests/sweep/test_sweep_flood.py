"""S2's campaign as a sweep: the counts add up, the interval brackets the rate,
runs are a function of (campaign seed, index), and a file-backed sweep reads
back the same as a run without a file."""

import json

import pytest

from haltlab.errors import ConfigError
from haltlab.machine.profile import load_profile
from haltlab.results import dumps
from haltlab.scenarios.printk_flood import PrintkFloodConfig, run_printk_flood
from haltlab.sweep import executor, open_sweep, run_items
from haltlab.sweep.flood import DECISIONS, FloodSweep, flood_row, parse_kernels, run_campaign, run_seed


@pytest.fixture(scope="module")
def slow_flood():
    """A flood loop slower than the console's sysrq line (250 us a record):
    the regime in which v5.17+d51507098ff9 hangs."""
    return load_profile("kvm-x86").with_overrides(devkmsg_user_ns="250 us")


@pytest.fixture(scope="module")
def campaign(slow_flood):
    sweep = FloodSweep.parse(profile=slow_flood, kernels=["v5.17+d51507098ff9,v6.1"], runs=8, seed=5)
    return sweep, run_campaign(sweep)


def test_counts_add_up_and_the_interval_brackets_the_rate(campaign):
    sweep, variants = campaign
    assert [(v.kernel, v.console_spin) for v in variants] == [("v5.17+d51507098ff9", "stock"), ("v6.1", "stock")]
    for v in variants:
        assert v.runs == 8 and sum(v.decided.values()) == v.runs
        assert v.hung == v.decided["livelock"] + v.decided["timeout"]
        assert v.hang_rate_low <= v.hang_rate <= v.hang_rate_high
        assert 0 <= v.hang_rate_low < v.hang_rate_high <= 1
    patched, fixed = variants
    assert patched.decided["livelock"] > 0          # this regime hangs, and is proven so, not timed out
    assert fixed.hung == 0 and fixed.trigger_to_end_ns["min"] <= fixed.trigger_to_end_ns["median"] \
        <= fixed.trigger_to_end_ns["max"]


def test_a_row_is_the_scenarios_run_with_the_derived_seed(campaign, slow_flood):
    sweep, _ = campaign
    key, job = next(sweep.items())
    assert key == "kvm-x86/v5.17+d51507098ff9/stock/cpus=02/seed=5/run=0000000"
    row = flood_row(job)
    direct = run_printk_flood(PrintkFloodConfig(seed=run_seed(5, 0)), slow_flood)
    assert row["seed"] == run_seed(5, 0)
    assert all(row[k] == direct[k] for k in row if k != "seed")


def test_run_seeds_are_deterministic_and_distinct():
    seeds = [run_seed(0, i) for i in range(1000)]
    assert seeds == [run_seed(0, i) for i in range(1000)]
    assert len(set(seeds)) == 1000 and not set(seeds) & {run_seed(1, i) for i in range(1000)}


def test_same_seed_same_bytes(slow_flood):
    def once():
        sweep = FloodSweep.parse(profile=slow_flood, runs=4, seed=2)
        return dumps([v.to_dict() for v in run_campaign(sweep)])
    assert once() == once()


def test_a_file_backed_sweep_resumes_and_reads_back_the_same(tmp_path, slow_flood):
    out = tmp_path / "flood.jsonl"
    small = FloodSweep.parse(profile=slow_flood, runs=3, seed=1)
    big = FloodSweep.parse(profile=slow_flood, runs=5, seed=1)
    with executor(workers=1) as pool:
        with open_sweep(out, small.inputs()) as f:
            assert run_items(flood_row, small.items(), f, pool) == 3
        with open_sweep(out, big.inputs()) as f:
            assert big.todo(f.done) == 2
            assert run_items(flood_row, big.items(), f, pool) == 2     # only the missing runs
    assert len(out.read_text().splitlines()) == 1 + 5
    assert json.dumps([v.to_dict() for v in big.summary(out)]) == \
        json.dumps([v.to_dict() for v in run_campaign(big)])
    assert small.summary(out)[0].runs == 3          # a smaller campaign reads only its own rows


def test_decisions_are_the_scenarios():
    r = run_printk_flood(PrintkFloodConfig(seed=0))
    assert r["decided_by"] in DECISIONS


@pytest.mark.parametrize("kwargs, field", [
    ({"runs": 0}, "runs"),
    ({"kernels": ["v5.17,nope"]}, "kernel"),
    ({"kernels": [""]}, "kernel"),
    ({"console_spin": "stock,sometimes"}, "console_spin"),
    ({"cpus": 1}, "cpus"),
    ({"hang_after_s": 0.0}, "hang_after_s"),
    ({"runs": 600_000, "kernels": ["v5.17,v6.1"]}, "runs"),
])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        FloodSweep.parse(**kwargs)
    assert e.value.field == field


def test_kernels_keep_their_order_once_each():
    assert parse_kernels(["v6.1,v5.17", "v6.1"]) == ("v6.1", "v5.17")
