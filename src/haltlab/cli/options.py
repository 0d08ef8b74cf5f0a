"""The CLI's one option vocabulary, and the map from config fields to flags.

Every command spells a thing the same way (the README's command reference
lists them):

* `--cpus N`: the number of CPUs, model or guest (`--smp` is the lab's alias,
  QEMU's word).
* `--kernel PRESET`: the model's kernel, a named commit set. A kernel image to
  boot is `--bzimage FILE`; a Debian kernel package to pin is `--kernel-package`.
* `--profile NAME|FILE`: a machine profile.
* `--out DIR` is always a directory; `--output FILE` is always a file.
* `--observe SECONDS`: how long to watch after the panic has finished.
* `--seed S` for one run, `--seeds 0-9` for a sweep; `--runs N` repetitions.
* `--reduce {none,symmetry,por,all}`: the explorer's reductions (default all).
* `--format {table,markdown,csv,json}`, with `--json` short for `--format json`:
  what stdout gets (`format_option`; the tables come from one model,
  `haltlab.report.tables`).
* A path option's value is checked as text first (`PathText`): empty, a
  component over 255 bytes or a path over 4095 is refused in one line.

Library code raises `ConfigError(field, ...)`; `render_config_error()` turns the field into
the flag the user typed, with the value shown in the flag's unit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from haltlab.errors import ConfigError, UserError
from haltlab.results import path_problem, show_path

__all__ = ["FIELD_FLAGS", "render_config_error", "seconds_to_ns", "format_option", "reduce_option", "REDUCTIONS",
           "max_states_option",
           "profile_option", "cpus_option", "kernel_preset_option", "KernelSpec", "seed_option",
           "NSEC_PER_SEC", "kernel_package_option", "PathText", "out_dir_option", "output_file_option", "observe_option"]

NSEC_PER_SEC = 1_000_000_000


def _ns_as_seconds(ns: Any) -> str:
    return f"{ns / NSEC_PER_SEC:g}" if isinstance(ns, (int, float)) else str(ns)


# config field -> (flag, how to show the field's value under that flag)
FIELD_FLAGS: dict[str, tuple[str, Callable[[Any], str] | None]] = {
    "profile": ("--profile", None),
    "cpus": ("--cpus", None),
    "smp": ("--cpus", None),
    "ncpus": ("--cpus", None),
    "kernel": ("--kernel", None),
    "version": ("--kernel", None),                  # KernelConfig's name for the preset
    "after_panic": ("--after-panic", None),
    "others": ("--others", None),
    "arch": ("--arch", None),
    "cpuhp_trace": ("--cpuhp-trace", None),
    "lpj": ("--lpj", None),
    "observe_ns": ("--observe", _ns_as_seconds),
    "observe_s": ("--observe", None),
    "seed": ("--seed", None),
    "seeds": ("--seeds", None),
    "panic_timeout_s": ("--panic-timeout", None),
    "panic_cpu": ("--panic-cpu", None),
    "variant": ("--variant", None),
    "timeouts": ("--timeouts", None),
    "max_states": ("--max-states", None),
    "reduce": ("--reduce", None),
    "timing": ("--timing", None),
    "tolerance_pct": ("--timing-tolerance", None),
    "lab_mode": ("--lab", None),
    "runs": ("--runs", None),
    "workers": ("--workers", None),
    "scheduler": ("--scheduler", None),
    "scheduler_timeout_s": ("--scheduler-timeout", None),
    "output": ("--output", None),
    "memory_mb": ("--memory-mb", None),
    "accel": ("--accel", None),
    "bzimage": ("--bzimage", None),
    "build": ("--build", None),
    "jobs": ("--jobs", None),
    "modules": ("--modules", None),
    "kernel_package": ("--kernel-package", None),
    "boot_timeout_s": ("--boot-timeout", None),
    "timeout_s": ("--timeout", None),
    "window_s": ("--observe", None),
    "settle_s": ("--settle", None),
    "perf_freq_hz": ("--perf-freq-hz", None),
    "pvpanic": ("--pvpanic", None),
    "delay_min_s": ("--delay-min", None),
    "delay_max_s": ("--delay-max", None),
    "line_len": ("--line-len", None),
    "kdump": ("--kdump", None),
    "crash_kexec_post_notifiers": ("--post-notifiers", None),
    "console_spin": ("--console-spin", None),       # PrintkFloodConfig (S2)
    "hang_after_s": ("--hang-after", None),
    "flood_irqs_off": ("--flood-irqs-off", None),
    # KexecConfig (S3); "arch" is above, shared with the lab's --arch
    "shutdown": ("--shutdown", None),
    "irqs": ("--irqs", None),
    "managed_irqs": ("--managed-irqs", None),
    "freeze": ("--freeze", None),
    "console_loglevel": ("--loglevel", None),
    # X86KexecConfig (S4)
    "bringup": ("--bringup", None),
    "lpj": ("--lpj", None),
    "park_cstate": ("--park-cstate", None),
    "boot_core_sibling": ("--boot-core-sibling", None),
    "max_cpus": ("--max-cpus", None),
    "offline_cpus": ("--offline-cpus", None),
    "park_mem_reserved": ("--no-park-mem", None),
    "cpu_init_udelay": ("--cpu-init-udelay", None),
    "tsc_reliable": ("--tsc-reliable", None),
}


def render_config_error(e: ConfigError) -> str:
    """`e` with its field shown as the flag that sets it (fields no flag sets,
    such as a profile key, keep their own name)."""
    flag, show = FIELD_FLAGS.get(e.field, (None, None))
    return e.render(flag, show)


def seconds_to_ns(seconds: float, flag: str, *, max_s: float = 1e6) -> int:
    """Flags take seconds, configs integer ns: refuse what has no such integer
    (NaN, infinity, under 1 ns, over `max_s`), naming the value as typed."""
    ns = round(seconds * NSEC_PER_SEC) if math.isfinite(seconds) else 0
    if not 1 <= ns <= max_s * NSEC_PER_SEC:
        raise UserError(f"{flag} {seconds:g}: must be a number of seconds from 1e-9 to {max_s:g}")
    return ns


# --- shared option decorators ---------------------------------------------------------

class PathText(click.ParamType):
    """A path option's value as a `Path`, refused first if no file system can
    take it (`results.path_problem`). click's own `Path` type turns `''` into
    `Path('.')`, the current directory, before a command can see it was empty."""

    name = "path"

    def convert(self, value, param, ctx):
        if isinstance(value, Path):
            return value
        why = path_problem(value)
        if why is not None:
            self.fail(f"{show_path(value)}: {why}", param, ctx)
        return Path(value)


def out_dir_option(*decls: str, default: Path | None = None, help: str) -> Callable:
    """`--out DIR` (or `--trace DIR`): a directory the command writes a set of files into."""
    return click.option(*decls, type=PathText(), default=default, show_default=default is not None,
                   metavar="DIR", help=help)


def output_file_option(*, help: str = "Also write the result as JSON to this file.") -> Callable:
    """`--output FILE`: one file the command writes its result to."""
    return click.option("--output", type=PathText(), default=None, metavar="FILE", help=help)


def kernel_package_option() -> Callable:
    return click.option("--kernel-package", default=None, metavar="NAME[=VERSION]",
                        help="The Debian kernel package the lab boots, resolved once for the whole "
                             "command [default: what linux-image-amd64 depends on].")


def format_option(f: Callable) -> Callable:
    """`--format {table,markdown,csv,json}` and `--json`, its short form, as one
    `fmt` argument of the command. `table` is rich tables for a person; the
    others are for files and scripts (`report.tables` renders one table model
    into each); `json` is the canonical result, byte-identical per input."""
    from haltlab.report.tables import FORMATS

    @functools.wraps(f)
    def command(*args, fmt: str, as_json: bool, **kwargs):
        if as_json and fmt not in ("table", "json"):
            raise click.UsageError(f"--json is short for --format json; it cannot go with --format {fmt}")
        return f(*args, fmt="json" if as_json else fmt, **kwargs)

    command = click.option("--json", "as_json", is_flag=True, help="Short for --format json.")(command)
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                   help="table: rich tables; markdown, csv: the same tables as text; "
                        "json: the result as canonical JSON (sorted keys).")(command)


def profile_option(default: str = "kvm-x86") -> Callable:
    return click.option("--profile", default=default, show_default=True, metavar="NAME|FILE",
                   help="Machine profile: a name from the shipped profiles or a path to a TOML file.")


def cpus_option(*, default: int | None = None, help: str = "Number of CPUs.", alias_smp: bool = False) -> Callable:
    decls = ("--cpus", "--smp", "cpus") if alias_smp else ("--cpus", "cpus")
    return click.option(*decls, type=int, default=default, show_default=default is not None,
                   metavar="N", help=help + (" (--smp is an alias)" if alias_smp else ""))


REDUCTIONS = ("none", "symmetry", "por", "all")


def max_states_option(default: int) -> Callable[[Callable], Callable]:
    """`--max-states N`: the explorer's bound on distinct states (the verdict is then bounded-ok)."""
    return click.option("--max-states", type=int, default=default, show_default=True, metavar="N",
                        help="Stop after N distinct states; the verdict is then bounded-ok.")


def reduce_option(f: Callable) -> Callable:
    """`--reduce {none,symmetry,por,all}` (default all): the explorer's state-space
    reductions, and `--debug`: keep full state fingerprints beside their digests
    and check them for collisions."""
    f = click.option("--debug", is_flag=True,
                     help="Keep full state fingerprints beside their 16-byte digests and check for collisions.")(f)
    return click.option("--reduce", type=click.Choice(REDUCTIONS), default="all", show_default=True,
                        help="State-space reductions: symmetry among interchangeable CPUs, partial-order "
                             "reduction, both, or none.")(f)


class KernelSpec(click.ParamType):
    """`--kernel SPEC`: a preset (`choices`) plus or minus commits, as
    `v5.17+d51507098ff9` or `v6.1-13fb0f74d702` (`haltlab.kernel.commits`).
    A bad spec is one line naming it and what is wrong. `many`: a comma list
    of specs (a campaign's variants), each checked."""

    name = "kernel"

    def __init__(self, choices, many: bool = False) -> None:
        self.choices, self.many = tuple(choices), many

    def get_metavar(self, param, *args, **kwargs) -> str:
        return "SPEC[,SPEC...]" if self.many else "SPEC"

    def convert(self, value, param, ctx):
        from haltlab.kernel.commits import commit_set
        try:
            for spec in value.split(",") if self.many else [value]:
                commit_set(spec.strip())
        except ConfigError as e:
            self.fail(e.why, param, ctx)
        return value


def kernel_preset_option(choices: list[str], default: str = "v7.1") -> Callable:
    return click.option("--kernel", type=KernelSpec(choices), default=default, show_default=True,
                   help=f"The model's kernel: a preset ({', '.join(choices)}), optionally with commits "
                        "added or removed, as v5.17+d51507098ff9 or v6.1-13fb0f74d702.")


def observe_option(default: float, help: str) -> Callable:
    """`--observe SECONDS`: how long to watch after the panic has finished."""
    return click.option("--observe", "observe_s", type=float, default=default, show_default=True,
                   metavar="SECONDS", help=help)


def seed_option(help: str = "Seed of the run.") -> Callable:
    return click.option("--seed", type=int, default=0, show_default=True, help=help)


__all__ += ["crash_options"]


def crash_options(f: Callable) -> Callable:
    """`--kdump/--no-kdump` (a crash kernel loaded with `kexec -p`; default none)
    and `--post-notifiers` (the boot option `crash_kexec_post_notifiers`), as the
    command's `kdump` and `crash_kexec_post_notifiers` arguments."""
    f = click.option("--post-notifiers", "crash_kexec_post_notifiers", is_flag=True,
                     help="Boot with crash_kexec_post_notifiers: the panic notifiers run before the "
                          "crash kexec, and the other CPUs are stopped with crash_smp_send_stop().")(f)
    return click.option("--kdump/--no-kdump", "kdump", default=False, show_default=True,
                        help="A crash kernel is loaded (kexec -p): panic() ends in it.")(f)


__all__ += ["saved_lab_results"]


def saved_lab_results(items, key: str) -> dict[str, dict]:
    """`--lab-result KEY=FILE` values (validate: a case; reproduce: a build),
    each file read as a saved lab result; a bad one is one line (a UserError)."""
    from haltlab.validation.calibrate_flood import read_lab_result
    saved = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--lab-result {item}: expected {key}=FILE")
        saved[name] = read_lab_result(path, "--lab-result", campaigns_ok=True)
    return saved
