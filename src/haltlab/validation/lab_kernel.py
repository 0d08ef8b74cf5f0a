"""The lab's kernel, resolved once per command, and whether the model's preset describes it.

The model calls the lab's kernel `debian-6.1.0-56` (kernel/commits.py): v6.1 and
the backports Debian's changelog lists. The lab boots whatever package apt (or
the user's `kernel_package`) names, so the two can drift apart: a newer package
may carry a backport the preset lacks. `preset_match()` decides it the way
drgn decides kernel differences, by the presence of changes rather than by
version numbers: for every commit the model knows, it is in the booted kernel
when the commit's release is the kernel's base series or older, or when the
package's own changelog lists it in an entry of the kernel's stable series
(lab/changelog.py); the preset describes the kernel when it holds exactly
those. The answer and its reason go into every validation and calibration
result (`preset_matches_kernel`, `preset_match_reason`).
"""

from __future__ import annotations

import re

from haltlab.kernel.commits import COMMITS, PRESETS, Commit
from haltlab.lab import changelog
from haltlab.lab.arch import Arch
from haltlab.lab.images import KernelImage, cached_kernels, resolve_kernel

__all__ = ["LAB_KERNEL_PRESET", "resolve_lab_kernel", "preset_match", "commit_subject", "commit_release",
           "carried", "arm64_preset_match"]

# The model's name for the lab's kernel: calibration and validation model it.
LAB_KERNEL_PRESET = "debian-6.1.0-56"


def resolve_lab_kernel(kernel_package: str | None = None) -> KernelImage:
    """The kernel a whole command boots: apt is asked once, here."""
    return resolve_kernel(package=kernel_package)


def commit_subject(commit: Commit) -> str:
    """The subject line of a commit, from its citation (`... ("subject") (in v6.9)`)."""
    m = re.search(r'"(.+)"', commit.citation)
    if not m:
        raise ValueError(f"commit {commit.key}: no quoted subject in its citation")
    return m.group(1)


def commit_release(commit: Commit) -> tuple[int, int] | None:
    """The mainline release a commit is first in, from its citation's `(in vX.Y)`."""
    m = re.search(r"\(in v(\d+)\.(\d+)\)", commit.citation)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _listed(subject: str, items: list[str]) -> bool:
    """Whether a changelog item names the commit. Debian rewrites the subsystem
    prefix (`x86/smp: ...` becomes `[x86] smp: ...`), so the subject is matched
    without its prefixes."""
    tail = re.sub(r"^(?:[\w/.-]+: )+", "", subject)
    return any(item.endswith(tail) for item in items)


def carried(commits: dict[str, Commit], series: str, items: list[str]) -> set[str]:
    """The commits a kernel of `series` carries: its base has those from that
    release or before; its stable series' changelog items list the backports."""
    base = tuple(int(x) for x in series.split("."))
    return {key for key, c in commits.items()
            if (commit_release(c) or (99, 0)) <= base or _listed(commit_subject(c), items)}


def preset_match(preset: str, kernel: KernelImage) -> dict:
    """`{"kernel_preset", "preset_matches_kernel", "preset_match_reason"}` for a booted kernel.

    `preset_matches_kernel` is None when nothing says what the kernel carries
    (a user's bzImage, a package without its changelog)."""
    out = {"kernel_preset": preset}
    if kernel.package is None:
        return out | {"preset_matches_kernel": None,
                      "preset_match_reason": f"a user's bzImage ({kernel.release}): no package changelog "
                                             f"says which commits it carries"}
    what = f"{kernel.package} {kernel.package_version}"
    series = changelog.series_of(kernel.package_version)
    if kernel.changelog is None or series is None:
        return out | {"preset_matches_kernel": None,
                      "preset_match_reason": f"{what}: no changelog in the package (or no stable version) "
                                             f"to compare the preset with"}
    has = carried(COMMITS, series, changelog.series_items(changelog.read_changelog(kernel.changelog), series))
    want = set(PRESETS[preset])
    if has == want:
        return out | {"preset_matches_kernel": True, "preset_match_reason": (
            f"{preset} describes {what}: of the {len(COMMITS)} commits the model knows, the kernel carries "
            f"exactly the preset's {len(want)} ({', '.join(sorted(want))}; {series} base plus the "
            f"backports its changelog lists)")}
    extra, missing = sorted(has - want), sorted(want - has)
    parts = ([f"carries {', '.join(extra)}, which the preset lacks"] if extra else []) + \
            ([f"lacks {', '.join(missing)}, which the preset has"] if missing else [])
    return out | {"preset_matches_kernel": False,
                  "preset_match_reason": f"{preset} does not describe {what}: the kernel {'; it '.join(parts)}"}


def arm64_preset_match(meta: dict, preset: str = LAB_KERNEL_PRESET) -> dict:
    """`preset_match()` for the arm64 kernel a `lab kexec --arch arm64` result
    names, read from the lab's image cache (where that run unpacked it; no apt
    here, a saved campaign may be older than apt's answer)."""
    package, version = meta.get("kernel_package"), meta.get("kernel_package_version")
    cached = cached_kernels(spec=f"{package}={version}", arch=Arch.ARM64) if package and version else []
    if not cached:
        return {"kernel_preset": preset, "preset_matches_kernel": None,
                "preset_match_reason": f"{package} {version}: not in the lab's image cache, so no changelog "
                                       f"says which commits it carries"}
    return preset_match(preset, cached[-1])
