"""Kernels built from Debian's source package with a patch set: `haltlab lab build NAME`.

The threads' patches never merged (S1) or merged long ago (S2), so the way to
measure them is a kernel developer's: build them. One build is a pipeline of
named steps, each its own function:

1. `unpack_source`: Debian's `linux-source-6.x` tarball (/usr/src, installed by
   apt like the lab's other packages), unpacked once per package version into
   the lab cache; the version is dpkg's, the kernel's from the tree's Makefile.
2. `prepare_tree`: a work tree of hard links to that pristine copy, the files
   the patch set touches copied (so a patch never writes through a link into
   the pristine tree), the set applied (lab/patchsets.py).
3. `configure`: `make tinyconfig`, the repository's fragment (kconfig/lab.fragment,
   every option with the reason it is there) appended, `make olddefconfig`,
   then `check_fragment`: an option Kconfig dropped (a dependency missing) is a
   one-line error naming it, not a guest that boots without it.
4. `compile_kernel`: `make bzImage` out of tree (O=), with `CC="ccache gcc"`, under
   `nice`, holding `flock /tmp/haltlab-kbuild.lock` (one kernel build at a time on
   the machine, whoever starts it); make's output goes to the build log, and a
   line of progress reaches the `haltlab.lab` logger every PROGRESS_EVERY_S.
5. `store`: bzImage, .config, System.map, build log and build.json moved into the cache
   entry at once (a rename), so a failed or interrupted build leaves no entry.

The entry is keyed by content: the source package's version, the patch set's
digest, the fragment, the compiler's version and RECIPE (this module's steps),
so changing any of them builds again, and nothing else does. ccache makes a
rebuild after a one-file patch cost seconds of compiling plus the link: its
CCACHE_BASEDIR is the work root and every work tree has the same `src`/`obj`
shape, so the compiler sees the same relative paths in every build.

A failure is one UserError line: the failing hunk (patchsets.py), the option
Kconfig dropped, or the first `file:line: error:` of the compile, with the path
of the kept log. The work tree is a `lifetime.PrivateDir` (removed on the way
out, swept by the next build if this one was SIGKILLed), make runs in its own
process group, killed on any exit, and dies with haltlab (PDEATHSIG).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from haltlab.errors import ConfigError, UserError
from haltlab.lab import lifetime
from haltlab.lab.cache import check_cache, writing_cache
from haltlab.lab.images import KernelImage, bzimage_release
from haltlab.lab.patchsets import PatchSet, apply_patch_set, load_patch_set, touched_files

__all__ = ["FRAGMENT", "LOCK_PATH", "RECIPE", "BuildInfo", "BuiltKernel", "source_tarball", "source_version",
           "makefile_version", "gcc_version", "build_key", "fragment_options", "check_fragment",
           "first_compile_error", "cached_build", "build_kernel", "built_kernel", "unpack_source"]

log = logging.getLogger("haltlab.lab")

FRAGMENT = Path(__file__).parent / "kconfig" / "lab.fragment"
LOCK_PATH = Path("/tmp/haltlab-kbuild.lock")
RECIPE = "2"             # bump when a step below changes what a build puts out (2: System.map kept)
PROGRESS_EVERY_S = 15.0
WORK_PREFIX = "build-"   # a build in progress, under <cache>/kbuild/work/
NICE = 10
# Fixed so the same inputs give the same vmlinux (init/version.c), and ccache hits it.
BUILD_ENV = {"KBUILD_BUILD_TIMESTAMP": "1970-01-01", "KBUILD_BUILD_USER": "haltlab",
             "KBUILD_BUILD_HOST": "haltlab", "CCACHE_NOHASHDIR": "1"}


@dataclass(frozen=True)
class BuildInfo:
    """What a result records of a built kernel: which source, which patches, which config."""

    patch_set: str
    patch_set_sha256: str
    source_package: str
    source_version: str     # dpkg's version of the source package (6.1.192-3)
    kernel_version: str     # the tree's Makefile (6.1.192)
    model_kernel: str       # the model's kernel spec for this build (set.toml)
    model_policy: str | None
    fragment_sha256: str
    config_sha256: str      # the .config the build used
    gcc_version: str
    key: str


@dataclass(frozen=True)
class BuiltKernel:
    bzimage: Path
    config: Path
    system_map: Path     # which symbols the link kept (a weak default or its override)
    log: Path
    info: BuildInfo

    def image(self) -> KernelImage:
        """The kernel as the experiments boot it (no modules: the config builds none)."""
        release = bzimage_release(self.bzimage.read_bytes()[:65536]) or self.info.kernel_version
        return KernelImage(self.bzimage, None, release, f"build:{self.info.patch_set}@{self.info.key[:16]}",
                           self.info.source_package, self.info.source_version, None, asdict(self.info))


# --- the inputs ------------------------------------------------------------------------

def source_tarball(package: str) -> Path:
    tarball = Path("/usr/src") / f"{package}.tar.xz"
    if not tarball.is_file():
        raise UserError(f"{tarball} not found: the kernel source package is not installed "
                        f"(apt-get install {package}; bin/_setup.sh installs it)")
    return tarball


def source_version(package: str) -> str:
    """dpkg's version of the installed source package."""
    try:
        out = lifetime.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                           timeout_s=60)
    except OSError as e:
        raise UserError(f"dpkg-query is not available to read {package}'s version: {e}") from None
    if out.returncode != 0 or not out.stdout.strip():
        raise UserError(f"dpkg does not know {package} (apt-get install {package})")
    return out.stdout.strip()


def makefile_version(makefile_text: str) -> str:
    """`6.1.192` from a kernel tree's top Makefile."""
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION) = ?(\S*)$", makefile_text, re.M))
    return f"{fields.get('VERSION', '?')}.{fields.get('PATCHLEVEL', '?')}.{fields.get('SUBLEVEL', '?')}" \
           f"{fields.get('EXTRAVERSION', '')}"


def gcc_version() -> str:
    try:
        out = lifetime.run(["gcc", "--version"], capture_output=True, text=True, check=True, timeout_s=60)
    except (OSError, subprocess.CalledProcessError):
        raise UserError("gcc not found (apt-get install build-essential flex bison bc libelf-dev "
                        "libssl-dev ccache; bin/_setup.sh installs them)") from None
    return out.stdout.splitlines()[0].strip()


def build_key(ps: PatchSet, version: str, fragment: bytes, gcc: str) -> str:
    h = hashlib.sha256()
    for part in (RECIPE, ps.source_package, version, ps.digest, hashlib.sha256(fragment).hexdigest(), gcc):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def _entry_dir(cache: Path, name: str, key: str) -> Path:
    return cache / "builds" / f"{name}-{key[:16]}"


def cached_build(name: str, cache: Path | None = None) -> BuiltKernel | None:
    """The cached build of patch set `name` for today's inputs, or None."""
    cache = cache or check_cache()
    ps = load_patch_set(name)
    source_tarball(ps.source_package)
    key = build_key(ps, source_version(ps.source_package), FRAGMENT.read_bytes(), gcc_version())
    return _load_entry(_entry_dir(cache, name, key))


def _load_entry(entry: Path) -> BuiltKernel | None:
    meta = entry / "build.json"
    if not meta.is_file():
        return None
    return BuiltKernel(entry / "bzImage", entry / "config", entry / "System.map", entry / "build.log",
                       BuildInfo(**json.loads(meta.read_text())))


# --- the fragment ----------------------------------------------------------------------

_OPTION = re.compile(r"^(CONFIG_[A-Z0-9_]+)=(.*)$|^# (CONFIG_[A-Z0-9_]+) is not set$")


def fragment_options(text: str) -> dict[str, str]:
    """CONFIG_X -> its value (`y`, `17`, `"str"`; `n` for `# ... is not set`) in a
    .config or fragment; comments and blank lines skipped."""
    out = {}
    for line in text.splitlines():
        m = _OPTION.match(line.strip())
        if m:
            out[m.group(1) or m.group(3)] = m.group(2) if m.group(1) else "n"
    return out


def check_fragment(fragment: str, config: str, name: str = "") -> None:
    """Every option of the fragment has its value in the final .config."""
    have = fragment_options(config)
    for option, value in fragment_options(fragment).items():
        got = have.get(option, "n")
        if got != value:
            raise UserError(f"lab build{' ' + name if name else ''}: Kconfig dropped {option}={value} of "
                            f"{FRAGMENT.name} (the .config has {option}={got}: a dependency is missing "
                            f"or the option does not exist in this source)")


# --- the steps ---------------------------------------------------------------------------

def unpack_source(package: str, version: str, cache: Path) -> Path:
    """The pristine tree of `package` at `version`, unpacked once (into a private
    directory renamed into place, so a killed unpack leaves nothing trusted)."""
    final = cache / "kbuild" / "source" / f"{package}_{version}"
    if (final / "Makefile").is_file():
        return final
    tarball = source_tarball(package)
    with writing_cache(cache):
        final.parent.mkdir(parents=True, exist_ok=True)
        work = lifetime.PrivateDir("unpack-", final.parent)
    try:
        log.info("lab build: unpacking %s %s (%s, about 1.5 GB, once per version)", package, version, tarball)
        started = time.monotonic()
        _check_run(["tar", "-xJf", str(tarball), "-C", str(work.path)], "unpacking " + str(tarball), timeout_s=1800)
        (top,) = [p for p in work.path.iterdir() if p.is_dir()]
        with writing_cache(cache):
            try:
                os.replace(top, final)
            except OSError:
                if not (final / "Makefile").is_file():
                    raise
        log.info("lab build: unpacked in %.0f s into %s", time.monotonic() - started, final)
    finally:
        work.remove()
    return final


def prepare_tree(pristine: Path, work: Path, ps: PatchSet) -> Path:
    """`work/src`: hard links to the pristine tree, the set's files copied, the set applied."""
    src = work / "src"
    _check_run(["cp", "-al", str(pristine), str(src)], "linking the source tree", timeout_s=600)
    for rel in touched_files(ps):
        path = src / rel
        if path.is_file():                      # break the link: patch must not write into `pristine`
            tmp = path.with_name(path.name + ".haltlab-copy")
            shutil.copy2(path, tmp)
            os.replace(tmp, path)
    if ps.patches:
        log.info("lab build %s: applying %d patch(es)", ps.name, len(ps.patches))
        apply_patch_set(ps, src)
    return src


def _make(src: Path, obj: Path, *targets: str, jobs: int = 1) -> list[str]:
    return ["nice", "-n", str(NICE), "make", "-C", str(src), f"O={obj}", "CC=ccache gcc", f"-j{jobs}", *targets]


def configure(src: Path, obj: Path, env: dict, build_log: Path, name: str) -> Path:
    """tinyconfig + the fragment + olddefconfig, checked; the .config's path."""
    log.info("lab build %s: configuring (tinyconfig + %s + olddefconfig)", name, FRAGMENT.name)
    obj.mkdir()
    _logged_run(_make(src, obj, "tinyconfig"), env, build_log, "make tinyconfig")
    config = obj / ".config"
    fragment = FRAGMENT.read_text()
    with config.open("a") as f:
        f.write(f"\n# haltlab: {FRAGMENT.name}\n{fragment}")
    _logged_run(_make(src, obj, "olddefconfig"), env, build_log, "make olddefconfig")
    check_fragment(fragment, config.read_text(), name)
    return config


def compile_kernel(src: Path, obj: Path, env: dict, build_log: Path, name: str, jobs: int) -> Path:
    """`make bzImage` under the machine-wide build lock; the image's path."""
    with _build_lock(name):
        log.info("lab build %s: compiling with -j%d (a cold build takes minutes; log: %s)", name, jobs, build_log)
        started = time.monotonic()
        code = _stream_make(_make(src, obj, "bzImage", jobs=jobs), env, build_log, name)
    if code != 0:
        text = build_log.read_text(errors="replace")
        raise BuildFailed(f"lab build {name}: {first_compile_error(text, src) or f'make exited {code}'}")
    log.info("lab build %s: compiled in %.0f s", name, time.monotonic() - started)
    return obj / "arch" / "x86" / "boot" / "bzImage"


class BuildFailed(UserError):
    """A step failed; `build_kernel` adds where the log is kept."""


_ERROR = re.compile(r"^(\S+?):(\d+):(?:\d+:)? (?:fatal )?error: (.+)$", re.M)
_MAKE_ERROR = re.compile(r"^make(?:\[\d+\])?: \*\*\* (.+)$", re.M)
_LINK_ERROR = re.compile(r"^(?:ld|x86_64-linux-gnu-ld)(?:\.bfd)?: (.+)$", re.M)


def first_compile_error(text: str, src: Path | None = None) -> str | None:
    """`kernel/panic.c:284: error: ...` (source-relative) from a build log, else the
    first linker error, else make's first `***` line."""
    m = _ERROR.search(text)
    if m:
        path = m.group(1)
        if src is not None:
            path = path.removeprefix(f"{src}/")
        path = re.sub(r"^(\.\./)+src/", "", path)
        return f"{path}:{m.group(2)}: error: {m.group(3)}"
    m = _LINK_ERROR.search(text) or _MAKE_ERROR.search(text)
    return m.group(0) if m else None


@contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """`flock /tmp/haltlab-kbuild.lock`: one kernel build at a time on this machine."""
    fd = os.open(LOCK_PATH, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("lab build %s: waiting for %s (another kernel build runs)", name, LOCK_PATH)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _spawn(cmd: list[str], env: dict, build_log: Path) -> tuple[subprocess.Popen, object]:
    out = build_log.open("a")
    out.write(f"$ {' '.join(cmd)}\n")
    out.flush()
    proc = lifetime.spawn(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    return proc, out


def _stream_make(cmd: list[str], env: dict, build_log: Path, name: str) -> int:
    """Run make, copying its output to the log; a progress line now and then."""
    proc, out = _spawn(cmd, env, build_log)
    done, last, shown = 0, "", time.monotonic()
    try:
        for line in proc.stdout:
            out.write(line)
            if line.startswith("  ") and line[2:4].strip():
                done += 1
                last = line.strip()
            if time.monotonic() - shown >= PROGRESS_EVERY_S:
                log.info("lab build %s: %d steps done, now %s", name, done, " ".join(last.split()))
                shown = time.monotonic()
        return proc.wait()
    finally:
        _kill_group(proc)
        out.close()


def _logged_run(cmd: list[str], env: dict, build_log: Path, what: str) -> None:
    proc, out = _spawn(cmd, env, build_log)
    try:
        for line in proc.stdout:
            out.write(line)
        if proc.wait() != 0:
            raise BuildFailed(f"{what} failed: {first_compile_error(build_log.read_text(errors='replace')) or 'see the log'}")
    finally:
        _kill_group(proc)
        out.close()


def _kill_group(proc: subprocess.Popen) -> None:
    """make and every compiler it started: its own session, so one killpg ends them."""
    if proc.poll() is None:
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # compilers make left behind, if any
        except (ProcessLookupError, PermissionError):
            pass


def _check_run(cmd: list[str], what: str, *, timeout_s: float) -> None:
    try:
        lifetime.run(cmd, check=True, capture_output=True, text=True, timeout_s=timeout_s)
    except subprocess.CalledProcessError as e:
        tail = (e.stderr or "").strip().splitlines()[-1:] or [f"exit {e.returncode}"]
        raise UserError(f"lab build: {what} failed: {tail[0]}") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"lab build: {what} did not finish within {timeout_s:g} s (killed)") from None


def _build_env(cache: Path, work_root: Path) -> dict:
    env = dict(os.environ)
    env.update(BUILD_ENV)
    env["CCACHE_DIR"] = str(cache / "ccache")
    env["CCACHE_BASEDIR"] = str(work_root)
    return env


def store(entry: Path, image: Path, config: Path, build_log: Path, info: BuildInfo, staging: Path) -> BuiltKernel:
    """Fill `staging`, then rename it to `entry` in one step."""
    shutil.copy2(image, staging / "bzImage")
    shutil.copy2(config, staging / "config")
    shutil.copy2(config.parent / "System.map", staging / "System.map")
    shutil.copy2(build_log, staging / "build.log")
    (staging / "build.json").write_text(json.dumps(asdict(info), indent=2, sort_keys=True) + "\n")
    try:
        os.replace(staging, entry)
    except OSError:
        if not (entry / "build.json").is_file():    # else a concurrent build of the same key won
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return _load_entry(entry)


def build_kernel(name: str, *, jobs: int | None = None, cache: Path | None = None) -> BuiltKernel:
    """The build of patch set `name`: from the cache, else built now."""
    with lifetime.terminate_cleanly():
        cache = cache or check_cache()
        ps = load_patch_set(name)
        source_tarball(ps.source_package)
        version, gcc, fragment = source_version(ps.source_package), gcc_version(), FRAGMENT.read_bytes()
        key = build_key(ps, version, fragment, gcc)
        entry = _entry_dir(cache, name, key)
        if (found := _load_entry(entry)) is not None:
            log.info("lab build %s: cached (%s)", name, entry)
            return found
        if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
            raise ConfigError("jobs", jobs, "must be an integer >= 1")
        return _build(ps, version, gcc, fragment, key, entry, cache, jobs or os.cpu_count() or 1)


def _build(ps: PatchSet, version: str, gcc: str, fragment: bytes, key: str, entry: Path, cache: Path,
           jobs: int) -> BuiltKernel:
    pristine = unpack_source(ps.source_package, version, cache)
    work_root = cache / "kbuild" / "work"
    with writing_cache(cache):
        work_root.mkdir(parents=True, exist_ok=True)
        entry.parent.mkdir(parents=True, exist_ok=True)
        lifetime.sweep_stale(WORK_PREFIX, work_root)
        lifetime.sweep_stale(".stage-", entry.parent)
        work = lifetime.PrivateDir(WORK_PREFIX, work_root)
        staging = lifetime.PrivateDir(".stage-", entry.parent)
    build_log = work.path / "build.log"
    started = time.monotonic()
    try:
        src = prepare_tree(pristine, work.path, ps)
        obj = work.path / "obj"
        env = _build_env(cache, work_root)
        config = configure(src, obj, env, build_log, ps.name)
        image = compile_kernel(src, obj, env, build_log, ps.name, jobs)
        info = BuildInfo(ps.name, ps.digest, ps.source_package, version,
                         makefile_version((pristine / "Makefile").read_text()), ps.model_kernel, ps.model_policy,
                         hashlib.sha256(fragment).hexdigest(), hashlib.sha256(config.read_bytes()).hexdigest(),
                         gcc, key)
        (staging.path / "lock").unlink(missing_ok=True)
        with writing_cache(cache):
            built = store(entry, image, config, build_log, info, staging.path)
        log.info("lab build %s: done in %.0f s: %s", ps.name, time.monotonic() - started, built.bzimage)
        return built
    except BuildFailed as e:
        kept = _keep_failed_log(build_log, cache, ps.name, key)
        raise UserError(f"{e} (log: {kept})") from None
    finally:
        work.remove()
        staging.remove()


def _keep_failed_log(build_log: Path, cache: Path, name: str, key: str) -> Path:
    """The log of a failed build, outside the cache's entries (no partial entry)."""
    kept = cache / "builds" / "failed" / f"{name}-{key[:16]}.log"
    kept.parent.mkdir(parents=True, exist_ok=True)
    if build_log.is_file():
        shutil.copy2(build_log, kept)
    return kept


def built_kernel(name: str, *, jobs: int | None = None) -> KernelImage:
    """The kernel `lab panic|kexec|flood --build NAME` boots."""
    return build_kernel(name, jobs=jobs).image()
