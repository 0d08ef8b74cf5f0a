"""The sweep file: resumes only what is missing, drops a torn last line, refuses
foreign files and files made with other inputs untouched, and survives a full
disk with whole lines only (a real tmpfs that fills up)."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sweep_helpers import errors, grow, haltlab_run, tiny_disk  # noqa: F401  (a fixture)

from haltlab.errors import ConfigError, UserError
from haltlab.sweep import open_sweep, read_inputs, read_sweep, run_sweep

INPUTS = {"scenario": "squares", "factor": 1}


def square(x: int) -> dict:
    return {"x": x, "square": x * x}


def padded(x: int) -> dict:
    return {"x": x, "pad": "p" * 400}


def items(n, start=0):
    return [(f"k{i:04d}", i) for i in range(start, n)]


def sweep(path, n, fn=square, inputs=INPUTS, workers=2):
    with ThreadPoolExecutor(workers) as pool:
        return run_sweep(fn, items(n), path, pool, inputs=inputs)


def test_resume_runs_only_what_is_missing(tmp_path):
    path = tmp_path / "s.jsonl"
    assert sweep(path, 3) == 3
    assert sweep(path, 5) == 2
    assert sweep(path, 5) == 0
    assert len(path.read_text().splitlines()) == 1 + 5          # the header and five rows
    assert [r["result"]["square"] for r in read_sweep(path)] == [0, 1, 4, 9, 16]
    assert read_inputs(path) == INPUTS


def test_an_item_listed_twice_runs_once(tmp_path):
    path = tmp_path / "s.jsonl"
    with ThreadPoolExecutor(2) as pool:
        assert run_sweep(square, items(3) + items(3), path, pool, inputs=INPUTS) == 3
    assert len(path.read_text().splitlines()) == 4


def test_a_torn_last_line_is_dropped_and_run_again(tmp_path):
    path = tmp_path / "s.jsonl"
    sweep(path, 2)
    torn = json.dumps({"key": "k0002", "result": {"x": 2}})[:-7]
    path.write_text(path.read_text() + torn)             # killed mid-write
    assert sweep(path, 3) == 1
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)


def test_a_torn_header_is_dropped_and_written_again(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"haltlab_sweep":1,"inputs":{"sc')
    assert sweep(path, 2) == 2
    assert read_inputs(path) == INPUTS and len(read_sweep(path)) == 2


@pytest.mark.parametrize("content, line", [
    (b'{"key": 5}\n', 1),
    (b'{"key":"..","result":3}\n', 1),
    (b'\xff\xfe\n', 1),
    (b'{"haltlab_sweep":1,"inputs":{}}\nhello\n', 2),
    (b'{"haltlab_sweep":1,"inputs":{}}\nworld', 2),     # no newline, but not a torn row
    (b'hello', 1),
])
def test_a_file_that_is_not_a_sweep_file_is_refused_untouched(tmp_path, content, line):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"line {line}") as e:
        sweep(path, 1, inputs={})
    assert e.value.field == "output" and "left unchanged" in str(e.value)
    assert path.read_bytes() == content
    with pytest.raises(UserError, match=f"line {line}"):
        read_sweep(path)


def test_rows_made_with_other_inputs_are_refused_and_never_reused(tmp_path):
    path = tmp_path / "s.jsonl"
    sweep(path, 3, inputs={"scenario": "squares", "factor": 1})
    before = path.read_bytes()
    with pytest.raises(ConfigError) as e:
        sweep(path, 3, inputs={"scenario": "squares", "factor": 5})
    assert "factor 1 there, 5 now" in str(e.value) and "delete it" in str(e.value)
    assert path.read_bytes() == before


def test_rows_without_a_header_are_refused(tmp_path):
    """A file of an older haltlab: rows whose inputs nothing records."""
    path = tmp_path / "old.jsonl"
    path.write_text('{"key":"k0000","result":{"x":0}}\n')
    with pytest.raises(ConfigError, match="no header"):
        sweep(path, 1)
    assert path.read_text() == '{"key":"k0000","result":{"x":0}}\n'


def test_a_failed_start_leaves_no_file(tmp_path):
    path = tmp_path / "s.jsonl"
    with pytest.raises(RuntimeError):
        with open_sweep(path, INPUTS):
            raise RuntimeError("the executor could not start")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_keeps_whole_lines_and_the_sweep_resumes(tiny_disk):
    path = tiny_disk / "s.jsonl"
    with pytest.raises(ConfigError, match="No space left on device") as e:
        sweep(path, 400, fn=padded)                        # 400 x 430 bytes > 64 KiB
    assert "\n" not in str(e.value)
    data = path.read_bytes()
    assert data.endswith(b"\n")                            # cut back to the last whole line
    kept = [json.loads(line) for line in data.splitlines()[1:]]
    assert 0 < len(kept) < 400
    grow(tiny_disk)
    assert sweep(path, 400, fn=padded) == 400 - len(kept)
    assert [r["result"]["x"] for r in read_sweep(path)] == list(range(400))


def test_a_full_disk_during_the_cli_sweep_is_one_line(tiny_disk):
    """The command, not only the library: one line, status 2, no traceback."""
    path = tiny_disk / "s.jsonl"
    args = ("sweep", "panic", "--output", str(path), "--cpus", "2", "--seeds", "0-499",
            "--observe", "0.01", "--workers", "2")
    done = haltlab_run(*args)
    assert done.returncode == 2, done.stderr
    rows = len(path.read_bytes().splitlines()) - 1
    assert errors(done.stderr) == [
        f"haltlab: error: --output {path}: cannot write (No space left on device); its {rows} complete "
        "rows are kept and the same command resumes once the disk has room"]
    assert path.read_bytes().endswith(b"\n") and 0 < rows < 1000
    grow(tiny_disk)
    again = haltlab_run(*args)
    assert again.returncode == 0, again.stderr
    assert f"1000 runs in {path} ({1000 - rows} new)" in again.stdout
    assert len(read_sweep(path)) == 1000


class _DoneAtOnce:
    """An executor whose futures are finished when submitted, so that one wait
    hands the run loop several finished runs at once, one of them failed."""

    haltlab_slots = 4

    def submit(self, fn, arg):
        from concurrent.futures import Future
        fut = Future()
        try:
            fut.set_result(fn(arg))
        except Exception as e:  # noqa: BLE001  (the run's own error, re-raised by the loop)
            fut.set_exception(e)
        return fut


def test_a_failed_run_does_not_lose_the_rows_that_finished_beside_it(tmp_path):
    def fails_on_3(x):
        if x == 3:
            raise RuntimeError("run 3 failed")
        return square(x)
    path = tmp_path / "s.jsonl"
    with pytest.raises(RuntimeError, match="run 3 failed"):
        run_sweep(fails_on_3, items(8), path, _DoneAtOnce(), inputs=INPUTS)
    kept = {row["key"] for row in read_sweep(path)}
    assert {"k0000", "k0001", "k0002"} <= kept and "k0003" not in kept
    assert len(kept) >= 4            # at least one run after k0003 in the same wait was kept


def test_a_config_error_survives_pickling():
    """Raised in a sweep worker, it crosses back to the parent by pickle."""
    import pickle
    e = pickle.loads(pickle.dumps(ConfigError("cpus", 0, "must be at least 1")))
    assert (e.field, e.value, e.why, str(e)) == ("cpus", 0, "must be at least 1", "cpus 0: must be at least 1")
