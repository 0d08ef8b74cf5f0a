"""`explore` and `replay`: a trace printed literally, with the kernel function
and C file beside the model's Python line (issue 6 #24), and progress a log can
read (#25)."""

import inspect
import io
import re

from click.testing import CliRunner
from rich.console import Console

import haltlab.cli.console as console_mod
from haltlab.cli import cli
from haltlab.kernel import panic as kpanic
from haltlab.kernel.arch import x86
from haltlab.report.race_trace import TRACE_HEADER, kernel_location, trace_text


def _line_of(fn, needle: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, text in enumerate(lines) if needle in text)


def test_a_replay_reaching_panic_on_other_cpu_prints_its_location_literally():
    """The 2-CPU run where CPU1 loses the claim and reads panic_cpu again: with
    markup/emoji on, `panic_on_other_cpu:100:` was printed as an emoji."""
    result = CliRunner().invoke(cli, ["replay", "panic-race", "--choices", "c0,c0,c0,c0,c0,c1,c1,c1"])
    assert result.exit_code == 0, result.output
    line = _line_of(kpanic.panic_on_other_cpu, "READ_ONCE(k.panic_cpu)")
    assert (f"CPU1 panic_on_other_cpu() kernel/panic.c [haltlab/kernel/panic.py:{line}]: "
            "READ_ONCE(panic_cpu)") in result.stdout
    assert "\N{HUNDRED POINTS SYMBOL}" not in result.stdout
    assert result.stdout.splitlines()[0] == TRACE_HEADER
    assert "panic_smp_self_stop() kernel/panic.c [haltlab/kernel/arch/x86.py:" in result.stdout


def test_trace_text_is_never_markup_or_emoji():
    fn_line = _line_of(kpanic.panic_on_other_cpu, "READ_ONCE")
    trace = [("1:c0", 0, f"panic_on_other_cpu:{fn_line}: READ_ONCE(panic_cpu) [bold]x[/] :100: :smile:"),
             ("2:c1", 1, "<NMI entry>"), ("2:c1", 1, "not_a_kernel_function:7: op")]
    out = io.StringIO()
    Console(file=out, width=200).print(trace_text(trace))
    text = out.getvalue()
    assert "[bold]x[/] :100: :smile:" in text
    assert "step 1 [c0]" in text and "step 2 [c1]" in text
    assert "    CPU1 <NMI entry>" in text
    assert "    CPU1 not_a_kernel_function() [model line 7]: op" in text


def test_kernel_locations_name_the_c_file_each_function_mirrors():
    stop = _line_of(x86.stop_this_cpu, "stop_this_cpu")
    assert kernel_location("stop_this_cpu", stop).c_file == "arch/x86/kernel/process.c"
    assert kernel_location("native_stop_other_cpus",
                           _line_of(x86.native_stop_other_cpus, "def")).c_file == "arch/x86/kernel/smp.c"
    assert kernel_location("panic", _line_of(kpanic.panic, "panic_try_start")).c_file == "kernel/panic.c"
    assert kernel_location("panic", 1) is None       # a line outside the function: not guessed


def test_explore_progress_in_a_log_has_states_rate_and_stack_depth(monkeypatch):
    """stderr not a terminal: log lines, each with the count, states/s and the
    depth of the search stack; the JSON on stdout is unchanged by them."""
    monkeypatch.setattr(console_mod, "LOG_EVERY_S", 0.0)     # a line for every update
    result = CliRunner().invoke(cli, ["explore", "panic-race", "--cpus", "3", "--reduce", "none", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    pattern = re.compile(r"^haltlab: explore panic-race: \d+ states, states/s [\d,]+, stack depth \d+ "
                         r"\([\d.]+ s(, done)?\)$")
    progress = [line for line in lines if "states/s" in line]
    assert len(progress) >= 3 and all(pattern.match(line) for line in progress), lines
    depths = [int(re.search(r"stack depth (\d+)", line)[1]) for line in progress]
    assert max(depths[:-1]) > 0                     # mid-search, the stack holds the frontier
    assert progress[-1].endswith(", done)") and "stack depth 0" in progress[-1]
    assert '"verdict": "ok"' in result.stdout


def test_same_named_arch_functions_resolve_to_the_runs_arch():
    """x86 and arm64 define the same entry points (panic_smp_self_stop,
    crash_smp_send_stop, ...); a trace's `function:line` names no file, so the
    run's arch picks the module when both ranges hold the line."""
    from haltlab.kernel.arch import arm64, x86_crash
    modules = {"x86_64": (x86, x86_crash), "arm64": (arm64,)}
    shared = {"panic_smp_self_stop", "smp_send_stop", "setup_irqs", "crash_smp_send_stop",
              "machine_crash_shutdown", "machine_kexec"}
    for arch, mods in modules.items():
        for name in shared:
            fn = next(getattr(m, name) for m in mods if name in vars(m) and vars(m)[name].__module__ == m.__name__)
            lines, first = inspect.getsourcelines(fn)
            for line in range(first, first + len(lines)):
                loc = kernel_location(name, line, arch)
                assert loc is not None and loc.model_file.endswith(fn.__module__.rsplit(".", 1)[1] + ".py"), \
                    (arch, name, line, loc)
