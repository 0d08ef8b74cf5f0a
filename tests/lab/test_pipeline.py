"""Each pipeline step without QEMU: images, initramfs, guest scripts, QEMU args, sampler, serial."""

import gzip
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from haltlab.errors import ConfigError, UserError
from haltlab.lab import cache, guest, images, initramfs, qemu, sampler, stats
from haltlab.lab.serial import SerialLog, split_lines


# -- stats ---------------------------------------------------------------------

def test_summarize_median_min_max():
    assert stats.summarize([3, 1, 2]) == {"median": 2, "min": 1, "max": 3, "n": 3}
    assert stats.summarize([1, 2]) == {"median": 2, "min": 1, "max": 2, "n": 2}  # ns stay ints
    assert stats.summarize([0.5, None, 1.5])["median"] == 1.0
    assert stats.summarize([None]) is None


# -- images --------------------------------------------------------------------

APT_SHOW = """Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)
Description: Linux for 64-bit PCs (meta-package)
"""


def test_candidate_depends():
    assert images.parse_candidate_depends(APT_SHOW) == ("linux-image-6.1.0-56-amd64", "6.1.192-2")
    with pytest.raises(UserError):
        images.parse_candidate_depends("Package: x\n")


def fake_bzimage(version: bytes) -> bytes:
    data = bytearray(0x1000)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x300 - 0x200).to_bytes(2, "little")
    data[0x300 : 0x300 + len(version)] = version
    return bytes(data)


def test_bzimage_release():
    assert images.bzimage_release(fake_bzimage(b"6.9.0-test (me@host) #1 SMP\0")) == "6.9.0-test"
    assert images.bzimage_release(b"\0" * 0x1000) is None


def test_user_kernel_errors_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match="^bzimage .*: no such file"):
        images.user_kernel(tmp_path / "nope")
    (tmp_path / "bz").write_bytes(b"not a kernel")
    with pytest.raises(ConfigError, match="^bzimage .*: not an x86 bzImage"):
        images.user_kernel(tmp_path / "bz")
    (tmp_path / "bz").write_bytes(fake_bzimage(b"6.9.0-x\0"))
    with pytest.raises(ConfigError, match="^modules .*: no such directory"):
        images.user_kernel(tmp_path / "bz", tmp_path / "nomods")
    assert images.user_kernel(tmp_path / "bz").release == "6.9.0-x"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HALTLAB_CACHE", str(tmp_path / "a"))
    assert cache.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("HALTLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache.cache_dir() == tmp_path / "x" / "haltlab"


# -- initramfs -----------------------------------------------------------------

def test_newc_archive_lists_with_cpio(tmp_path):
    entries = [initramfs.file("/bin/x", b"hello", 0o755), initramfs.symlink("/bin/y", "x"),
               initramfs.chardev("/dev/console", 5, 1)]
    data = initramfs.newc_archive(entries)
    assert data.startswith(b"070701") and len(data) % 4 == 0
    if not shutil.which("cpio"):
        pytest.skip("cpio not installed")
    out = subprocess.run(["cpio", "-itv"], input=data, capture_output=True, check=True).stdout.decode()
    names = [line.split()[-1] if "->" not in line else line.split()[-3] for line in out.splitlines()]
    assert names == ["bin", "dev", "bin/x", "bin/y", "dev/console"]


def test_build_is_cached_and_deterministic(tmp_path):
    e = [initramfs.file("/init", b"#!/bin/sh\n", 0o755)]
    a = initramfs.build(e, tmp_path)
    mtime = a.stat().st_mtime_ns
    assert initramfs.build(list(e), tmp_path) == a and a.stat().st_mtime_ns == mtime
    b = initramfs.build([initramfs.file("/init", b"other", 0o755)], tmp_path)
    assert b != a
    assert gzip.decompress(a.read_bytes()) == initramfs.newc_archive(e)
    assert sorted(p.name for p in (tmp_path / "initramfs").iterdir()) == sorted([a.name, b.name])  # no temp files


def test_parse_ldd():
    text = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibxenctrl.so.4.17 => /lib/x86_64-linux-gnu/libxenctrl.so.4.17 (0x00007f50)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f50)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f50)
"""
    assert initramfs.parse_ldd(text) == [
        "/lib/x86_64-linux-gnu/libxenctrl.so.4.17", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2",
    ]


def test_modules_decompressed_and_ordered(tmp_path):
    import lzma

    base = b"\x7fELF...\0license=GPL\0"
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel/pvpanic.ko.xz").write_bytes(lzma.compress(base + b"depends=\0name=pvpanic\0"))
    (tmp_path / "kernel/pvpanic-pci.ko.gz").write_bytes(gzip.compress(base + b"depends=pvpanic\0"))
    ents = initramfs.module_entries(tmp_path, ["pvpanic-pci"])
    assert [e.path for e in ents] == ["/lib/modules/00-pvpanic.ko", "/lib/modules/01-pvpanic_pci.ko"]
    assert ents[0].data.startswith(b"\x7fELF")
    with pytest.raises(UserError, match="module nope"):
        initramfs.module_entries(tmp_path, ["nope"])


def test_module_depends_from_modinfo():
    assert initramfs.module_depends(b"xx\0depends=a,b-c\0vermagic=6.1\0") == ["a", "b-c"]
    assert initramfs.module_depends(b"xx\0depends=\0") == []


# -- guest scripts ---------------------------------------------------------------

@pytest.mark.parametrize("script", [guest.panic_init(), guest.flood_init(), guest.kexec_init()])
def test_init_scripts_parse(script, tmp_path):
    sh = shutil.which("busybox") or shutil.which("sh")
    args = [sh, "sh", "-n"] if sh.endswith("busybox") else [sh, "-n"]
    (tmp_path / "init").write_text(script)
    subprocess.run(args + [str(tmp_path / "init")], check=True)
    assert script.startswith("#!/bin/sh\n")


def test_flood_line_is_s2_length():
    # The flood builds its record in the guest; check the recipe with the host's shell.
    body = 'param() { echo "$2"; }\n' + guest.FLOOD_BODY.split("\n")[1] + '\nprintf %s "$LINE"'
    line = subprocess.run(["sh", "-c", body], capture_output=True, text=True, check=True).stdout
    assert len(line) == 991 and line.startswith(guest.FLOOD_TAG)


@pytest.mark.parametrize("length", [16, 500, 991])
def test_flood_line_has_the_asked_length(length):
    # The tag replaces the record's first characters, whatever the tag's length.
    body = f'param() {{ echo "{length}"; }}\n' + guest.FLOOD_BODY.split("\n")[1] + '\nprintf %s "$LINE"'
    line = subprocess.run(["sh", "-c", body], capture_output=True, text=True, check=True).stdout
    assert len(line) == length and line == guest.FLOOD_TAG + "F" * (length - len(guest.FLOOD_TAG))


# -- QEMU arguments --------------------------------------------------------------

def spec(**kw):
    return qemu.GuestSpec(Path("/k"), Path("/i"), "console=ttyS0", **kw)


def test_args_isolated_guest():
    a = qemu.build_args(spec(), console_fd=5, progress_fd=6, qmp_path=Path("/t/q"))
    for flag in ("-nodefaults", "-no-reboot", "-S"):
        assert flag in a
    assert a[a.index("-nic") + 1] == "none"
    assert not any(x.startswith(("-virtfs", "-drive", "-netdev", "-fsdev")) for x in a)
    assert "file,id=console,path=/dev/fd/5" in a and "file,id=progress,path=/dev/fd/6" in a
    assert a.count("-serial") == 2
    assert "isa-debug-exit,iobase=0xf4,iosize=0x04" in a


def test_args_accelerators_and_pvpanic():
    kvm = qemu.build_args(spec(accelerator="kvm", pvpanic="pause"), console_fd=5, progress_fd=6, qmp_path=Path("q"))
    assert kvm[kvm.index("-accel") + 1] == "kvm" and "pvpanic-pci" in kvm and "panic=pause" in kvm
    tcg = qemu.build_args(spec(accelerator="tcg", cpus=4), console_fd=5, progress_fd=6, qmp_path=Path("q"))
    assert tcg[tcg.index("-accel") + 1] == "tcg,thread=multi" and "pvpanic-pci" not in tcg
    assert tcg[tcg.index("-smp") + 1] == "4"


def test_kernel_cmdline():
    c = qemu.kernel_cmdline(panic_timeout_s=5, params={"delay": 1.25})
    assert "console=ttyS0,115200" in c and "panic=5" in c and "printk.devkmsg=on" in c
    assert c.endswith("haltlab.delay=1.25")


def test_accelerator_choice(monkeypatch):
    with pytest.raises(ConfigError, match="^accel hvf: "):
        qemu.pick_accelerator("hvf")
    monkeypatch.setattr(qemu, "kvm_usable", lambda: False)
    assert qemu.pick_accelerator("auto") == "tcg"
    with pytest.raises(ConfigError, match="^accel kvm: /dev/kvm is not usable"):
        qemu.pick_accelerator("kvm")


def test_cpu_flags():
    assert "svm" in qemu.cpu_flags("processor\t: 0\nflags\t\t: fpu svm lm\n")
    assert qemu.cpu_flags("nothing") == set()


# -- sampler ---------------------------------------------------------------------

def test_parse_stat_with_hostile_comm():
    line = "1234 (qemu (x) y) S 1 2 3 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 5 0 100 0 0"
    assert sampler.parse_stat_ticks(line) == 325


def test_cpu_usage_of_a_busy_thread():
    stop = time.monotonic() + 0.6
    pid = os.getpid()
    before = sampler.CpuSample(pid, {pid: 0})
    while time.monotonic() < stop:
        pass
    after = sampler.CpuSample(pid, {pid: 0})
    u = sampler.cpu_usage(before, after, {pid: 0}, perf_freq_hz=4000)
    # Lenient: other work on a 2-core host may take part of the window.
    assert 0.1 < u["host_cpu_s_per_s"] < 1.5
    assert u["per_vcpu"][0]["cpu_index"] == 0 and u["per_vcpu"][0]["host_cpu_s_per_s"] > 0.1
    assert u["perf_samples"] == round(u["host_cpu_s"] * 4000)


# -- serial ----------------------------------------------------------------------

def test_split_lines_keeps_partial_tail():
    lines, rest = split_lines(b"ab", b"c\r\nde\nf")
    assert lines == ["abc", "de"] and rest == b"f"


def test_serial_log_counts_bulk_and_stamps_lines():
    r, w = os.pipe()
    log = SerialLog(r, "t", bulk=lambda t: t.startswith("FLOOD"))
    t0 = time.monotonic_ns()
    os.write(w, b"one\nFLOOD 1\nFLOOD 2\ntwo\npartial")
    os.close(w)
    log.join()
    assert [t for _, t in log.lines] == ["one", "two", "partial"]
    assert log.bulk_lines == 2 and all(ns >= t0 for ns, _ in log.lines)
    assert log.bulk_before == [0, 2, 2]  # the bulk lines before each kept one
    assert log.snapshot() == (log.lines, [0, 2, 2], 2)
    assert log.seen("two") == 1 and log.seen("nope") is None


def _unpacked(cache: Path, package: str, version: str, release: str) -> None:
    root = cache / "kernels" / f"{package}_{version}"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"vmlinuz-{release}").write_bytes(b"x")
    (root / "lib" / "modules" / release).mkdir(parents=True)


def test_offline_falls_back_to_the_cached_kernel(monkeypatch, tmp_path):
    _unpacked(tmp_path, "linux-image-6.1.0-9-amd64", "6.1.27-1", "6.1.0-9-amd64")
    monkeypatch.setenv("HALTLAB_CACHE", str(tmp_path))

    def offline(spec=None):
        raise UserError("apt unreachable")

    monkeypatch.setattr(images, "resolve_debian_package", offline)
    k = images.resolve_kernel()
    assert k.release == "6.1.0-9-amd64" and k.source == "debian:linux-image-6.1.0-9-amd64=6.1.27-1"
    assert (k.package, k.package_version) == ("linux-image-6.1.0-9-amd64", "6.1.27-1")
    monkeypatch.setenv("HALTLAB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="apt unreachable"):
        images.resolve_kernel()


def test_a_pinned_package_offline_is_that_package_from_the_cache(monkeypatch, tmp_path):
    _unpacked(tmp_path, "linux-image-6.1.0-50-amd64", "6.1.176-1", "6.1.0-50-amd64")
    _unpacked(tmp_path, "linux-image-6.1.0-57-amd64", "6.1.192-3", "6.1.0-57-amd64")   # the newest
    monkeypatch.setenv("HALTLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(images, "resolve_debian_package", lambda spec=None: (_ for _ in ()).throw(UserError("offline")))
    assert images.resolve_kernel().release == "6.1.0-57-amd64"
    assert images.resolve_kernel(package="linux-image-6.1.0-50-amd64").release == "6.1.0-50-amd64"
    assert images.resolve_kernel(package="linux-image-6.1.0-50-amd64=6.1.176-1").package_version == "6.1.176-1"
    with pytest.raises(ConfigError, match="^kernel_package linux-image-6.1.0-50-amd64=9: not in the lab cache, "
                                          "and offline"):
        images.resolve_kernel(package="linux-image-6.1.0-50-amd64=9")


APT_SHOW_VERSIONED = """Package: linux-image-6.1.0-57-amd64
Source: linux-signed-amd64 (6.1.192+3)
Version: 6.1.192-3
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
"""


def test_a_package_means_itself_and_a_meta_package_its_kernel():
    assert images.parse_show(APT_SHOW_VERSIONED, "x") == ("linux-image-6.1.0-57-amd64", "6.1.192-3")
    assert images.parse_show(APT_SHOW, "linux-image-amd64") == ("linux-image-6.1.0-56-amd64", "6.1.192-2")
    with pytest.raises(UserError, match="apt knows no package linux-image-nope"):
        images.parse_show("", "linux-image-nope")


@pytest.mark.parametrize("spec", ["bash", "linux-image-", "linux-image-x;rm -rf", "linux-image-a=", ""])
def test_a_kernel_package_must_be_a_kernel_image_package(spec):
    with pytest.raises(ConfigError, match="^kernel_package .*expected a Debian kernel image package"):
        images.check_package_name(spec)
    assert images.check_package_name("linux-image-6.1.0-57-amd64=6.1.192-3") == (
        "linux-image-6.1.0-57-amd64", "6.1.192-3")
