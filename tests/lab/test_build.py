"""Issue 9: lab/build.py's pure steps, without a compiler: the fragment, the
fragment check after olddefconfig, the first compile error, the cache key.
The real build is tests/lab/test_build_real.py (marker `lab`)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.errors import UserError
from haltlab.lab import build
from haltlab.lab.patchsets import load_patch_set


def test_every_fragment_option_says_why():
    """Each option sits in a block that opens with a comment: the reason it is there."""
    block_has_comment = False
    for line in build.FRAGMENT.read_text().splitlines():
        if not line.strip():
            block_has_comment = False
        elif line.startswith("#"):
            block_has_comment = True
        else:
            assert line.startswith("CONFIG_"), line
            assert block_has_comment, f"{line}: no comment above it says why"


def test_the_fragment_has_what_the_lab_needs():
    opts = build.fragment_options(build.FRAGMENT.read_text())
    for name in ("SMP", "ACPI", "SERIAL_8250_CONSOLE", "BLK_DEV_INITRD", "KEXEC", "MAGIC_SYSRQ", "PVPANIC_PCI",
                 "PRINTK", "HZ_250"):
        assert opts[f"CONFIG_{name}"] == "y", name
    assert opts["CONFIG_LOG_BUF_SHIFT"] == "17"


def test_fragment_options_reads_values_and_unset_lines():
    text = 'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=17\nCONFIG_D="x y"\n# a comment\n\n'
    assert build.fragment_options(text) == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": "17", "CONFIG_D": '"x y"'}


def test_check_fragment_names_the_dropped_option():
    build.check_fragment("CONFIG_A=y\nCONFIG_N=17\n", "CONFIG_A=y\nCONFIG_N=17\nCONFIG_X=y\n")
    with pytest.raises(UserError) as e:
        build.check_fragment("CONFIG_A=y\nCONFIG_PVPANIC_PCI=y\n", "CONFIG_A=y\n# CONFIG_PVPANIC_PCI is not set\n",
                             "s1-safe-halt")
    msg = str(e.value)
    assert "\n" not in msg
    assert "lab build s1-safe-halt: Kconfig dropped CONFIG_PVPANIC_PCI=y" in msg and "CONFIG_PVPANIC_PCI=n" in msg
    with pytest.raises(UserError, match="CONFIG_LOG_BUF_SHIFT=17 .* has CONFIG_LOG_BUF_SHIFT=14"):
        build.check_fragment("CONFIG_LOG_BUF_SHIFT=17\n", "CONFIG_LOG_BUF_SHIFT=14\n")


# A GCC 12 failure as a -j2 build log has it (another job's lines around it).
LOG = """\
  CC      kernel/exit.o
  CC      kernel/panic.o
/c/kbuild/work/build-ab12cd34/src/kernel/panic.c:272:20: error: weak declaration of 'cpu_halt_after_panic' must be public
  272 | static void __weak cpu_halt_after_panic(void)
      |                    ^~~~~~~~~~~~~~~~~~~~
  CC      kernel/softirq.o
make[3]: *** [/c/kbuild/work/build-ab12cd34/src/scripts/Makefile.build:250: kernel/panic.o] Error 1
make[2]: *** [/c/kbuild/work/build-ab12cd34/src/scripts/Makefile.build:500: kernel] Error 2
"""


def test_first_compile_error_is_source_relative():
    src = Path("/c/kbuild/work/build-ab12cd34/src")
    assert build.first_compile_error(LOG, src) == \
        "kernel/panic.c:272: error: weak declaration of 'cpu_halt_after_panic' must be public"


def test_first_compile_error_falls_back_to_the_linker_then_make():
    link = "  LD      vmlinux.o\nld: vmlinux.o: in function `panic': undefined reference to `cpu_halt_after_panic'\n"
    assert build.first_compile_error(link).startswith("ld: vmlinux.o: in function")
    assert build.first_compile_error("make[1]: *** [Makefile:1] Error 2\n") == "make[1]: *** [Makefile:1] Error 2"
    assert build.first_compile_error("  CC      a.o\n") is None


def test_makefile_version():
    assert build.makefile_version("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\nNAME = x\n") \
        == "6.1.192"
    assert build.makefile_version("VERSION = 6\nPATCHLEVEL = 6\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n") == "6.6.0-rc3"


def test_the_key_changes_with_each_input_and_only_with_them():
    stock, s1 = load_patch_set("stock"), load_patch_set("s1-safe-halt")
    base = build.build_key(stock, "6.1.192-3", b"CONFIG_A=y\n", "gcc 12.2.0")
    assert build.build_key(stock, "6.1.192-3", b"CONFIG_A=y\n", "gcc 12.2.0") == base
    others = {build.build_key(s1, "6.1.192-3", b"CONFIG_A=y\n", "gcc 12.2.0"),
              build.build_key(stock, "6.1.192-4", b"CONFIG_A=y\n", "gcc 12.2.0"),
              build.build_key(stock, "6.1.192-3", b"CONFIG_A=n\n", "gcc 12.2.0"),
              build.build_key(stock, "6.1.192-3", b"CONFIG_A=y\n", "gcc 12.3.0")}
    assert len(others) == 4 and base not in others


def _lab(*args):
    return CliRunner().invoke(cli, ["lab", *args])


def test_the_cli_lists_the_sets():
    r = _lab("build", "--format", "csv")
    assert r.exit_code == 0, r.output
    assert "stock" in r.stdout and "s1-safe-halt" in r.stdout


@pytest.mark.parametrize("args, needle", [
    (["build", "nope"], "haltlab: error: --build nope: unknown patch set (choose from "),
    (["panic", "--build", "nope"], "haltlab: error: --build nope: unknown patch set (choose from "),
    (["panic", "--build", "stock", "--bzimage", "/etc/hostname"], "haltlab: error: --build stock: boots a kernel built"),
    (["panic", "--build", "stock", "--kernel-package", "linux-image-amd64"], "--build stock: boots a kernel built"),
    (["panic", "--smp", "2,x"], "'2,x': expected an integer or a comma list"),
    (["panic", "--smp", "2,2"], "'2,2': a count is given twice"),
    (["panic", "--smp", "2,0"], "haltlab: error: --cpus 0: must be an integer >= 1"),
])
def test_bad_build_options_are_one_line(args, needle):
    r = _lab(*args)
    assert r.exit_code == 2, r.output
    assert r.stdout == "" and r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
