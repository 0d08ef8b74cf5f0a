"""The finite ring: sizes, overwrite, records being written, and the
explorer's SeqWindow abstraction (exact: checked on random walks)."""

import random

from haltlab.engine.explorer import replay
from haltlab.kernel.commits import commit_set
from haltlab.kernel.printk_ringbuffer import Ring, _finalize, _reserve, blk_size, read_valid, ring_sizes
from haltlab.scenarios.printk_flood import flood_line
from haltlab.scenarios.printk_flood_check import PrintkFloodCheckConfig, make_run, panic_finished


def test_a_128_kib_ring_holds_131_flood_records():
    data, descs = ring_sizes(17)
    assert (data, descs) == (131072, 4096)
    assert blk_size(flood_line(991)) == 1000          # 991 rounded up to 8, plus the 8-byte id
    ring = Ring(data, descs)
    for _ in range(1000):
        ring, seq = _reserve(ring, flood_line(991))
        ring, _ = _finalize(ring, seq)
    assert len(ring.records) == 131 and ring.next_seq == 1000
    assert ring.tail_seq == 1000 - 131


def test_a_reader_behind_the_tail_reads_the_tail_and_stops_at_a_record_being_written():
    ring = Ring(2000, 16)
    for _ in range(3):
        ring, seq = _reserve(ring, "x" * 991)
        ring, _ = _finalize(ring, seq)
    assert ring.tail_seq == 1 and read_valid(ring, 0, False).seq == 1       # seq 0 was overwritten: a gap
    ring, seq = _reserve(ring, "y" * 991)                                    # reserved, not finalized
    ring, seq2 = _reserve(ring, "short")
    ring, _ = _finalize(ring, seq2)
    assert read_valid(ring, seq, False) is None                            # readers must stop there
    assert read_valid(ring, seq, True).seq == seq2                         # 6.9's panic CPU skips it


def test_the_tail_cannot_pass_a_record_being_written():
    ring = Ring(2000, 16)
    ring, first = _reserve(ring, "x" * 991)
    ring, _ = _reserve(ring, "x" * 991)
    assert _reserve(ring, "x" * 991)[1] is None                            # prb_reserve() fails


def test_kernel_specs_add_and_remove_commits():
    assert "printk_no_spin_in_panic" in commit_set("v5.17+d51507098ff9")
    assert "printk_no_spin_in_panic" not in commit_set("v5.17")
    assert "printk_suppress_panic_printk" not in commit_set("v6.1-13fb0f74d702")
    assert commit_set("debian-6.1.0-56-d04d5882cd67") == commit_set("debian-6.1.0-56") - {"printk_no_console_owner_in_panic"}


def _walks(kernel: str, walks: int, steps: int) -> int:
    """Random runs; whenever one reaches the abstract state of an earlier one,
    every next step must lead both to the same abstract state again."""
    cfg = PrintkFloodCheckConfig(kernel=kernel, line_len=64)     # short records: cheap fingerprints
    make = lambda: make_run(cfg)                            # noqa: E731
    seen: dict = {}
    rng = random.Random(kernel)
    checked = 0
    for _ in range(walks):
        run, path = make(), []
        for _ in range(steps):
            choices = run.driver.choices()
            if not choices or panic_finished(run):
                break                                       # the explorer stops at the goal too
            fp = run.fingerprint()
            other = seen.setdefault(fp, list(path))
            if other != path and checked < 12:
                c = rng.choice(choices)
                assert replay(make, path + [c]).fingerprint() == replay(make, other + [c]).fingerprint(), \
                    (kernel, path, other, c)
                checked += 1
            c = rng.choice(choices)
            run.driver.step(c)
            path.append(c)
    return checked


def test_seq_window_is_exact_on_random_runs_of_both_printk_shapes():
    for kernel in ("v5.17+d51507098ff9", "v6.1"):
        assert _walks(kernel, walks=6, steps=150) > 5       # the walks did meet earlier states
