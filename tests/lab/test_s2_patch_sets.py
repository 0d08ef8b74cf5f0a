"""Issue 9: the S2 patch sets are what their names and model specs say.

Each set's `model_kernel` is the lab's preset minus exactly the commits its
patch headers revert (so the model runs the kernel that is built), the preset
describes the source package the set applies to (its changelog), and the
patched kernel/printk/ has the panic checks each set is meant to keep and none
of those it is meant to lose, read from the patched source itself. The
model's flood, run on each set's spec, finds S2's livelock where the thread
says it is and nowhere else.
"""

import re
from pathlib import Path

import pytest

from haltlab.errors import ConfigError
from haltlab.kernel.commits import PRESETS, commit_set, find_commit
from haltlab.kernel.policies import ConsoleSpin
from haltlab.lab.changelog import read_changelog, series_items, series_of
from haltlab.lab.patchsets import apply_patch_set, load_patch_set, touched_files
from haltlab.validation.flood import build_model, check_lab_flood, hang_count, model_flood_runs
from haltlab.validation.lab_kernel import LAB_KERNEL_PRESET, carried
from test_patch_sets import _unpacked

S2_SETS = ("s2-petr", "s2-stephen", "s2-stock-5.17")
PRINTK = ["kernel/printk/printk.c", "kernel/printk/printk_safe.c", "kernel/printk/printk_ringbuffer.c",
          "kernel/printk/internal.h"]
_REVERTS = re.compile(r"^Source: revert of Linux kernel commit ([0-9a-f]{40})", re.M)
_HEADER_END = re.compile(r"^(---|diff )", re.M)


def _header(path: Path) -> str:
    text = path.read_text()
    return text[:_HEADER_END.search(text).start()]


def _reverted(name: str) -> list[str]:
    return [sha for p in load_patch_set(name).patches for sha in _REVERTS.findall(_header(p))]


@pytest.mark.parametrize("name", S2_SETS)
def test_model_kernel_is_the_preset_minus_what_the_patches_revert(name):
    ps = load_patch_set(name)
    shas = _reverted(name)
    known = {find_commit(sha).key for sha in shas if find_commit(sha)}
    assert commit_set(ps.model_kernel) == PRESETS[LAB_KERNEL_PRESET] - known
    for sha in shas:            # a revert the model has no commit for says so in its header
        if find_commit(sha) is None:
            (patch,) = [p for p in ps.patches if sha in _header(p)]
            assert "not a commit the model lists" in _header(patch), patch.name


def test_the_sets_revert_what_the_brief_names_and_stephen_adds_the_policy():
    petr = {find_commit(s).key for s in _reverted("s2-petr")}
    assert petr == {"printk_no_console_owner_in_panic", "printk_non_panic_cpus_out_of_console_lock",
                    "printk_drop_console_sem_in_panic", "printk_suppress_panic_printk"}
    assert set(_reverted("s2-stephen")) == set(_reverted("s2-petr"))
    assert {find_commit(s).key for s in _reverted("s2-stock-5.17") if find_commit(s)} == petr | {"printk_no_spin_in_panic"}
    assert [build_model(n).console_spin for n in S2_SETS] == [ConsoleSpin.STOCK, ConsoleSpin.PANIC_CPU_ONLY,
                                                               ConsoleSpin.STOCK]


def test_the_preset_describes_the_source_package():
    """debian-6.1.0-56, the sets' base, carries exactly the commits the model
    knows that linux-source-6.1's own changelog lists (as validate checks a
    booted package)."""
    path = Path("/usr/share/doc/linux-source-6.1/changelog.Debian.gz")
    if not path.is_file():
        pytest.skip(f"{path} is absent (apt-get install linux-source-6.1)")
    from haltlab.lab.build import source_version
    series = series_of(source_version("linux-source-6.1"))
    from haltlab.kernel.commits import COMMITS
    assert carried(COMMITS, series, series_items(read_changelog(path), series)) == PRESETS[LAB_KERNEL_PRESET]


def _patched(name: str, tmp_path: Path) -> dict[str, str]:
    """kernel/printk/ of the pinned source with set `name` applied, file -> text."""
    ps = load_patch_set(name)
    assert set(touched_files(ps)) <= set(PRINTK)
    source = _unpacked(ps.source_package, PRINTK)
    work = tmp_path / name
    for rel in PRINTK:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes((source / rel).read_bytes())
    apply_patch_set(ps, work)
    return {rel: (work / rel).read_text() for rel in PRINTK}


def _function(text: str, signature: str) -> str:
    start = text.index(signature + "\n{")
    return text[start:text.index("\n}\n", start)]


# what each of the reverted commits left in kernel/printk/printk.c
GONE_WITH = {
    "13fb0f74d702": ("suppress_panic_printk", "panic_console_dropped", "Too many dropped messages"),
    "8ebc476fd51e": ("abandon_console_lock_in_panic",),
    "51a1d258e50e": ("msleep(1000)",),
}


@pytest.mark.parametrize("name", S2_SETS)
def test_the_patched_printk_keeps_and_loses_the_panic_checks_it_should(name, tmp_path):
    files = _patched(name, tmp_path)
    printk = files["kernel/printk/printk.c"]
    for commit, needles in GONE_WITH.items():
        for needle in needles:
            assert needle not in printk, (commit, needle)
    # d04d5882cd67: the owner advertises itself and hands over during a panic again
    enable = _function(printk, "static void console_lock_spinning_enable(void)")
    check = _function(printk, "static int console_lock_spinning_disable_and_check(void)")
    assert "panic" not in enable and "panic" not in check and "console_owner = current;" in enable
    assert "WRITE_ONCE(console_waiter, false);" in check
    spinning = _function(printk, "static int console_trylock_spinning(void)")
    panic_tests = re.findall(r"if \((.*panic.*)\)\n\t\treturn 0;", spinning)
    rest = printk.replace(spinning, "")
    if name == "s2-petr":       # d51507098ff9 kept: every CPU refuses to spin in a panic
        assert panic_tests == ["panic_in_progress()"]
    elif name == "s2-stephen":  # only the panic CPU refuses
        assert panic_tests == ["atomic_read(&panic_cpu) == raw_smp_processor_id()"]
    else:                       # 5.17: no panic check anywhere in kernel/printk/
        assert panic_tests == [] and not any("panic_cpu" in t or "panic_in_progress" in t for t in files.values())
    elsewhere = [line.strip() for line in rest.splitlines() if "panic_cpu" in line]
    helper = ["return unlikely(atomic_read(&panic_cpu) != PANIC_CPU_INVALID);"]    # panic_in_progress()
    assert elsewhere == (helper if name == "s2-petr" else [])
    assert "console_may_schedule = 0;" in spinning       # 6.1.84's backport is kept by every set


def test_the_model_finds_s2s_livelock_only_in_s2_petr():
    """kernel-notes §3a: d51507098ff9 alone livelocks when the flood outruns
    the console; Stephen's variant and 5.17's hand-over do not (no kdump)."""
    runs = {n: model_flood_runs(2, seeds=12, model=build_model(n)) for n in S2_SETS}
    assert hang_count(runs["s2-petr"])[0] > 0
    assert hang_count(runs["s2-stephen"]) == (0, 12) and hang_count(runs["s2-stock-5.17"]) == (0, 12)
    assert all(r["guard_fired"] is False for rs in runs.values() for r in rs)     # no 13fb0f74d702 in any


def test_a_build_case_takes_only_a_result_of_its_build():
    lab = {"experiment": "flood", "cpus": 2, "kernel_build": {"patch_set": "stock"}}
    with pytest.raises(ConfigError, match=r"kernel_build.patch_set stock: the case boots the build s2-petr"):
        check_lab_flood(lab, 2, build="s2-petr")
    with pytest.raises(ConfigError, match="a Debian kernel package"):
        check_lab_flood(lab, 2)


def test_a_set_whose_policy_the_flood_lacks_is_refused(tmp_path):
    root = tmp_path / "patches"
    (root / "x").mkdir(parents=True)
    (root / "x" / "set.toml").write_text('description = "d"\nsource_package = "linux-source-6.1"\n'
                                         'model_kernel = "debian-6.1.0-56"\nmodel_policy = "after_panic=safe_halt"\n')
    with pytest.raises(ConfigError, match="model_policy.*only the console_spin policy") as e:
        build_model("x", root)
    assert "\n" not in str(e.value)
    (root / "x" / "set.toml").write_text('description = "d"\nsource_package = "linux-source-6.1"\n'
                                         'model_kernel = "debian-6.1.0-56"\nmodel_policy = "console_spin=nope"\n')
    with pytest.raises(ConfigError, match="unknown policy"):
        build_model("x", root)
