"""`--timing` on explore and replay, and `replay --cycle`, from the command line."""

import json
import sys

from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.engine.core import DriverError
from haltlab.engine.explorer import Timing, check_cycle, replay
from haltlab.checks.properties import Verdict, check

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0] + "/tests/quality")
import test_known_livelocks as livelocks  # noqa: E402


def test_timed_exploration_says_what_its_verdict_rests_on():
    res = CliRunner().invoke(cli, ["explore", "panic-race", "--cpus", "2", "--timing", "timed", "--reduce",
                                   "none", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["verdict"] == "ok" and out["timing"] == "timed"
    assert "within 50 % of its cost in profile kvm-x86" in out["timing_assumptions"]
    untimed = json.loads(CliRunner().invoke(cli, ["explore", "panic-race", "--cpus", "2", "--reduce", "none",
                                                  "--json"]).stdout)
    assert "timing" not in untimed
    assert out["states"] != untimed["states"]          # time rules some interleavings out


def test_a_tolerance_outside_0_to_100_is_one_line():
    res = CliRunner().invoke(cli, ["explore", "panic-race", "--timing", "timed", "--timing-tolerance", "101"])
    assert res.exit_code == 2
    assert "--timing-tolerance" in res.output and "Traceback" not in res.output


def test_replay_cycle_that_does_not_come_back_is_refused_in_one_line():
    res = CliRunner().invoke(cli, ["replay", "panic-race", "--choices", "c0", "--cycle", "c1"])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.startswith("haltlab: error:")]
    assert lines == ["haltlab: error: --cycle c1: the 1 cycle choices do not come back to the state they "
                     "started from"]


def test_check_cycle_accepts_a_real_lasso_and_refuses_a_broken_one():
    make = livelocks.build(Timing.UNTIMED)
    out = check(make, livelocks.PROPERTIES, goal=livelocks.cpu0_free)
    assert out.verdict is Verdict.LIVELOCK
    run = replay(make, list(out.lasso.prefix))
    check_cycle(run, list(out.lasso.cycle))           # comes back: no error
    run = replay(make, list(out.lasso.prefix))
    try:
        check_cycle(run, list(out.lasso.cycle)[:-1] or ["c0"])
    except DriverError:
        pass
    else:
        raise AssertionError("a cycle cut short was accepted")


def test_a_widened_counterexample_is_a_candidate_until_exact_zones_replay_it():
    # The kdump + post-notifiers deadlock of 5.17: found with widened zones, then
    # replayed with exact ones, so the output calls it a timed run and its
    # replay command is the exact one.
    res = CliRunner().invoke(cli, ["explore", "printk-flood", "--kernel", "v5.17", "--kdump", "--post-notifiers",
                                   "--timing", "widened", "--json"])
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert out["verdict"] == "deadlock" and out["timing"] == "widened"
    assert "widened where a run comes back to the same state" in out["timing_assumptions"]
    assert "replayed with exact ones" in out["deadlock"]["candidate"]
    assert "--timing timed" in out["deadlock"]["replay"]
    again = CliRunner().invoke(cli, out["deadlock"]["replay"].split()[1:])
    assert again.exit_code == 0, again.output
    assert "CPUs that can still step: none" in again.output


def test_widened_states_are_a_function_of_the_search_so_the_output_repeats():
    args = ["explore", "panic-race", "--cpus", "2", "--timing", "widened", "--reduce", "none", "--json"]
    first, second = (CliRunner().invoke(cli, args) for _ in range(2))
    assert first.exit_code == 0 and first.stdout == second.stdout
    assert json.loads(first.stdout)["verdict"] == "ok"


def test_a_timed_lasso_is_reported_only_once_its_cycle_replays_with_exact_zones():
    # Exact zones: `check()` puts each lasso of the zone graph to
    # `timed_lasso_check` before it calls it a livelock. The hand-over miniature
    # without a hand-over livelocks timed, and its lasso comes back to the same
    # state, zone included; the same lasso with its cycle cut short is refused,
    # with the reason.
    from haltlab.checks.liveness import Lasso
    from haltlab.checks.timed_lasso import timed_lasso_check
    make = livelocks.build(Timing.TIMED, hand_over=False)
    out = check(make, livelocks.PROPERTIES, goal=livelocks.cpu0_free)
    assert out.verdict is Verdict.LIVELOCK
    check_cycle(replay(make, list(out.lasso.prefix)), list(out.lasso.cycle))     # no error: it is a run
    accept = timed_lasso_check(make)
    assert accept(out.lasso) == out.lasso                                        # already settled
    cut = Lasso(out.lasso.prefix, out.lasso.cycle[:-1] or ("c0",), out.lasso.states)
    why = accept(cut)
    assert isinstance(why, str) and "not a run when replayed" in why
