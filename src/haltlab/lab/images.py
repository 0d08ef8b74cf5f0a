"""Kernel images: Debian's current kernel package, or the user's own bzImage.

The lab measures real distribution kernels, so by default it takes the kernel
that `linux-image-amd64` (Debian's meta package) currently depends on, fetched
with `apt-get download` (no root needed, nothing installed on the host) and
unpacked with `dpkg-deb -x` into the lab's cache outside the repository
(cache.py).
A user may instead give a `bzImage` (and a modules directory).

Every result records the kernel release, read from the modules directory's name
or, for a bare bzImage, from the version string the boot header points to.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.lab import lifetime
from haltlab.lab.cache import cache_dir, writing_cache

__all__ = [
    "KernelImage",
    "parse_candidate_depends",
    "bzimage_release",
    "resolve_debian_package",
    "cached_kernels",
    "fetch_debian_kernel",
    "user_kernel",
    "resolve_kernel",
    "sweep_stale_unpacks",
]

META_PACKAGE = "linux-image-amd64"
UNPACK_PREFIX = "unpack-"  # a download being unpacked, under <cache>/kernels/


@dataclass(frozen=True)
class KernelImage:
    """A kernel to boot: its image, its modules, and the release they belong to."""

    vmlinuz: Path
    modules_dir: Path | None  # .../lib/modules/<release>
    release: str
    source: str  # "debian:<package>=<version>" or "user:<path>"


def parse_candidate_depends(show_output: str) -> tuple[str, str]:
    """(package, version) the meta package depends on, from `apt-cache show`.

    `Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)` -> the versioned package.
    """
    m = re.search(r"^Depends:.*?\b(linux-image-[0-9][^\s,(]*)\s*\(=\s*([^)\s]+)\)", show_output, re.M)
    if not m:
        raise UserError(f"cannot find the versioned kernel package in `apt-cache show {META_PACKAGE}`")
    return m.group(1), m.group(2)


def bzimage_release(data: bytes) -> str | None:
    """The release in a bzImage's boot header (`kernel_version` at 0x20e), or None.

    Documented in Documentation/arch/x86/boot.rst: "HdrS" at 0x202, and a 16-bit
    pointer at 0x20e to a NUL-terminated version string, offset by 0x200.
    """
    if len(data) < 0x210 or data[0x202:0x206] != b"HdrS":
        return None
    off = int.from_bytes(data[0x20E:0x210], "little") + 0x200
    if not 0x200 <= off < len(data):
        return None
    text = data[off : off + 256].split(b"\0", 1)[0].decode("ascii", "replace")
    return text.split()[0] if text.split() else None


def _apt_show() -> str:
    return lifetime.run(
        ["apt-cache", "show", "--no-all-versions", META_PACKAGE],
        capture_output=True, text=True, check=True, timeout_s=60,
    ).stdout


def resolve_debian_package() -> tuple[str, str]:
    """Ask apt which versioned kernel package linux-image-amd64 means today.

    A fresh machine may have empty package lists; as root, one `apt-get update`
    fills them (the README's commands run as root there).
    """
    try:
        try:
            return parse_candidate_depends(_apt_show())
        except (UserError, subprocess.CalledProcessError):
            if os.geteuid() != 0:
                raise
            lifetime.run(["apt-get", "update", "-q"], capture_output=True, check=True, timeout_s=600)
            return parse_candidate_depends(_apt_show())
    except (OSError, subprocess.SubprocessError) as e:
        raise UserError(f"cannot resolve {META_PACKAGE} with apt ({e}); boot a kernel image of your own (bzimage) instead") from e


def cached_kernels(cache: Path | None = None) -> list[KernelImage]:
    """Kernels unpacked earlier, the most recently fetched last (for offline use)."""
    root = (cache or cache_dir()) / "kernels"
    dirs = sorted((d for d in root.glob("linux-image-*_*") if d.is_dir()), key=lambda d: d.stat().st_mtime)
    return [_find_unpacked(d, "debian:" + d.name.replace("_", "=", 1)) for d in dirs]


def _find_unpacked(root: Path, source: str) -> KernelImage:
    """The vmlinuz and modules directory inside an unpacked kernel package."""
    images = sorted((root / "boot").glob("vmlinuz-*"))
    mods = sorted(p for base in ("lib/modules", "usr/lib/modules") for p in (root / base).glob("*") if p.is_dir())
    if not images or not mods:
        raise UserError(f"no boot/vmlinuz-* or lib/modules/* in {root}")
    return KernelImage(images[0], mods[0], mods[0].name, source)


def fetch_debian_kernel(package: str, version: str, cache: Path | None = None) -> KernelImage:
    """Download and unpack one kernel package, once; later calls hit the cache.

    Unpacked into a temporary directory next to the final one and renamed into
    place, so an interrupted download never leaves a half-unpacked kernel that
    a later run would trust.
    """
    cache = cache or cache_dir()
    final = cache / "kernels" / f"{package}_{version}"
    if final.is_dir():
        return _find_unpacked(final, f"debian:{package}={version}")
    with writing_cache(cache):
        final.parent.mkdir(parents=True, exist_ok=True)
        work = lifetime.PrivateDir(UNPACK_PREFIX, final.parent)  # swept by the next run if we are killed
    tmp = work.path
    try:
        _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=tmp)
        (deb,) = tmp.glob("*.deb")
        _run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], cwd=tmp)
        with writing_cache(cache):
            os.replace(tmp / "root", final)
    finally:
        work.remove()
    return _find_unpacked(final, f"debian:{package}={version}")


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        lifetime.run(cmd, cwd=cwd, check=True, capture_output=True, text=True, timeout_s=900)
    except subprocess.CalledProcessError as e:
        raise UserError(f"`{' '.join(cmd)}` failed: {e.stderr.strip().splitlines()[-1:] or e}") from e
    except subprocess.TimeoutExpired as e:
        raise UserError(f"`{' '.join(cmd)}` did not finish within {e.timeout:g} s (killed)") from e
    except OSError as e:
        raise UserError(f"`{cmd[0]}` is not available: {e}") from e


def user_kernel(bzimage: Path, modules: Path | None = None) -> KernelImage:
    """A kernel the user built: check it exists and read its release."""
    if not bzimage.is_file():
        raise ConfigError("bzimage", str(bzimage), "no such file")
    if modules is not None and not modules.is_dir():
        raise ConfigError("modules", str(modules), "no such directory")
    release = bzimage_release(bzimage.read_bytes()[:65536])
    if release is None:
        raise ConfigError("bzimage", str(bzimage), "not an x86 bzImage (no HdrS boot header)")
    return KernelImage(bzimage, modules, release, f"user:{bzimage}")


def resolve_kernel(bzimage: Path | None = None, modules: Path | None = None) -> KernelImage:
    """The user's kernel if given, else Debian's current one (cached)."""
    if bzimage is not None:
        return user_kernel(bzimage, modules)
    if modules is not None:
        raise ConfigError("modules", str(modules), "is for a bzimage of your own (a Debian kernel brings its own)")
    try:
        package = resolve_debian_package()
    except UserError:
        cached = cached_kernels()
        if not cached:
            raise
        return cached[-1]  # apt is unreachable: the last kernel fetched still measures
    return fetch_debian_kernel(*package)


def sweep_stale_unpacks(cache: Path) -> list[Path]:
    """Remove half-unpacked downloads of runs that were killed (SIGKILL)."""
    return lifetime.sweep_stale(UNPACK_PREFIX, cache / "kernels")
