"""stdout that takes nothing: `> /dev/full` and a closed fd 1 (`>&-`), in a real
`python -m haltlab` process, since a CliRunner has no fd 1 of its own
(issue 6 #14). Each is one `haltlab: error:` line and exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

COMMANDS = {
    "simulate": ["simulate", "panic", "--json", "--observe", "0.1"],
    "explore": ["explore", "panic-race", "--json"],
    "reproduce": ["reproduce", "--json", "--lab", "skip", "--out", "{tmp}/reproduce"],
    "sweep": ["sweep", "panic", "--output", "{tmp}/sweep.jsonl", "--seeds", "0", "--cpus", "2",
              "--after-panic", "mdelay", "--observe", "0.1", "--workers", "1"],
    "help": ["--help"],
    "subcommand-help": ["simulate", "panic", "-h"],
}


# `python -m haltlab`, with reproduce's S2 campaigns at 8 runs each, as tests/conftest.py
# sets them in-process: what is checked here is the write to fd 1, not the hang rate.
HALTLAB = ("import haltlab.validation.figures; from haltlab.validation import s2_figures; "
           "s2_figures.S2_RUNS = s2_figures.S2_SENSITIVITY_RUNS = 8; "
           "from haltlab.cli import main; main()")


def run(args: list[str], tmp_path: Path, *, stdout) -> subprocess.CompletedProcess:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    closed = stdout == "closed"
    return subprocess.run(
        [sys.executable, "-c", HALTLAB, *args], cwd=tmp_path, timeout=120,
        stdout=subprocess.DEVNULL if closed else stdout, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "80"},
        preexec_fn=(lambda: os.close(1)) if closed else None)


@pytest.mark.parametrize("name, stdout", [(name, stdout) for name in COMMANDS for stdout in ("full", "closed")])
def test_stdout_that_takes_nothing_is_one_line_and_exit_2(tmp_path, name, stdout):
    with open("/dev/full", "w") as full:
        result = run(COMMANDS[name], tmp_path, stdout=full if stdout == "full" else "closed")
    assert "Traceback" not in result.stderr
    expected = ("haltlab: error: stdout: cannot write (No space left on device)" if stdout == "full"
                else "haltlab: error: stdout is closed: nowhere to print the result "
                     "(redirect it to a file or /dev/null)")
    lines = result.stderr.splitlines()
    assert [line for line in lines if "error" in line] == [expected]
    assert lines[-1] == expected                    # progress log lines (reproduce) come before it
    assert all(line.startswith("haltlab: ") for line in lines), lines
    assert result.returncode == 2
    if stdout == "closed":                          # refused before any work: nothing written
        assert list(tmp_path.iterdir()) == []
