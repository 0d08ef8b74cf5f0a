"""Kernel images: Debian's current kernel package, or the user's own bzImage.

The lab measures real distribution kernels, so by default it takes the kernel
that `linux-image-amd64` (Debian's meta package) currently depends on, fetched
with `apt-get download` (no root needed, nothing installed on the host) and
unpacked with `dpkg-deb -x` into the lab's cache outside the repository
(cache.py).
A user may instead give a `bzImage` (and a modules directory).

An arm64 guest boots `linux-image-arm64`'s kernel, fetched the same way
(`apt-get download linux-image-...-arm64:arm64`, after `dpkg
--add-architecture arm64`); Debian 12's arm64 `vmlinuz` is a plain,
uncompressed `Image` (33 MB for 6.1.0-57), which QEMU's `-kernel` and
kexec-tools' `kexec_load` both take as it is. A user's arm64 kernel is an
`Image` (magic `ARM\x64` at 0x38).

A command resolves its kernel once (`resolve_kernel`) and hands the same
`KernelImage` to every experiment it runs, so apt answering differently halfway
through (a mirror that moved on) cannot mix two kernels in one result. A user
may pin the package (`kernel_package`: a versioned package name, a meta package
to follow, or `NAME=VERSION`); offline, the cache stands in for apt.

A download is announced on the `haltlab.lab` logger (package, version, size,
where it goes, then how long it took): it is the one step of a lab command
that can take minutes before anything boots, and the CLI shows that logger on
stderr, so it reads in a log as on a terminal.

Every result records the kernel release, read from the modules directory's name
or, for a bare bzImage, from the version string the boot header points to, and
for a Debian kernel the package and its version.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.lab import lifetime
from haltlab.lab.arch import FACTS, Arch
from haltlab.lab.cache import cache_dir, writing_cache
from haltlab.results import file_kind, path_problem

__all__ = [
    "KernelImage",
    "parse_candidate_depends",
    "parse_show",
    "parse_size",
    "check_package_name",
    "check_input_path",
    "bzimage_release",
    "arm64_image_release",
    "resolve_debian_package",
    "cached_kernels",
    "fetch_debian_kernel",
    "user_kernel",
    "resolve_kernel",
    "sweep_stale_unpacks",
]

log = logging.getLogger("haltlab.lab")

META_PACKAGE = "linux-image-amd64"
UNPACK_PREFIX = "unpack-"  # a download being unpacked, under <cache>/kernels/


@dataclass(frozen=True)
class KernelImage:
    """A kernel to boot: its image, its modules, and the release they belong to."""

    vmlinuz: Path
    modules_dir: Path | None  # .../lib/modules/<release>
    release: str
    source: str  # "debian:<package>=<version>" or "user:<path>"
    package: str | None = None  # the Debian package (None: a user's bzImage)
    package_version: str | None = None
    changelog: Path | None = None  # the package's own changelog.gz: which backports it carries
    # A kernel built from source: lab/build.py's BuildInfo as a dict (the source
    # version, patch set, config hash a result records); not part of eq/hash.
    build: dict | None = field(default=None, compare=False)


# A Debian kernel image package, optionally pinned to a version: `NAME[=VERSION]`.
_PACKAGE = re.compile(r"(linux-image-[a-z0-9][a-z0-9+.-]*)(?:=([0-9][A-Za-z0-9.+~:-]*))?")


def check_package_name(spec: str) -> tuple[str, str | None]:
    """(name, version or None) from `NAME[=VERSION]`; a ConfigError otherwise."""
    m = _PACKAGE.fullmatch(spec) if isinstance(spec, str) else None
    if not m:
        raise ConfigError("kernel_package", spec, "expected a Debian kernel image package, "
                                                  "linux-image-NAME or linux-image-NAME=VERSION")
    return m.group(1), m.group(2)


def parse_candidate_depends(show_output: str, name: str = META_PACKAGE) -> tuple[str, str]:
    """(package, version) a meta package depends on, from `apt-cache show`.

    `Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)` -> the versioned package.
    """
    m = re.search(r"^Depends:.*?\b(linux-image-[0-9][^\s,(]*)\s*\(=\s*([^)\s]+)\)", show_output, re.M)
    if not m:
        raise UserError(f"cannot find the versioned kernel package in `apt-cache show {name}`")
    return m.group(1), m.group(2)


def parse_show(show_output: str, name: str) -> tuple[str, str]:
    """(package, version) that `name` means, from its `apt-cache show` record:
    the package itself if it holds a kernel (`linux-image-6.1.0-57-amd64`),
    else the versioned kernel a meta package (`linux-image-amd64`) depends on."""
    fields = dict(re.findall(r"^(Package|Version): (\S+)", show_output, re.M))
    if "Package" not in fields or "Version" not in fields:
        raise UserError(f"apt knows no package {name}")
    if re.match(r"linux-image-[0-9]", fields["Package"]):
        return fields["Package"], fields["Version"]
    return parse_candidate_depends(show_output, name)


def parse_size(show_output: str) -> int | None:
    """The `.deb`'s size in bytes, from its `apt-cache show` record (`Size:`)."""
    m = re.search(r"^Size: (\d+)$", show_output, re.M)
    return int(m.group(1)) if m else None


def _mib(size: int | None) -> str:
    return f"{size / 2**20:.1f} MiB" if size is not None else "size unknown"


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


def arm64_image_release(data: bytes) -> str | None:
    """The release of an arm64 `Image` (Documentation/arm64/booting.rst: the
    magic `ARM\\x64` at 0x38), read from its `Linux version ...` banner; None
    if `data` is not such an image or holds no banner."""
    if len(data) < 0x40 or data[0x38:0x3C] != b"ARM\x64":
        return None
    m = re.search(rb"Linux version (\S+) \(", data)
    return m.group(1).decode("ascii", "replace") if m else None


def _qualified(name: str, arch: Arch) -> str:
    """`name` as apt names it for `arch` (`name:arm64`; the host's own as it is)."""
    return name if arch is Arch.X86_64 else f"{name}:{FACTS[arch].debian_arch}"


def _apt_show(spec: str) -> str:
    proc = lifetime.run(["apt-cache", "show", "--no-all-versions", spec],
                        capture_output=True, text=True, timeout_s=60)
    return proc.stdout if proc.returncode == 0 else ""


def resolve_debian_package(spec: str | None = None, arch: Arch = Arch.X86_64) -> tuple[str, str]:
    """Ask apt which versioned kernel package `spec` means today: `NAME=VERSION`
    as it is, a kernel package at apt's candidate version, a meta package (by
    default linux-image-amd64) through its Depends.

    A fresh machine may have empty package lists (apt knows not even
    linux-image-amd64); as root, one `apt-get update` fills them (the README's
    commands run as root there).
    """
    meta = FACTS[arch].meta_package
    name, version = check_package_name(meta if spec is None else spec)
    query = _qualified(name, arch) + (f"={version}" if version else "")
    try:
        shown = _apt_show(query)
        if not shown and os.geteuid() == 0 and not _apt_show(_qualified(meta, arch)):
            lifetime.run(["apt-get", "update", "-q"], capture_output=True, check=True, timeout_s=600)
            shown = _apt_show(query)
        return parse_show(shown, query)
    except (OSError, subprocess.SubprocessError) as e:
        raise UserError(f"cannot resolve {query} with apt ({e}); boot a kernel image of your own (bzimage) "
                        "instead") from e


def cached_kernels(cache: Path | None = None, spec: str | None = None,
                   arch: Arch = Arch.X86_64) -> list[KernelImage]:
    """Kernels unpacked earlier, the most recently fetched last (for offline
    use); with `spec` (`NAME[=VERSION]`), only that package. A meta package
    (`linux-image-amd64`) names no unpack of its own (they are named after the
    versioned package it depended on), so it takes any, as no pin does; any
    of `arch`: a package whose name ends in another architecture's suffix
    (`-arm64`) is not one."""
    others = tuple(f.release_suffix for a, f in FACTS.items() if a is not arch)
    name, version = check_package_name(spec) if spec else (None, None)
    if name is not None and not re.match(r"linux-image-[0-9]", name):
        name, version = None, None
    root = (cache or cache_dir()) / "kernels"
    dirs = sorted((d for d in root.glob("linux-image-*_*") if d.is_dir()), key=lambda d: d.stat().st_mtime)
    found = [tuple(d.name.split("_", 1)) + (d,) for d in dirs]
    return [_find_unpacked(d, pkg, ver) for pkg, ver, d in found
            if (name is None or pkg == name) and (version is None or ver == version) and not pkg.endswith(others)]


def _find_unpacked(root: Path, package: str, version: str) -> KernelImage:
    """The vmlinuz, modules directory and changelog inside an unpacked kernel package."""
    images = sorted((root / "boot").glob("vmlinuz-*"))
    mods = sorted(p for base in ("lib/modules", "usr/lib/modules") for p in (root / base).glob("*") if p.is_dir())
    if not images or not mods:
        raise UserError(f"no boot/vmlinuz-* or lib/modules/* in {root}")
    changelog = root / "usr/share/doc" / package / "changelog.gz"
    return KernelImage(images[0], mods[0], mods[0].name, f"debian:{package}={version}", package, version,
                       changelog if changelog.is_file() else None)


def fetch_debian_kernel(package: str, version: str, cache: Path | None = None,
                        arch: Arch = Arch.X86_64) -> KernelImage:
    """Download and unpack one kernel package, once; later calls hit the cache.

    Unpacked into a temporary directory next to the final one and renamed into
    place, so an interrupted download never leaves a half-unpacked kernel that
    a later run would trust.
    """
    cache = cache or cache_dir()
    final = cache / "kernels" / f"{package}_{version}"
    if final.is_dir():
        return _find_unpacked(final, package, version)
    with writing_cache(cache):
        final.parent.mkdir(parents=True, exist_ok=True)
        work = lifetime.PrivateDir(UNPACK_PREFIX, final.parent)  # swept by the next run if we are killed
    tmp = work.path
    try:
        log.info("downloading kernel package %s=%s (%s) into %s", package, version,
                 _mib(_package_size(_qualified(package, arch), version)), final.parent)
        started = time.monotonic()
        _run(["apt-get", "download", "-q", f"{_qualified(package, arch)}={version}"], cwd=tmp)
        (deb,) = tmp.glob("*.deb")
        _run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], cwd=tmp)
        with writing_cache(cache):
            try:
                os.replace(tmp / "root", final)
            except OSError:
                if not final.is_dir():  # else another run unpacked the same package first: use it
                    raise
        log.info("kernel package %s=%s downloaded and unpacked in %.1f s", package, version,
                 time.monotonic() - started)
    finally:
        work.remove()
    return _find_unpacked(final, package, version)


def _package_size(package: str, version: str) -> int | None:
    try:
        return parse_size(_apt_show(f"{package}={version}"))
    except (OSError, subprocess.SubprocessError):
        return None


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        lifetime.run(cmd, cwd=cwd, check=True, capture_output=True, text=True, timeout_s=900)
    except subprocess.CalledProcessError as e:
        raise UserError(f"`{' '.join(cmd)}` failed: {e.stderr.strip().splitlines()[-1:] or e}") from e
    except subprocess.TimeoutExpired as e:
        raise UserError(f"`{' '.join(cmd)}` did not finish within {e.timeout:g} s (killed)") from e
    except OSError as e:
        raise UserError(f"`{cmd[0]}` is not available: {e}") from e


def check_input_path(field: str, path: str | os.PathLike, *, directory: bool) -> Path:
    """`path` if it names an existing regular file (or directory), else a
    ConfigError naming the field: an impossible name (empty, too long), a
    symlink loop, a missing or wrong kind of file, checked without a traceback."""
    why = path_problem(path)
    if why is None:
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            why = "no such directory" if directory and e.errno == errno.ENOENT else \
                  "no such file" if e.errno == errno.ENOENT else e.strerror or str(e)
        else:
            if directory and not stat.S_ISDIR(mode):
                why = f"is {file_kind(mode) if not stat.S_ISREG(mode) else 'a file'}, not a directory"
            elif not directory and not stat.S_ISREG(mode):
                why = f"is {file_kind(mode)}, not a regular file"
    if why is not None:
        raise ConfigError(field, str(path), why)
    return Path(path)


def user_kernel(bzimage: Path, modules: Path | None = None, arch: Arch = Arch.X86_64) -> KernelImage:
    """A kernel the user built: check it exists and read its release."""
    check_input_path("bzimage", bzimage, directory=False)
    if modules is not None:
        check_input_path("modules", modules, directory=True)
    if arch is Arch.ARM64:
        release = arm64_image_release(bzimage.read_bytes())
        if release is None:
            raise ConfigError("bzimage", str(bzimage), "not an arm64 Image (no ARM\\x64 magic at 0x38, or no "
                                                       "Linux version banner; a compressed Image.gz is not taken)")
        return KernelImage(bzimage, modules, release, f"user:{bzimage}")
    release = bzimage_release(bzimage.read_bytes()[:65536])
    if release is None:
        raise ConfigError("bzimage", str(bzimage), "not an x86 bzImage (no HdrS boot header)")
    return KernelImage(bzimage, modules, release, f"user:{bzimage}")


def resolve_kernel(bzimage: Path | None = None, modules: Path | None = None,
                   package: str | None = None, arch: Arch = Arch.X86_64) -> KernelImage:
    """The user's kernel if given, else the Debian package `package` names
    (default: what linux-image-amd64 depends on today), fetched once and cached.

    Call it once per command and pass the result to every experiment: apt's
    answer can change between two calls."""
    if bzimage is not None:
        if package is not None:
            raise ConfigError("kernel_package", package, "names a Debian kernel; a bzimage is booted instead")
        return user_kernel(bzimage, modules, arch) if arch is not Arch.X86_64 else user_kernel(bzimage, modules)
    if modules is not None:
        raise ConfigError("modules", str(modules), "is for a bzimage of your own (a Debian kernel brings its own)")
    try:
        resolved = resolve_debian_package(package) if arch is Arch.X86_64 else resolve_debian_package(package, arch)
    except ConfigError:
        raise
    except UserError as e:
        cached = cached_kernels(spec=package, arch=arch)
        if cached:
            return cached[-1]  # apt cannot say: the last such kernel fetched still measures
        if package is not None:
            raise ConfigError("kernel_package", package, f"not in the lab cache, and {e}") from None
        raise
    if arch is Arch.X86_64:
        return fetch_debian_kernel(*resolved)
    return fetch_debian_kernel(*resolved, arch=arch)


def sweep_stale_unpacks(cache: Path) -> list[Path]:
    """Remove half-unpacked downloads of runs that were killed (SIGKILL)."""
    return lifetime.sweep_stale(UNPACK_PREFIX, cache / "kernels")
