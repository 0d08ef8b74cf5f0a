"""Initramfs images built per experiment: busybox, the experiment's init, extras.

The guest's whole root file system is one initramfs, so an experiment controls
exactly what runs: a static busybox (one binary, every applet a symlink to it),
the experiment's `/init` script, and what that script needs: kexec-tools with
the shared libraries `ldd` names, a kernel and initrd for a second kernel, and
kernel modules (decompressed, because busybox `insmod` loads plain `.ko` only).

The archive is written here in Python (newc cpio, gzip with mtime 0) rather than
by `cpio`, so equal inputs give equal bytes; it is cached under the sha256 of
its entries, so a repeated experiment reuses its image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from haltlab.errors import UserError
from haltlab.lab import lifetime
from haltlab.lab.cache import writing_cache

__all__ = [
    "Entry",
    "directory",
    "file",
    "symlink",
    "chardev",
    "newc_archive",
    "busybox_entries",
    "binary_with_libs",
    "parse_ldd",
    "module_bytes",
    "module_depends",
    "module_entries",
    "base_entries",
    "build",
    "sweep_partial_images",
]


@dataclass(frozen=True)
class Entry:
    """One file system object in the archive; `data` is bytes for files only."""

    path: str  # absolute guest path
    mode: int  # including the file type bits
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def directory(path: str) -> Entry:
    return Entry(path, stat.S_IFDIR | 0o755)


def file(path: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | mode, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def chardev(path: str, major: int, minor: int) -> Entry:
    return Entry(path, stat.S_IFCHR | 0o600, rdev=(major, minor))


def _parents(entries: list[Entry]) -> list[Entry]:
    """Every directory the entries need, parents first (cpio needs that order)."""
    have = {e.path for e in entries if stat.S_ISDIR(e.mode)}
    need = set()
    for e in entries:
        parts = e.path.strip("/").split("/")[:-1]
        need.update("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
    return [directory(p) for p in sorted(need - have)]


def newc_archive(entries: list[Entry]) -> bytes:
    """A newc ("070701") cpio archive: the format the kernel unpacks at boot.

    Fixed inode numbers, uid 0 and mtime 0 make the bytes a function of the
    entries alone. Later entries with the same path win, as in the kernel.
    """
    out = io.BytesIO()
    all_entries = sorted(_parents(entries) + entries, key=lambda e: (e.path.count("/"), e.path))
    for ino, e in enumerate(all_entries + [Entry("TRAILER!!!", 0)], start=1):
        name = e.path.lstrip("/").encode() + b"\0" if e.mode else b"TRAILER!!!\0"
        fields = [ino, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], len(name), 0]
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + name)
        out.write(b"\0" * (-(110 + len(name)) % 4))
        out.write(e.data + b"\0" * (-len(e.data) % 4))
    return out.getvalue()


def busybox_entries(busybox: Path = Path("/bin/busybox")) -> list[Entry]:
    """Static busybox as /bin/busybox and one symlink per applet it lists."""
    if not busybox.is_file():
        raise UserError(f"busybox not found at {busybox} (Debian: apt-get install busybox-static)")
    applets = lifetime.run([str(busybox), "--list"], capture_output=True, text=True, check=True, timeout_s=60).stdout.split()
    return [file("/bin/busybox", busybox.read_bytes(), 0o755)] + [
        symlink(f"/bin/{a}", "busybox") for a in applets if a != "busybox"
    ]


def parse_ldd(text: str) -> list[str]:
    """Absolute paths of the libraries (and the loader) in `ldd` output."""
    libs = []
    for line in text.splitlines():
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if m:
            libs.append(m.group(1))
    return libs


def binary_with_libs(binary: Path, guest_path: str) -> list[Entry]:
    """A dynamically linked binary plus every library it loads, at their host paths."""
    if not binary.is_file():
        raise UserError(f"{binary} not found (Debian: apt-get install kexec-tools)")
    ldd = lifetime.run(["ldd", str(binary)], capture_output=True, text=True, timeout_s=60).stdout
    entries = [file(guest_path, binary.read_bytes(), 0o755)]
    for lib in parse_ldd(ldd):
        entries.append(file(lib, Path(lib).resolve().read_bytes(), 0o755))
    return entries


def module_bytes(path: Path) -> bytes:
    """A module's plain ELF bytes; `.ko.xz`/`.ko.gz`/`.ko.zst` are decompressed."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        if not shutil.which("zstd"):
            raise UserError(f"{path} is zstd-compressed and `zstd` is not installed")
        return lifetime.run(["zstd", "-dc", str(path)], capture_output=True, check=True, timeout_s=300).stdout
    return data


def module_depends(ko: bytes) -> list[str]:
    """Module names from the `depends=` string in a module's .modinfo section."""
    m = re.search(rb"(?:^|\0)depends=([^\0]*)", ko)
    return [d.decode() for d in m.group(1).split(b",") if d] if m else []


def _module_name(path: Path) -> str:
    return path.name.split(".ko")[0].replace("-", "_")


def module_entries(modules_dir: Path, names: list[str]) -> list[Entry]:
    """The named modules and their dependencies, numbered in load order.

    The init script loads `/lib/modules/*.ko` in glob order, so a dependency
    gets a smaller number than its users (`00-pvpanic.ko`, `01-pvpanic_pci.ko`).
    """
    found = {_module_name(p): p for p in modules_dir.rglob("*.ko*")}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in found:
            raise UserError(f"module {name} not found under {modules_dir}")
        for dep in module_depends(module_bytes(found[name])):
            visit(dep.replace("-", "_"))
        order.append(name)

    for n in names:
        visit(n.replace("-", "_"))
    return [file(f"/lib/modules/{i:02d}-{n}.ko", module_bytes(found[n])) for i, n in enumerate(order)]


def base_entries(init_script: str, busybox: list[Entry] | None = None) -> list[Entry]:
    """What every guest needs: busybox, /init, and /dev/console for init's stdio.

    The kernel opens /dev/console for init before anything mounts devtmpfs, so
    the node must be in the archive itself. `busybox`: other busybox entries
    than the host's (a foreign architecture's, lab/userland.py; `[]` when the
    caller adds them itself).
    """
    return (busybox_entries() if busybox is None else busybox) + [
        file("/init", init_script.encode(), 0o755),
        chardev("/dev/console", 5, 1),
        directory("/proc"),
        directory("/sys"),
        directory("/tmp"),
    ]


def _digest(entries: list[Entry]) -> str:
    h = hashlib.sha256()
    for e in entries:
        h.update(f"{e.path}\0{e.mode}\0{e.rdev}\0{len(e.data)}\0".encode())
        h.update(e.data)
    return h.hexdigest()


def build(entries: list[Entry], cache: Path) -> Path:
    """The gzipped archive of `entries`, built once and cached by content hash."""
    out = cache / "initramfs" / f"{_digest(entries)[:32]}.cpio.gz"
    if out.is_file():
        return out
    data = gzip.compress(newc_archive(entries), compresslevel=6, mtime=0)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    with writing_cache(cache):
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def sweep_partial_images(cache: Path) -> list[Path]:
    """Remove images half-written by runs that were killed (SIGKILL): each is
    written as `.<name>.<pid>` and renamed into place."""
    return lifetime.sweep_orphan_files(cache / "initramfs", ".*.cpio.gz.*")
