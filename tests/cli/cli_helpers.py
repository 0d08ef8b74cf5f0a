"""A check the CLI tests share: a result is exactly one error line."""


def one_line_error(result, *needles: str) -> str:
    """`result` is exit 2 with exactly one `haltlab: error:` line holding `needles`."""
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("haltlab: error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
