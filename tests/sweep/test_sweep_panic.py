"""The panic sweep as a library: option lists stay ranges, a sweep over the cap
is refused before anything is built, items stream through a bounded window,
and the inputs recorded cover every input that moves a result."""

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

import pytest

import haltlab
from haltlab.errors import ConfigError, UserError
from haltlab.machine.profile import profiles_dir
from haltlab.scenarios.panic import PanicConfig
from haltlab.sweep import MAX_RUNS, PanicSweep, open_sweep, panic_row, run_items
from haltlab.sweep.inputs import model_digest, source_digest
from haltlab.sweep.ranges import parse_ints


def test_integer_lists_are_ranges_merged_once_each():
    assert parse_ints("seeds", "0-3,2,9,4-5") == (range(0, 6), range(9, 10))
    assert parse_ints("seeds", "0-999999999999") == (range(0, 10**12),)
    with pytest.raises(ConfigError, match="empty range"):
        parse_ints("seeds", "5-1")
    with pytest.raises(ConfigError, match="expected integers"):
        parse_ints("seeds", "1e9")


def test_a_sweep_over_the_cap_is_refused_before_anything_is_built():
    started = time.monotonic()
    with pytest.raises(ConfigError) as e:
        PanicSweep.parse(seeds="0-999999999999")
    assert time.monotonic() - started < 1.0
    assert e.value.field == "seeds" and "2,000,000,000,000 runs" in str(e.value)
    assert f"at most {MAX_RUNS:,}" in str(e.value)
    with pytest.raises(ConfigError) as e:                   # the product, blamed on the largest list
        PanicSweep.parse(cpus="1-1000", seeds="0-1999")
    assert e.value.field == "seeds" and "4,000,000 runs" in str(e.value)


def test_a_sweep_at_the_cap_is_taken_and_walked_not_listed():
    sweep = PanicSweep.parse(seeds=f"0-{MAX_RUNS // 2 - 1}")
    assert sweep.runs == MAX_RUNS
    keys = sweep.keys()
    assert next(keys) == "kvm-x86/cpus=00008/mdelay/idle/seed=000000"
    assert next(keys) == "kvm-x86/cpus=00008/mdelay/idle/seed=000001"


class CountingPool(ThreadPoolExecutor):
    """A thread pool that records how many calls were submitted and not done."""

    def __init__(self, workers):
        super().__init__(workers)
        self.outstanding = self.most = 0
        self._lock = threading.Lock()

    def submit(self, fn, *args):
        with self._lock:
            self.outstanding += 1
            self.most = max(self.most, self.outstanding)
        fut = super().submit(fn, *args)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _):
        with self._lock:
            self.outstanding -= 1


def test_items_stream_through_a_bounded_window(tmp_path):
    with open_sweep(tmp_path / "s.jsonl", {}) as file, CountingPool(2) as pool:
        assert run_items(lambda x: {"x": x}, ((f"k{i:05d}", i) for i in range(2000)), file, pool) == 2000
    assert pool.most <= 4                                   # twice the pool's two workers


def test_progress_comes_even_while_no_run_finishes(tmp_path):
    calls = []
    with open_sweep(tmp_path / "s.jsonl", {}) as file, ThreadPoolExecutor(1) as pool:
        run_items(lambda x: time.sleep(1.0) or {"x": x}, [("a", 1)], file, pool, calls.append, tick_s=0.1)
    assert calls.count(0) >= 5 and calls[-1] == 1


def test_every_config_field_is_in_the_key_or_the_recorded_inputs():
    sweep = PanicSweep.parse(observe_ns=10**9)
    inputs = sweep.inputs()
    per_run = {"profile", "cpus", "after_panic", "others", "seed"}       # what the key names
    assert {f.name for f in fields(PanicConfig)} == per_run | set(inputs["config"])
    assert inputs["config"]["observe_ns"] == 10**9
    assert inputs["model"] == {"haltlab": haltlab.__version__, "source_sha256": model_digest()}


def _copy_profile(tmp_path, name, edit=lambda text: text):
    text = (profiles_dir() / "kvm-x86.toml").read_text()
    path = tmp_path / name
    path.write_text(edit(text))
    return str(path)


def test_the_profile_enters_by_content_not_name(tmp_path):
    stock = PanicSweep.parse().inputs()["profile"]["sha256"]
    same = _copy_profile(tmp_path, "same.toml", lambda t: t.replace('source = "', 'source = "copied; ', 1))
    assert PanicSweep.parse(profile=same).inputs()["profile"]["sha256"] == stock
    slower = _copy_profile(tmp_path, "slower.toml", lambda t: t.replace(
        'ipi_latency_ns = { value = "1300 ns"', 'ipi_latency_ns = { value = "1301 ns"', 1))
    assert "1301 ns" in Path(slower).read_text()
    assert PanicSweep.parse(profile=slower).inputs()["profile"]["sha256"] != stock


def test_the_model_digest_follows_the_model_source(tmp_path):
    root = tmp_path / "haltlab"
    shutil.copytree(Path(haltlab.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(root) == model_digest()
    (root / "report" / "extra.py").write_text("# not the model\n")
    assert source_digest(root) == model_digest()
    path = root / "kernel" / "panic.py"
    path.write_text(path.read_text() + "\n# any change to the model\n")
    assert source_digest(root) != model_digest()


def test_a_worker_with_another_model_refuses_to_run():
    sweep = PanicSweep.parse(cpus="2", seeds="0", after_panic="mdelay", observe_ns=10**7)
    (key, (cfg, profile, digest)), = sweep.items()
    assert panic_row((cfg, profile, digest))["outcome"] == "panicked-and-finished"
    with pytest.raises(UserError, match="another haltlab model"):
        panic_row((cfg, profile, "0" * 64))


def test_summary_reads_only_this_sweeps_runs(tmp_path):
    out = tmp_path / "s.jsonl"
    wide = PanicSweep.parse(cpus="2,4", seeds="0-2", observe_ns=10**7)
    with open_sweep(out, wide.inputs()) as file, ThreadPoolExecutor(2) as pool:
        run_items(panic_row, wide.items(), file, pool)
    narrow = PanicSweep.parse(cpus="4", seeds="1-2", after_panic="safe_halt", observe_ns=10**7)
    groups = narrow.summary(out)
    assert [(g.cpus, g.after_panic, g.others, g.runs, g.hung) for g in groups] == [(4, "safe_halt", "idle", 2, 0)]
    assert groups[0].host_cpu_s_per_s < 0.01 and groups[0].time_to_end_ns > 0
