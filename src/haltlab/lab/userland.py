"""A foreign architecture's guest user space: Debian's busybox and kexec-tools for arm64.

An x86 guest runs the host's own `/bin/busybox` and `/usr/sbin/kexec`. An
arm64 guest needs Debian's arm64 builds, which cannot be installed beside the
host's (same paths, `Conflicts`), so they are fetched the way images.py
fetches a kernel: `apt-get download` (the host needs `dpkg --add-architecture
arm64` and `apt-get update`, which bin/_setup.sh does as root), unpacked with
`dpkg-deb -x` into the lab's cache, never installed.

kexec-tools is linked dynamically (in Debian 12: libc, zlib and Xen's
libxenctrl, so a dozen Xen libraries), so its libraries come too: the
packages of its dependency closure that are shared libraries (`Multi-Arch:
same`, Debian's mark of a co-installable library; debconf and the like are
not followed), as `apt-cache show` states them. Which files the guest gets
is then decided by the binary itself, not by the package list: its
`PT_INTERP` and `DT_NEEDED` entries, read with binutils' `readelf` (which
reads any architecture's ELF; `ldd` would have to run the arm64 binary),
followed transitively and resolved in the unpacked tree.

Offline (apt cannot answer), the last userland unpacked for the architecture
is used, as images.py does with kernels.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from haltlab.errors import UserError
from haltlab.lab import initramfs, lifetime
from haltlab.lab.arch import FACTS, Arch
from haltlab.lab.cache import cache_dir, writing_cache
from haltlab.lab.images import _run  # apt-get and dpkg-deb, bounded, failures as one line

__all__ = ["Userland", "ROOT_PACKAGES", "parse_records", "first_depends", "library_closure",
           "parse_needed", "parse_interp", "elf_entries", "busybox_entries", "fetch_userland",
           "sweep_stale_unpacks"]

log = logging.getLogger("haltlab.lab")

ROOT_PACKAGES = ("busybox-static", "kexec-tools")
UNPACK_PREFIX = "unpack-"
# Where Debian's loader looks for libraries of a multiarch triplet, in its order.
_LIB_DIRS = ("lib/{triplet}", "usr/lib/{triplet}", "lib", "usr/lib")
_TRIPLET = {Arch.ARM64: "aarch64-linux-gnu"}


@dataclass(frozen=True)
class Userland:
    """An unpacked foreign user space: the packages it came from and its tree."""

    arch: Arch
    root: Path
    packages: tuple[str, ...]  # "name=version", sorted

    @property
    def busybox(self) -> Path:
        return self.root / "bin/busybox"

    @property
    def kexec(self) -> Path:
        return self.root / "sbin/kexec"


def parse_records(show_output: str) -> dict[str, dict[str, str]]:
    """`apt-cache show` records by package name: each record's fields."""
    records = {}
    for block in show_output.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", block, re.M))
        if "Package" in fields:
            records.setdefault(fields["Package"], fields)
    return records


def first_depends(depends: str) -> list[str]:
    """The package names a `Depends:` field asks for (first alternative of each)."""
    names = []
    for clause in depends.split(","):
        name = clause.split("|")[0].strip().split(" ")[0].split(":")[0]
        if name:
            names.append(name)
    return names


def library_closure(show, roots: tuple[str, ...], arch: str) -> dict[str, str]:
    """{package: version} of `roots` and the libraries they need, transitively.

    `show(specs)` returns `apt-cache show` output for `name:arch` specs; one
    call per level of the closure. Only `Multi-Arch: same` packages (shared
    libraries) are followed and kept besides the roots.
    """
    found: dict[str, str] = {}
    visited: set[str] = set()
    level = list(roots)
    while level:
        visited.update(level)
        records = parse_records(show([f"{n}:{arch}" for n in level]))
        missing = sorted(set(roots) - set(records)) if level == list(roots) else []
        if missing:
            raise UserError(f"apt knows no {', '.join(missing)} for {arch} "
                            f"(as root: dpkg --add-architecture {arch} && apt-get update)")
        following = []
        for name in level:
            rec = records.get(name)
            if rec is None or (name not in roots and rec.get("Multi-Arch") != "same"):
                continue
            found[name] = rec["Version"]
            following += first_depends(rec.get("Depends", "") + "," + rec.get("Pre-Depends", ""))
        level = sorted(set(following) - visited)
    return dict(sorted(found.items()))


def parse_needed(readelf_dynamic: str) -> list[str]:
    """The DT_NEEDED sonames in `readelf -d` output, in order."""
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf_dynamic)


def parse_interp(readelf_program: str) -> str | None:
    """The PT_INTERP path in `readelf -l` output (None: a static binary)."""
    m = re.search(r"\[Requesting program interpreter: ([^\]]+)\]", readelf_program)
    return m.group(1) if m else None


def _readelf(flag: str, path: Path) -> str:
    try:
        return lifetime.run(["readelf", flag, "--wide", str(path)], capture_output=True, text=True, check=True,
                            timeout_s=60).stdout
    except FileNotFoundError:
        raise UserError("readelf not found (Debian: apt-get install binutils)") from None
    except subprocess.CalledProcessError as e:
        raise UserError(f"readelf cannot read {path}: {e.stderr.strip()}") from None


def _inside(root: Path, guest_path: str) -> Path:
    """The file `guest_path` names in the tree `root`, symlinks followed inside it."""
    path = root / guest_path.lstrip("/")
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = os.readlink(path)
        path = (root / target.lstrip("/")) if target.startswith("/") else path.parent / target
    raise UserError(f"symlink loop at {guest_path} in {root}")


def elf_entries(userland: Userland, binary: Path, guest_path: str) -> list[initramfs.Entry]:
    """A dynamically linked foreign binary at `guest_path`, its loader at the
    path its PT_INTERP names, and every library it needs, transitively, at the
    loader's search path where the tree has it."""
    triplet = _TRIPLET[userland.arch]
    dirs = [d.format(triplet=triplet) for d in _LIB_DIRS]
    entries = [initramfs.file(guest_path, binary.read_bytes(), 0o755)]
    interp = parse_interp(_readelf("-l", binary))
    if interp is not None:
        entries.append(initramfs.file(interp, _inside(userland.root, interp).read_bytes(), 0o755))
    seen, todo = set(), [binary]
    while todo:
        for soname in parse_needed(_readelf("-d", todo.pop())):
            if soname in seen:
                continue
            seen.add(soname)
            where = next((f"/{d}/{soname}" for d in dirs if (userland.root / d / soname).exists()), None)
            if where is None:
                raise UserError(f"{binary.name} needs {soname}, which no package of "
                                f"{', '.join(userland.packages)} holds")
            real = _inside(userland.root, where)
            if where != interp:
                entries.append(initramfs.file(where, real.read_bytes(), 0o755))
            todo.append(real)
    return entries


def busybox_entries(userland: Userland, host_busybox: Path = Path("/bin/busybox")) -> list[initramfs.Entry]:
    """The foreign static busybox as /bin/busybox and its applets as symlinks.

    The foreign binary cannot run here to list its applets, so the host's
    busybox lists them (Debian builds both from one source with one config)
    and each is kept only if the foreign binary holds its name as a string
    of its applet table (`\\0name\\0`)."""
    data = userland.busybox.read_bytes()
    if not host_busybox.is_file():
        raise UserError(f"busybox not found at {host_busybox}, which lists the applets "
                        "(Debian: apt-get install busybox-static)")
    listed = lifetime.run([str(host_busybox), "--list"], capture_output=True, text=True, check=True,
                          timeout_s=60).stdout.split()
    applets = [a for a in listed if a != "busybox" and b"\0" + a.encode() + b"\0" in data]
    return [initramfs.file("/bin/busybox", data, 0o755)] + [initramfs.symlink(f"/bin/{a}", "busybox") for a in applets]


def _show(specs: list[str]) -> str:
    proc = lifetime.run(["apt-cache", "show", "--no-all-versions", *specs], capture_output=True, text=True,
                        timeout_s=60)
    return proc.stdout  # a spec apt does not know is simply absent from the records


def fetch_userland(arch: Arch, cache: Path | None = None) -> Userland:
    """The arch's busybox and kexec-tools with their libraries, unpacked once in the cache."""
    cache = cache or cache_dir()
    base = cache / "userland" / FACTS[arch].debian_arch
    try:
        closure = library_closure(_show, ROOT_PACKAGES, FACTS[arch].debian_arch)
    except (OSError, subprocess.SubprocessError, UserError) as e:
        done = sorted((d for d in base.glob("u-*") if d.is_dir()), key=lambda d: d.stat().st_mtime)
        if done:
            return _load(arch, done[-1])
        raise UserError(f"cannot fetch the {arch.value} guest's busybox and kexec-tools: {e}") from None
    packages = tuple(f"{n}={v}" for n, v in closure.items())
    final = base / ("u-" + hashlib.sha256("\n".join(packages).encode()).hexdigest()[:16])
    if final.is_dir():
        return _load(arch, final)
    with writing_cache(cache):
        base.mkdir(parents=True, exist_ok=True)
        work = lifetime.PrivateDir(UNPACK_PREFIX, base)
    try:
        log.info("downloading %d %s packages for the guest (busybox-static, kexec-tools and its libraries) into %s",
                 len(packages), FACTS[arch].debian_arch, base)
        started = time.monotonic()
        _run(["apt-get", "download", "-q", *(f"{n}:{FACTS[arch].debian_arch}={v}" for n, v in closure.items())],
             work.path)
        root = work.path / "root"
        for deb in sorted(work.path.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(root)], work.path)
        (root / "PACKAGES").write_text("\n".join(packages) + "\n")
        with writing_cache(cache):
            try:
                os.replace(root, final)
            except OSError:
                if not final.is_dir():
                    raise
        log.info("guest user space for %s unpacked in %.1f s", arch.value, time.monotonic() - started)
    finally:
        work.remove()
    return _load(arch, final)


def _load(arch: Arch, root: Path) -> Userland:
    packages = tuple((root / "PACKAGES").read_text().split()) if (root / "PACKAGES").is_file() else ()
    u = Userland(arch, root, packages)
    for need in (u.busybox, u.kexec):
        if not need.is_file():
            raise UserError(f"{need} missing from the unpacked guest user space {root}")
    return u


def sweep_stale_unpacks(cache: Path) -> None:
    """Half-unpacked downloads of runs that were killed (SIGKILL)."""
    for arch in (Arch.ARM64,):
        lifetime.sweep_stale(UNPACK_PREFIX, cache / "userland" / FACTS[arch].debian_arch)
