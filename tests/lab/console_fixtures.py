"""The saved real consoles the lab's parser tests read (tests/lab/fixtures/*.log)."""

from pathlib import Path

from haltlab.lab import parse

__all__ = ["FIXTURES", "read_log"]

FIXTURES = Path(__file__).parent / "fixtures"


def read_log(name: str) -> list[parse.Line]:
    """A fixture log: `host_ns<TAB>text` lines, `#` lines are comments."""
    return [(int(ns), text) for ns, text in
            (line.split("\t", 1) for line in (FIXTURES / name).read_text().splitlines() if not line.startswith("#"))]
