"""The CLI tests' shared fixture: the work stubbed out, to prove a bad input
is refused before it (the one-line check is in cli_helpers.py)."""

import pytest


def _no_work(*_args, **_kwargs):
    raise AssertionError("the work ran before the input was refused")


@pytest.fixture
def stub_work(monkeypatch):
    import haltlab.report.reproduce
    import haltlab.scenarios.panic
    import haltlab.validation.validate
    monkeypatch.setattr(haltlab.scenarios.panic, "simulate_panic", _no_work)
    monkeypatch.setattr(haltlab.report.reproduce, "run_reproduce", _no_work)
    monkeypatch.setattr(haltlab.validation.validate, "validate", _no_work)
