"""Patch sets: the named changes the lab applies to a kernel source before it builds.

A patch set is a directory `lab/patches/NAME/` holding `set.toml` and
`NNNN-short-name.patch` files, applied in name order with
`patch -p1 --forward --no-backup-if-mismatch` in the source root (the way a
kernel developer applies a series from a thread: `git am` needs a git tree,
Debian's source package has none). `set.toml`:

    description = "S1's two patches: ..."         # what the build is for
    source_package = "linux-source-6.1"           # the Debian package it applies to
    model_kernel = "debian-6.1.0-56"              # the model kernel this build is
    model_policy = "console_spin=panic-cpu-only"  # optional: a model policy it is

`model_kernel` is a haltlab kernel spec (a preset plus or minus commits, as
`--kernel` takes it); the lab imports nothing of the model, so it checks only
the shape here and the CLI and the tests check that the model knows the spec.
Each patch opens with a free-text header (before its first `---` or `diff`
line) carrying at least a `Source:` line (the thread message, or the upstream
commit applied or reverted) and a `Why:` line: a patch nobody can trace is not
evidence. The `stock` set has no patches, so the unpatched build of the same
source and config is a named build like any other.

`dry_run` applies the series to a scratch copy of the files it touches, so a
patch that edits what an earlier one in the set added is checked as the build
will see it (`patch --dry-run` patch by patch would check each against the
pristine tree).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from haltlab.errors import ConfigError, UserError

__all__ = ["PATCHES_DIR", "PatchSet", "patch_set_names", "load_patch_set", "touched_files",
           "apply_patch_set"]

PATCHES_DIR = Path(__file__).parent / "patches"
PATCH_CMD = ("patch", "-p1", "--forward", "--no-backup-if-mismatch", "--batch")  # --batch: never ask on /dev/tty
_KEYS = {"description": True, "source_package": True, "model_kernel": True, "model_policy": False}
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
_PATCH_NAME = re.compile(r"\d{4}-[A-Za-z0-9._-]+\.patch")
_PACKAGE = re.compile(r"linux-source-\d+\.\d+")
_POLICY = re.compile(r"[a-z_]+=[A-Za-z0-9_.-]+(,[a-z_]+=[A-Za-z0-9_.-]+)*")
_HEADER_END = re.compile(r"^(---|diff )", re.M)
_TARGET = re.compile(r"^(?:\+\+\+|---) (\S+)", re.M)


@dataclass(frozen=True)
class PatchSet:
    """One named series: its `set.toml` fields and its patch files in apply order."""

    name: str
    description: str
    source_package: str
    model_kernel: str
    model_policy: str | None
    patches: tuple[Path, ...]
    directory: Path

    @property
    def digest(self) -> str:
        """sha256 of set.toml and every patch, in order: a build's cache key part."""
        h = hashlib.sha256()
        for path in (self.directory / "set.toml", *self.patches):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return h.hexdigest()


def patch_set_names(root: Path = PATCHES_DIR) -> list[str]:
    """The patch sets in the repository, sorted."""
    return sorted(p.name for p in root.iterdir() if (p / "set.toml").is_file())


def load_patch_set(name: str, root: Path = PATCHES_DIR) -> PatchSet:
    """The set `name`; a missing set is a UserError listing the known ones, a bad
    `set.toml` or patch header a ConfigError naming the file, the field and the value."""
    where = root / name
    toml_path = where / "set.toml"
    if not _NAME.fullmatch(name) or not toml_path.is_file():
        raise UserError(f"unknown patch set {name!r} (choose from {', '.join(patch_set_names(root))})")
    try:
        data = tomllib.loads(toml_path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(toml_path), "", f"is not TOML: {e}") from None
    fields = {key: _field(toml_path, data, key, required) for key, required in _KEYS.items()}
    for key in sorted(set(data) - set(_KEYS)):
        raise ConfigError(f"{toml_path}: {key}", data[key], f"unknown key (known: {', '.join(_KEYS)})")
    _check_shape(toml_path, fields)
    patches = tuple(sorted(p for p in where.iterdir() if p.suffix == ".patch"))
    for p in patches:
        _check_patch(p)
    return PatchSet(name=name, patches=patches, directory=where, **fields)


def _field(path: Path, data: dict, key: str, required: bool) -> str | None:
    if key not in data:
        if required:
            raise ConfigError(f"{path}: {key}", "", "is required")
        return None
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: {key}", value, "must be a non-empty string")
    return value


def _check_shape(path: Path, fields: dict) -> None:
    if not _PACKAGE.fullmatch(fields["source_package"]):
        raise ConfigError(f"{path}: source_package", fields["source_package"],
                          "must name a Debian kernel source package, as linux-source-6.1")
    if any(c.isspace() for c in fields["model_kernel"]):
        raise ConfigError(f"{path}: model_kernel", fields["model_kernel"],
                          "must be a kernel spec, as debian-6.1.0-56 or v5.17+d51507098ff9")
    if fields["model_policy"] is not None and not _POLICY.fullmatch(fields["model_policy"]):
        raise ConfigError(f"{path}: model_policy", fields["model_policy"],
                          "must be POLICY=NAME (comma separated), as console_spin=panic-cpu-only")


def _check_patch(path: Path) -> None:
    if not _PATCH_NAME.fullmatch(path.name):
        raise ConfigError(str(path), path.name, "a patch file is named NNNN-short-name.patch")
    text = path.read_text()
    end = _HEADER_END.search(text)
    if end is None or not _TARGET.search(text):
        raise ConfigError(str(path), path.name, "has no diff (no ---/+++ lines)")
    header = text[:end.start()]
    for key in ("Source:", "Why:"):
        if not re.search(rf"^{key}\s*\S", header, re.M):
            raise ConfigError(str(path), path.name, f"its header (before the first ---/diff line) has no {key} line")


def touched_files(ps: PatchSet) -> list[str]:
    """The source-relative paths the set's patches read or write (-p1 stripped;
    /dev/null, a created or deleted file's other side, left out)."""
    out = set()
    for p in ps.patches:
        for target in _TARGET.findall(p.read_text()):
            if target != "/dev/null" and "/" in target:
                out.add(target.split("/", 1)[1])
    return sorted(out)


def apply_patch_set(ps: PatchSet, source_dir: Path, *, dry_run: bool = False) -> None:
    """Apply `ps` in `source_dir` (the tree's root). `dry_run`: apply to a scratch
    copy of the touched files instead, leaving `source_dir` as it was. A failing
    patch is one UserError line naming the patch file and the failing hunk or file."""
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="haltlab-patch-") as tmp:
            for rel in touched_files(ps):
                if (source_dir / rel).is_file():
                    (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source_dir / rel, Path(tmp) / rel)
            apply_patch_set(ps, Path(tmp))
        return
    for p in ps.patches:
        run = subprocess.run([*PATCH_CMD, "-i", str(p.resolve())], cwd=source_dir,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if run.returncode != 0:
            raise UserError(f"patch set {ps.name}: {p.name} does not apply to {source_dir}: "
                            f"{_first_failure(run.stdout + run.stderr)}")


def _first_failure(output: str) -> str:
    """The line of patch(1)'s output a reader needs: the failing hunk with its file."""
    current = ""
    for line in output.splitlines():
        if line.startswith(("patching file ", "checking file ")):
            current = line.split(" ", 2)[2]
        elif "FAILED" in line or "Reversed (or previously applied)" in line:
            return f"{current}: {line.strip()}" if current else line.strip()
        elif line.startswith(("can't find file", "No file to patch")) or "malformed patch" in line:
            return line.strip()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "patch failed with no output"
