"""`haltlab sweep panic`: the panic scenario over seeds x policies x CPU counts.

Runs go through `haltlab.sweep`: a local process pool, or a Dask cluster with
`--scheduler`. Results stream to `--out` (JSON Lines) as they finish; running the
same command again resumes, skipping runs already in the file.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from haltlab.errors import UserError
from haltlab.kernel.idle import OTHERS
from haltlab.kernel.policies import POLICIES
from haltlab.machine.profile import load_profile
from haltlab.results import check_out_path
from haltlab.cli.options import seconds_to_ns
from haltlab.scenarios.panic import PanicConfig, run_panic
from haltlab.sweep import check_executor, executor, read_sweep, run_sweep

__all__ = ["sweep"]

_KEEP = ("outcome", "time_to_end_ns", "panic_to_others_stopped_ns", "smp_send_stop_ns", "host_cpu_s_per_s", "perf_samples", "events")


def panic_row(cfg: dict) -> dict:
    """One sweep run; module-level so that worker processes can unpickle it."""
    r = run_panic(PanicConfig(**cfg))
    return {k: r.get(k) for k in _KEEP}


def _ints(option: str, text: str) -> list[int]:
    out = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = part.split("-", 1)
                if int(lo) > int(hi):
                    raise UserError(f"{option} {text}: {part} is an empty range")
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise UserError(f"{option} {text}: expected integers like 0-9 or 8,64,512") from None
    return out


def _names(option: str, text: str, allowed) -> list[str]:
    names = [n for n in text.split(",") if n]
    if not names:
        raise UserError(f"{option} {text!r}: give at least one of {', '.join(sorted(allowed))}")
    for n in names:
        if n not in allowed:
            raise UserError(f"{option} {text}: unknown {n!r} (choose from {', '.join(sorted(allowed))})")
    return names


@click.group()
def sweep() -> None:
    """Run a scenario over many seeds, variants and CPU counts in parallel."""


@sweep.command("panic")
@click.option("--out", "out_path", required=True, help="JSON Lines file; an existing one is resumed.")
@click.option("--profile", default="kvm-x86", show_default=True)
@click.option("--cpus", default="8", show_default=True, help="CPU counts, e.g. 8,64,512.")
@click.option("--after-panic", default="mdelay,safe_halt", show_default=True)
@click.option("--others", default="idle", show_default=True)
@click.option("--seeds", default="0-3", show_default=True, help="Seeds, e.g. 0-99 or 1,5,9.")
@click.option("--observe", type=float, default=1.0, show_default=True, help="Seconds after the end line.")
@click.option("--workers", type=int, default=None, help="Local worker processes [default: CPU count].")
@click.option("--scheduler", default=None, help="Dask scheduler address (needs haltlab[dask]).")
@click.option("--scheduler-timeout", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="How long to try to reach --scheduler.")
def sweep_panic(out_path, profile, cpus, after_panic, others, seeds, observe, workers, scheduler,
                scheduler_timeout) -> None:
    """The panic scenario for every combination; prints medians per configuration."""
    check_executor(scheduler, workers, scheduler_timeout)    # a bad address fails here, in one line
    observe_ns = seconds_to_ns(observe, "--observe")
    name = load_profile(profile).name       # a bad profile fails here, in one line
    items = []
    for n in _ints("--cpus", cpus):
        for policy in _names("--after-panic", after_panic, POLICIES["after_panic"]):
            for other in _names("--others", others, OTHERS):
                for seed in _ints("--seeds", seeds):
                    cfg = PanicConfig(profile=profile, cpus=n, after_panic=policy, others=other,
                                      seed=seed, observe_ns=observe_ns, timeline=False)
                    cfg.validate(n)         # here, not in a worker after the pool started
                    key = f"{name}/cpus={n:05d}/{policy}/{other}/seed={seed:06d}"
                    items.append((key, asdict(cfg)))
    check_out_path(out_path, "--out", directory=False)
    read_sweep(out_path)                    # refuses a file that is not a sweep's
    with executor(scheduler, workers, scheduler_timeout) as pool, \
            Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("sweep", total=len(items))
        ran = run_sweep(panic_row, items, out_path, pool,
                        progress=lambda n, total: bar.update(task, completed=len(items) - total + n))
    _print_summary(name, items, ran, out_path)


def _print_summary(profile: str, items: list[tuple[str, dict]], ran: int, out_path: str) -> None:
    """Medians per configuration of this sweep's runs (the file may hold others)."""
    results = {row["key"]: row["result"] for row in read_sweep(out_path)}
    groups: dict[tuple[int, str, str], list[dict]] = {}
    for key, cfg in items:
        if key in results:
            groups.setdefault((cfg["cpus"], cfg["after_panic"], cfg["others"]), []).append(results[key])
    t = Table(title=f"sweep: {sum(map(len, groups.values()))} runs in {out_path} ({ran} new)")
    for col in ("configuration", "runs", "hung", "time to end (ms, median)", "host CPU-s/s (median)"):
        t.add_column(col)
    for (cpus, policy, other), runs in sorted(groups.items()):
        ends = [r["time_to_end_ns"] for r in runs if r.get("time_to_end_ns") is not None]
        host = [r["host_cpu_s_per_s"] for r in runs if r.get("host_cpu_s_per_s") is not None]
        t.add_row(f"{profile} {cpus} CPUs {policy} {other}", str(len(runs)),
                  str(sum(r.get("outcome") == "hung" for r in runs)),
                  f"{statistics.median(ends) / 1e6:.3f}" if ends else "-",
                  f"{statistics.median(host):.4f}" if host else "-")
    Console().print(t)
