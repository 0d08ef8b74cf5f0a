"""What a sweep's rows depend on besides their key: the model's version and
the profile's content, as digests recorded in the sweep file's header.

The model's version is the haltlab version *and* a SHA-256 of the source of
every module that can move a number in a row (the engine, machine, kernel and
scenario packages, and the module that shapes a sweep row; `errors` and
`results`, which a run also imports, only report), not an explicit
MODEL_VERSION constant. A constant has to be bumped by hand on every change
that moves a number; forgetting is silent, and silently reusing stale rows is
the defect this guards against. A source digest cannot be forgotten; it errs
the other way (a comment edit refuses a resume, which costs a rerun, never a
wrong number). It is read from the installed files, so an installed haltlab
and a checkout of the same commit agree, and a Dask worker can check that it
runs the model the sweep was started with.

A profile enters by its content: architecture, kind, and each parameter's
value and unit. Its name and path are not part of it (a renamed copy gives
the same runs), nor are descriptions and `source` notes (provenance text
moves no number). Hence a recalibrated profile under the old name does not
resume from rows of the old values.
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
from pathlib import Path
from types import MappingProxyType

import haltlab
from haltlab.errors import UserError
from haltlab.machine.profile import Profile

__all__ = ["model_version", "model_digest", "source_digest", "profile_digest", "MODEL_SOURCES",
           "profile_state", "worker_profile"]

# What a run executes, relative to the haltlab package: whole packages, and
# single modules.
MODEL_SOURCES = ("engine", "machine", "kernel", "scenarios", "sweep/panic.py", "sweep/flood.py", "sweep/kexec.py")


@functools.lru_cache(maxsize=1)
def model_digest() -> str:
    """`source_digest()` of the haltlab in use (read once per process)."""
    return source_digest(Path(haltlab.__file__).parent)


def source_digest(root: Path) -> str:
    """SHA-256 over the model's source files under the package directory
    `root`, each as its path and its bytes."""
    h = hashlib.sha256()
    for part in MODEL_SOURCES:
        where = root / part
        files = [where] if where.suffix == ".py" else sorted(where.rglob("*.py"))
        for f in files:
            rel = f.relative_to(root).as_posix().encode()
            data = f.read_bytes()
            h.update(b"%d:%s%d:" % (len(rel), rel, len(data)) + data)
    return h.hexdigest()


def model_version() -> dict[str, str]:
    return {"haltlab": haltlab.__version__, "source_sha256": model_digest()}


def profile_digest(profile: Profile) -> str:
    """SHA-256 of the profile's canonical form (what moves a result, only)."""
    canonical = {"arch": profile.arch, "kind": profile.kind,
                 "params": {k: [p.value, p.unit] for k, p in sorted(profile.params.items())}}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def profile_state(p: Profile) -> tuple:
    """The profile as plain picklable values (its params are a read-only
    mapping): workers get the loaded profile with each run, not its name, so
    every run uses exactly the profile the header describes."""
    return p.name, p.description, p.arch, p.kind, p.path, dict(p.params)


def worker_profile(state: tuple, digest: str) -> Profile:
    """In a worker: the profile back from `profile_state()`, after checking that
    this worker runs the model (`digest`) the sweep was started with."""
    if model_digest() != digest:
        raise UserError(f"a worker on {socket.gethostname()} runs another haltlab model (source "
                        f"{model_digest()[:12]}, the sweep's {digest[:12]}): install the same haltlab everywhere")
    name, description, arch, kind, path, params = state
    return Profile(name, description, arch, kind, path, MappingProxyType(params))
