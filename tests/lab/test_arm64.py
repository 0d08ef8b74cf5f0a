"""The arm64 lab without QEMU: the parsers on real consoles (tests/lab/fixtures/kexec_arm64_*),
the QEMU arguments, the guest scripts, the foreign user space's closure, and bad input."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from haltlab.cli import cli
from haltlab.errors import ConfigError, UserError
from haltlab.lab import guest, images, parse, qemu, userland
from haltlab.lab.arch import Arch
from haltlab.lab.experiments.kexec import KexecConfig, Others, default_timeout_s, load_shutdown

from console_fixtures import read_log


TRACED = read_log("kexec_arm64_6.1.0-57_2cpu_cpuhp.log")
BUSY = read_log("kexec_arm64_6.1.0-57_2cpu_busy.log")
FOUR = read_log("kexec_arm64_6.1.0-57_4cpu.log")


def _shutdown(lines):
    return parse.arm64_kexec_shutdown(lines, parse.find(lines, "haltlab: kexec -e"))


# -- the shutdown, from the kernel's own lines -------------------------------------

def test_shutdown_from_starting_new_kernel_to_bye():
    # [18.104804] kexec_core: Starting new kernel ... [18.199869] psci: CPU1 killed (polled 0 ms)
    # ... [18.258611] Bye!
    s = _shutdown(TRACED)
    assert s["starting_seen"] and s["bye_seen"]
    assert s["shutdown_ns"] == 18_258_611_000 - 18_104_804_000
    assert s["killed_cpus"] == [1] and s["psci_polled_ms"] == [0]
    assert s["per_cpu_shutdown_ns"] == [18_199_869_000 - 18_104_804_000]
    assert s["last_kill_to_bye_ns"] == 18_258_611_000 - 18_199_869_000
    assert s["unclean_cpus"] == []
    # the host's arrival times tell the same story within a few ms (TCG: the arch timer follows the host)
    assert abs(s["shutdown_host_ns"] - s["shutdown_ns"]) < 5_000_000


def test_cpuhp_phases_of_the_dying_cpu():
    s = _shutdown(TRACED)
    assert s["cpuhp_events"] == 76
    (p,) = s["cpuhp_phases"]
    assert p["cpu"] == 1
    assert p["ap_teardown_ns"] == 18_168_999_000 - 18_122_272_000          # cpuhp_kick_ap_work
    assert p["sched_cpu_deactivate_ns"] == 18_141_193_000 - 18_124_377_000  # its synchronize_rcu()
    assert p["takedown_cpu_ns"] == 18_201_127_000 - 18_169_842_000          # the kill line is inside it
    assert p["ap_teardown_ns"] + p["takedown_cpu_ns"] + p["bp_dead_ns"] <= p["cpu_down_ns"]


def test_cpuhp_phases_count_what_the_trace_costs_inside_each():
    """The trace lines stored inside each phase (their characters with a
    newline, as the model's console counts them), and the printing time per
    character from the exit-to-next-enter gaps, by hand from the fixture."""
    (p,) = _shutdown(TRACED)["cpuhp_phases"]
    trace = [(parse.printk_ns(t), t) for _, t in TRACED if "cpuhp_" in t and "cpu: 0001" in t]
    chars = [len(t) + 1 for _, t in trace]
    assert p["ap_wake_ns"] == 18_124_377_000 - 18_122_272_000            # kick enter to sched_cpu_deactivate's
    assert p["ap_wake_trace_chars"] == chars[0] == len("[   18.122272] cpuhp_enter: cpu: 0001 target: 153 step: "
                                                       "236 (cpuhp_kick_ap_work)") + 1
    assert p["sched_cpu_deactivate_trace_chars"] == chars[1]             # its own enter line
    kick_exit = next(i for i, (_, t) in enumerate(trace) if "step: 236 ret" in t)
    take_exit = next(i for i, (_, t) in enumerate(trace) if "step: 153 ret" in t)
    assert p["ap_teardown_trace_chars"] == sum(chars[:kick_exit])
    assert p["takedown_cpu_trace_chars"] == chars[kick_exit + 1]         # the takedown_cpu enter line
    assert p["bp_dead_trace_chars"] == sum(chars[take_exit:len(trace) - 1])
    gaps = [(trace[i + 1][0] - trace[i][0]) / chars[i] for i in range(len(trace) - 1)
            if "cpuhp_exit" in trace[i][1] and "cpuhp_exit" not in trace[i + 1][1]]
    assert len(gaps) == 36            # every exit followed by an enter, on CPU 1
    assert p["trace_ns_per_char"] == round((sorted(gaps)[17] + sorted(gaps)[18]) / 2, 1)


def test_busy_run_migrates_the_pinned_task():
    s = _shutdown(BUSY)
    assert s["killed_cpus"] == [1] and s["cpuhp_events"] == 0 and s["cpuhp_phases"] == []
    assert s["shutdown_ns"] == 24_322_283_000 - 24_176_119_000
    assert any("no longer affine to cpu1" in t for _, t in BUSY)


def test_four_cpus_go_down_one_at_a_time():
    # [31.937600] Starting new kernel, then CPU1 (polled 4 ms) at 32.126018, CPU2 at 32.261077,
    # CPU3 at 32.358865, Bye! at 32.373837
    s = _shutdown(FOUR)
    assert s["killed_cpus"] == [1, 2, 3] and s["psci_polled_ms"] == [4, 0, 0]
    assert s["per_cpu_shutdown_ns"] == [188_418_000, 135_059_000, 97_788_000]
    assert s["last_kill_to_bye_ns"] == 14_972_000
    assert s["shutdown_ns"] == sum(s["per_cpu_shutdown_ns"]) + s["last_kill_to_bye_ns"] == 436_237_000
    assert len(s["per_cpu_shutdown_host_ns"]) == 3 and all(t > 0 for t in s["per_cpu_shutdown_host_ns"])
    assert [x["cpus"] for x in parse.smp_init_spans(FOUR)] == [4, 4]


def test_a_shutdown_that_never_said_bye():
    lines = TRACED[: parse.find(TRACED, "Bye!")]
    s = _shutdown(lines)
    assert s["starting_seen"] and not s["bye_seen"]
    assert s["shutdown_ns"] is None and s["last_kill_to_bye_ns"] is None
    assert s["killed_cpus"] == [1]          # what was printed still counts


def test_kill_lines_of_the_second_boot_are_not_the_first_ones():
    # Only lines before the next "Linux version" belong to the old kernel.
    second = max(parse.boot_starts(TRACED))
    fake = TRACED[:second + 1] + [(0, "[    9.000000] psci: CPU3 killed (polled 4 ms)")]
    assert _shutdown(fake)["killed_cpus"] == [1]


def test_several_cpus_in_the_order_they_died():
    lines = [(0, "[    1.000000] haltlab: kexec -e"), (1, "[    1.100000] kexec_core: Starting new kernel"),
             (2, "[    1.150000] psci: CPU1 killed (polled 0 ms)"), (3, "[    1.230000] psci: CPU2 killed (polled 4 ms)"),
             (4, "[    1.300000] psci: CPU3 may not have shut down cleanly (AFFINITY_INFO reports 1)"),
             (5, "[    1.320000] Bye!")]
    s = parse.arm64_kexec_shutdown(lines)
    assert s["killed_cpus"] == [1, 2] and s["psci_polled_ms"] == [0, 4] and s["unclean_cpus"] == [3]
    assert s["per_cpu_shutdown_ns"] == [50_000_000, 80_000_000]
    assert s["per_cpu_shutdown_host_ns"] == [1, 1]
    assert s["shutdown_ns"] == 220_000_000


def test_exit_code_is_the_last_exit_line():
    assert parse.exit_code([(0, "READY stage=1"), (1, "EXIT 4")]) == 4
    assert parse.exit_code([(0, "HB 1")]) is None


def test_both_kernels_brought_up_both_cpus():
    assert [s["cpus"] for s in parse.smp_init_spans(TRACED)] == [2, 2]


# -- QEMU, the command line and the guest --------------------------------------------

def _args(**kw):
    spec = qemu.GuestSpec(Path("/k"), Path("/i"), "c", arch=Arch.ARM64, accelerator="tcg", **kw)
    return qemu.build_args(spec, console_fd=5, progress_fd=6, qmp_path=Path("/t/q"))


def test_arm64_args():
    a = _args(cpus=8)
    assert a[0] == "qemu-system-aarch64"
    assert a[a.index("-machine") + 1] == "virt,gic-version=3,its=off" and a[a.index("-cpu") + 1] == "cortex-a72"
    assert a[a.index("-accel") + 1] == "tcg,thread=multi" and a[a.index("-smp") + 1] == "8"
    assert a.count("-serial") == 1 and "virtconsole,chardev=progress" in a
    assert not any("isa-debug-exit" in x or "pvpanic" in x for x in a)
    for flag in ("-nodefaults", "-no-reboot", "-S"):
        assert flag in a


def test_arm64_cmdline():
    c = qemu.kernel_cmdline(arch=Arch.ARM64, extra=("loglevel=8",), params={"others": "busy"})
    assert c.startswith("console=ttyAMA0,115200 earlycon=pl011,mmio32,0x9000000 ")
    assert c.endswith("panic=0 loglevel=8 haltlab.others=busy")


def test_x86_cmdline_unchanged():
    assert qemu.kernel_cmdline(panic_timeout_s=3) == ("console=ttyS0,115200 earlycon=uart8250,io,0x3f8,115200 "
                                                      "printk.time=1 printk.devkmsg=on panic=3")


def test_arm64_init_uses_the_virtio_console_and_powers_off(tmp_path):
    script = guest.kexec_init(Arch.ARM64)
    assert "/dev/ttyS1" not in script and "/dev/port" not in script
    assert 'progress() { echo "$*" > /dev/hvc0; }' in script
    assert "kexec -l -i /boot/vmlinuz" in script and "kexec -l /boot/vmlinuz" not in guest.kexec_init(Arch.ARM64)
    assert "kexec -l /boot/vmlinuz" in guest.kexec_init()            # x86 keeps purgatory's checks
    assert guest.custom_init("x\n") == guest.PRELUDE + "x\n"
    sh = shutil.which("busybox") or shutil.which("sh")
    (tmp_path / "init").write_text(script)
    subprocess.run(([sh, "sh", "-n"] if sh.endswith("busybox") else [sh, "-n"]) + [str(tmp_path / "init")], check=True)


def test_busy_loop_starts_one_task_per_cpu(tmp_path):
    # The busy part of the body, run by the host's shell with taskset and nproc stubbed.
    body = guest.KEXEC_BODY.split("# haltlab.others=busy")[1].split("kexec -l")[0]
    script = ('param() { echo busy; }\nprogress() { echo "$*"; }\nnproc() { echo 3; }\n'
              'taskset() { echo "pin $2"; }\n' + body.split("\n", 1)[1] + "wait\n")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.split("\n")
    assert sorted(x for x in out if x.startswith("pin")) == ["pin 0", "pin 1", "pin 2"] and "BUSY 3" in out


# -- the foreign user space ----------------------------------------------------------

SHOW = {
    "kexec-tools:arm64": "Package: kexec-tools\nVersion: 1:2.0.25-3\nDepends: libc6 (>= 2.34), libxenmisc4.17 "
                         "(>= 4.17), zlib1g (>= 1:1.2.2.3), debconf (>= 0.5) | debconf-2.0\n",
    "busybox-static:arm64": "Package: busybox-static\nVersion: 1:1.35.0-4\n",
    "libc6:arm64": "Package: libc6\nVersion: 2.36-9\nMulti-Arch: same\nDepends: libgcc-s1\n",
    "libxenmisc4.17:arm64": "Package: libxenmisc4.17\nVersion: 4.17.7\nMulti-Arch: same\nDepends: libc6 (>= 2.34), "
                            "libyajl2\n",
    "zlib1g:arm64": "Package: zlib1g\nVersion: 1:1.2.13\nMulti-Arch: same\nDepends: libc6 (>= 2.17)\n",
    "debconf:arm64": "Package: debconf\nVersion: 1.5.82\nMulti-Arch: foreign\nDepends: perl-base\n",
    "libgcc-s1:arm64": "Package: libgcc-s1\nVersion: 12.2.0\nMulti-Arch: same\n",
    "libyajl2:arm64": "Package: libyajl2\nVersion: 2.1.0\nMulti-Arch: same\n",
}


def test_library_closure_follows_only_libraries():
    calls = []

    def show(specs):
        calls.append(specs)
        return "\n\n".join(SHOW[s] for s in specs if s in SHOW)

    closure = userland.library_closure(show, userland.ROOT_PACKAGES, "arm64")
    assert closure == {"busybox-static": "1:1.35.0-4", "kexec-tools": "1:2.0.25-3", "libc6": "2.36-9",
                       "libgcc-s1": "12.2.0", "libxenmisc4.17": "4.17.7", "libyajl2": "2.1.0", "zlib1g": "1:1.2.13"}
    assert "debconf:arm64" in calls[1] and "perl-base:arm64" not in sum(calls, [])  # asked, not followed
    assert len(calls) == 3                                                          # one apt call per level


def test_library_closure_without_the_foreign_architecture():
    with pytest.raises(UserError, match="apt knows no busybox-static, kexec-tools for arm64 .*dpkg --add-architecture"):
        userland.library_closure(lambda specs: "", userland.ROOT_PACKAGES, "arm64")


def test_readelf_parsers():
    dyn = (" 0x0000000000000001 (NEEDED)             Shared library: [libxenctrl.so.4.17]\n"
           " 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n"
           " 0x000000000000000e (SONAME)             Library soname: [libz.so.1]\n")
    assert userland.parse_needed(dyn) == ["libxenctrl.so.4.17", "libc.so.6"]
    assert userland.parse_interp("      [Requesting program interpreter: /lib/ld-linux-aarch64.so.1]\n") == \
        "/lib/ld-linux-aarch64.so.1"
    assert userland.parse_interp("no interpreter") is None
    assert userland.first_depends("libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, zlib1g:any") == \
        ["libc6", "debconf", "zlib1g"]


def test_arm64_image_release():
    head = bytearray(0x40)
    head[0x38:0x3C] = b"ARM\x64"
    assert images.arm64_image_release(bytes(head) + b"..Linux version 6.1.0-57-arm64 (debian@x) #1") == "6.1.0-57-arm64"
    assert images.arm64_image_release(b"\x1f\x8b" + bytes(100)) is None    # an Image.gz is not an Image


def test_a_user_kernel_that_is_not_an_arm64_image(tmp_path):
    (tmp_path / "bz").write_bytes(b"\0" * 0x202 + b"HdrS" + b"\0" * 100)
    with pytest.raises(ConfigError, match="^bzimage .*: not an arm64 Image"):
        images.user_kernel(tmp_path / "bz", arch=Arch.ARM64)


def test_cached_kernels_of_one_architecture(tmp_path):
    for pkg, rel in (("linux-image-6.1.0-57-amd64", "6.1.0-57-amd64"), ("linux-image-6.1.0-57-arm64", "6.1.0-57-arm64")):
        root = tmp_path / "kernels" / f"{pkg}_6.1.192-3"
        (root / "boot").mkdir(parents=True)
        (root / "boot" / f"vmlinuz-{rel}").write_bytes(b"")
        (root / "lib/modules" / rel).mkdir(parents=True)
    assert [k.release for k in images.cached_kernels(tmp_path)] == ["6.1.0-57-amd64"]
    assert [k.release for k in images.cached_kernels(tmp_path, arch=Arch.ARM64)] == ["6.1.0-57-arm64"]


# -- bad input: one line naming the field ------------------------------------------------

@pytest.mark.parametrize("kw, message", [
    ({"arch": "riscv"}, "^arch riscv: unknown architecture"),
    ({"arch": Arch.ARM64, "cpus": 1}, "^cpus 1: must be an integer >= 2"),
    ({"arch": Arch.ARM64, "cpus": 257}, "^cpus 257: Debian's arm64 kernel takes at most 256"),
    ({"arch": Arch.ARM64, "accel": "kvm"}, "^accel kvm: an arm64 guest runs under TCG"),
    ({"arch": Arch.ARM64, "build": "stock"}, "^build stock: builds an x86 kernel"),
    ({"others": "lazy"}, "^others lazy: expected idle or busy"),
    ({"cpuhp_trace": "yes"}, "^cpuhp_trace yes: expected true or false"),
    ({"lpj": 0}, "^lpj 0: must be a positive integer"),
    ({"lpj": True}, "^lpj True: must be a positive integer"),
    ({"lpj": "8400000"}, "^lpj 8400000: must be a positive integer"),
])
def test_kexec_config_errors(kw, message):
    with pytest.raises(ConfigError, match=message):
        KexecConfig(**kw).validate()


def test_good_configs_validate():
    KexecConfig(arch="arm64", cpus=2, others="busy", cpuhp_trace=True).validate()
    KexecConfig(arch=Arch.ARM64, others=Others.BUSY).validate()
    KexecConfig().validate()
    assert KexecConfig(arch=Arch.ARM64).options()["arch"] == "arm64"
    assert default_timeout_s("arm64") == 600 and default_timeout_s("x86_64") == 120


def test_only_kexec_boots_arm64():
    from haltlab.lab.experiments import PanicConfig
    with pytest.raises(ConfigError, match="^arch arm64: this experiment boots x86_64 only"):
        PanicConfig(arch=Arch.ARM64).validate()


@pytest.mark.parametrize("argv, needle", [
    (["--arch", "sparc"], "--arch sparc: unknown architecture"),
    (["--arch", "arm64", "--cpus", "1"], "--cpus 1: must be an integer >= 2"),
    (["--arch", "arm64", "--cpus", "2,1"], "--cpus 1: must be an integer >= 2"),
    (["--arch", "arm64", "--others", "lazy"], "--others lazy: expected idle or busy"),
    (["--lpj", "0"], "--lpj 0: must be a positive integer"),
])
def test_cli_errors_are_one_line(argv, needle, tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["lab", "kexec", *argv, "--output", str(out)])
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"haltlab: error: {needle}"), result.stderr
    assert not out.exists()


# -- reading results back -------------------------------------------------------------

def _result(cpus, per_cpu, outcome="completed"):
    return {"experiment": "kexec", "arch": "arm64", "cpus": cpus, "others": "idle", "kernel_release": "6.1.0-57-arm64",
            "runs": [{"outcome": outcome, "shutdown_ns": sum(per_cpu) + 20, "per_cpu_shutdown_ns": per_cpu,
                      "psci_polled_ms": [0] * len(per_cpu)}]}


def test_load_shutdown_reads_one_or_many(tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps([_result(2, [60]), _result(4, [50, 70, 80]), _result(4, [1], outcome="hung-silent")]))
    got = load_shutdown(f)
    assert [g["cpus"] for g in got] == [2, 4, 4]
    assert got[1]["per_cpu_shutdown_ns"] == [[50, 70, 80]] and got[1]["shutdown_ns"] == [220]
    assert got[2]["per_cpu_shutdown_ns"] == []                # only completed runs
    f.write_text(json.dumps(_result(2, [60])))
    assert load_shutdown(f)[0]["psci_polled_ms"] == [[0]]


def test_load_shutdown_refuses_other_results(tmp_path):
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"experiment": "kexec", "cpus": 2, "runs": []}))
    with pytest.raises(UserError, match="not an arm64 lab kexec result"):
        load_shutdown(f)
    with pytest.raises(UserError, match="cannot read"):
        load_shutdown(tmp_path / "missing.json")
