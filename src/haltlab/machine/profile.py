"""Machine profiles: CPU count, architecture and costs, each number with its source.

A profile is one TOML file (see docs/profiles.md): the shipped ones are package
data in ``haltlab/profiles/``, so an installed haltlab has them too, and a user's
own directory named by ``$HALTLAB_PROFILES`` is searched first.  It stands for
the machine the kernel model runs on: the values a simulator charges for an IPI,
a ``cpu_relax()``, a console character or a VM exit, and, for a guest, the KVM
halt-polling parameters of ``virt/kvm/kvm_main.c``.

The validator is hand-written over a declarative table (``_KEYS``) rather than
pydantic because (1) every error must be ONE line naming file, key and value,
which pydantic's multi-line reports are not; (2) haltlab adds no dependency for
a schema of twenty-odd flat keys; (3) units ("2 us", "2.6 GHz") need a small
custom parser either way.

Life cycle: ``load_profile()`` parses with ``tomllib`` and validates; the result
is an immutable ``Profile``; ``with_overrides()`` makes a validated copy for
tests and sweeps; ``write_profile()`` re-serialises one (sources preserved), so
``haltlab lab calibrate`` can rewrite a file with measured values.
"""

from __future__ import annotations

import difflib
import errno
import math
import os
import re
import stat
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from haltlab.errors import ConfigError, UserError
from haltlab.results import file_kind, path_problem, show_path, write_text_atomic

__all__ = [
    "Param",
    "Profile",
    "profiles_dir",
    "profile_dirs",
    "shipped_profiles_dir",
    "user_profiles_dir",
    "check_profile_writable",
    "load_profile",
    "list_profiles",
    "write_profile",
    "MAX_PROFILE_BYTES",
]

ARCHES = ("x86_64", "arm64")
KINDS = ("guest", "bare-metal")

# dimension -> (Param.unit, accepted unit suffixes with their scale, integer result)
_DIMENSIONS: dict[str, tuple[str, dict[str, float], bool]] = {
    "time": ("ns", {"": 1, "ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9}, True),
    "frequency": ("Hz", {"": 1, "hz": 1, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}, True),
    "count": ("cpus", {"": 1}, True),
    "number": ("1", {"": 1}, True),
    "factor": ("1", {"": 1}, False),
    "fraction": ("1", {"": 1, "%": 0.01}, False),
}


@dataclass(frozen=True)
class _Key:
    name: str
    section: str
    dimension: str
    positive: bool = False  # zero is an error (CPU count, tick rate, clocks)
    period: bool = False    # the model waits 1e9 // value ns between events: >= 1 ns
    optional: bool = False  # read only by the code that needs it, which names it when absent


_KEYS: tuple[_Key, ...] = (
    _Key("cpus", "machine", "count", positive=True),
    _Key("hz", "machine", "frequency", positive=True, period=True),
    _Key("cpu_clock_hz", "machine", "frequency", positive=True),
    _Key("atomic_op_ns", "costs", "time"),
    _Key("cpu_relax_ns", "costs", "time"),
    _Key("ipi_latency_ns", "costs", "time"),
    _Key("nmi_latency_ns", "costs", "time"),
    _Key("irq_entry_exit_ns", "costs", "time"),
    _Key("tick_handler_ns", "costs", "time"),
    _Key("printk_store_ns", "costs", "time"),
    _Key("console_ns_per_char", "costs", "time"),
    _Key("stop_this_cpu_ns", "costs", "time"),
    # How far an operation's real duration may stray from its cost above, either
    # way: the explorer's timed mode (haltlab.engine.timing) turns each cost c
    # into the interval [c - t*c, c + t*c]. Only the explorer reads it.
    _Key("timing_tolerance", "costs", "fraction", optional=True),
    # S2's flood: user space and the write() syscall around each record (scenarios/printk_flood.py).
    _Key("devkmsg_user_ns", "costs", "time", optional=True),
    # S3's kexec shutdown (kernel/cpuhp.py and the arm64 PSCI calls): read only by the kexec runs.
    _Key("psci_call_ns", "costs", "time", optional=True),
    _Key("psci_cpu_off_ns", "costs", "time", optional=True),
    _Key("context_switch_ns", "costs", "time", optional=True),
    _Key("cpuhp_ap_callbacks_ns", "costs", "time", optional=True),
    _Key("cpuhp_dying_callbacks_ns", "costs", "time", optional=True),
    _Key("cpuhp_dead_callbacks_ns", "costs", "time", optional=True),
    _Key("irq_set_affinity_ns", "costs", "time", optional=True),
    # What a grace period takes beyond kernel/rcu.py's jiffy waits (absent: nothing); the lab measures it.
    _Key("rcu_gp_overhead_ns", "costs", "time", optional=True),
    # S4's x86 kexec reboot and bring-up (kernel/arch/x86_smpboot.py, x86_kexec.py, x86_park.py):
    # read only by `simulate kexec --arch x86`. The topology and CPUID facts the bring-up
    # decides on, then the costs of each step.
    _Key("sockets", "machine", "count", positive=True, optional=True),
    _Key("threads_per_core", "machine", "count", positive=True, optional=True),
    _Key("x86_vendor_amd", "machine", "number", optional=True),
    _Key("x86_family", "machine", "number", optional=True),
    _Key("x86_feature_constant_tsc", "machine", "number", optional=True),
    _Key("x86_feature_tsc_adjust", "machine", "number", optional=True),
    _Key("apic_icr_write_ns", "costs", "time", optional=True),
    _Key("ap_sipi_response_ns", "costs", "time", optional=True),
    _Key("trampoline_ns", "costs", "time", optional=True),
    _Key("park_startup_ns", "costs", "time", optional=True),
    _Key("load_ucode_ap_ns", "costs", "time", optional=True),
    _Key("ap_starting_ns", "costs", "time", optional=True),
    _Key("cpuhp_bp_prepare_ns", "costs", "time", optional=True),
    _Key("cpuhp_ap_online_callbacks_ns", "costs", "time", optional=True),
    _Key("c1_exit_latency_ns", "costs", "time", optional=True),
    _Key("c1e_exit_latency_ns", "costs", "time", optional=True),
    _Key("c6_exit_latency_ns", "costs", "time", optional=True),
    _Key("machine_shutdown_devices_ns", "costs", "time", optional=True),
    _Key("kexec_image_kib", "costs", "number", optional=True),
    _Key("kexec_copy_ns_per_mib", "costs", "time", optional=True),
    _Key("purgatory_sha256_ns_per_mib", "costs", "time", optional=True),
    _Key("boot_to_smp_init_ns", "costs", "time", optional=True),
    _Key("smp_init_to_init_ns", "costs", "time", optional=True),
    _Key("vm_exit_roundtrip_ns", "hypervisor", "time"),
    _Key("halt_wakeup_ns", "hypervisor", "time"),
    _Key("halt_poll_ns", "hypervisor", "time"),
    _Key("halt_poll_ns_grow", "hypervisor", "factor"),
    _Key("halt_poll_ns_grow_start", "hypervisor", "time"),
    _Key("halt_poll_ns_shrink", "hypervisor", "factor"),
    _Key("vmm_background_cpu_s_per_s", "hypervisor", "fraction"),
    _Key("perf_freq_hz", "hypervisor", "frequency", positive=True),
    _Key("host_cpu_hz", "hypervisor", "frequency", positive=True),
    # What the guest kernel prints from "Kernel panic - not syncing" through the
    # end-of-panic line for a sysrq crash: the console time of a panic depends on it.
    _Key("panic_console_lines", "kernel", "number", positive=True),
    _Key("panic_console_chars", "kernel", "number", positive=True),
    # CONFIG_LOG_BUF_SHIFT: printk's ring buffer is 2^shift bytes (kernel/printk_ringbuffer.py);
    # absent, the kernel model takes init/Kconfig's default, 17.
    _Key("log_buf_shift", "kernel", "number", positive=True, optional=True),
)
KEYS: Mapping[str, _Key] = MappingProxyType({k.name: k for k in _KEYS})
_HEADER_KEYS = ("name", "description", "arch", "kind")
_SECTIONS = ("profile", "machine", "costs", "hypervisor", "kernel")
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(\S*)\s*$")


@dataclass(frozen=True)
class Param:
    """One profile number: its value in ``unit``, and where it comes from."""

    value: int | float
    source: str
    unit: str  # "ns", "Hz", "1" or "cpus"


@dataclass(frozen=True)
class Profile:
    """A machine: the values the model charges, keyed by flat names."""

    name: str
    description: str
    arch: str
    kind: str
    path: str = field(compare=False)
    params: Mapping[str, Param] = field(hash=False)

    @property
    def is_guest(self) -> bool:
        return self.kind == "guest"

    def _param(self, key: str) -> Param:
        if key not in self.params:
            raise UserError(f"profile {self.name}: no parameter {key}{_suggest(key, self.params)}")
        return self.params[key]

    def get(self, key: str) -> int | float:
        return self._param(key).value

    def source(self, key: str) -> str:
        return self._param(key).source

    def cost_ns(self, key: str) -> int:
        param = self._param(key)
        if param.unit != "ns":
            raise UserError(f"profile {self.name}: {key} is in {param.unit}, not a cost in ns")
        return int(param.value)

    def with_overrides(self, **values: object) -> Profile:
        """A copy with some values replaced ("2 us", 2000 or a Param), validated."""
        params = dict(self.params)
        where = f"profile {self.name} (override)"
        for key, raw in values.items():
            spec = KEYS.get(key)
            if spec is None:
                raise UserError(f"{where}: {key}: unknown key{_suggest(key, KEYS)}")
            if spec.section == "hypervisor" and not self.is_guest:
                raise UserError(f"{where}: {key}: [hypervisor] keys need kind = \"guest\"")
            if isinstance(raw, Param):
                raw, text = raw.value, raw.source
            else:
                old = params.get(key)
                text = f"override of {old.value} {old.unit} ({old.source})" if old else "override"
            params[key] = _param(where, spec, {"value": raw, "source": text})
        return Profile(self.name, self.description, self.arch, self.kind, self.path,
                       MappingProxyType(params))

    def to_dict(self) -> dict:
        """JSON-able form, for the provenance of results."""
        return {
            "name": self.name, "description": self.description, "arch": self.arch,
            "kind": self.kind, "path": self.path,
            "params": {k: {"value": p.value, "unit": p.unit, "source": p.source,
                           "section": KEYS[k].section} for k, p in self.params.items()},
        }


def shipped_profiles_dir() -> Path:
    """The profiles shipped inside the package (``haltlab/profiles/*.toml``),
    found through importlib.resources: a checkout, an editable install and a
    wheel in site-packages all have them."""
    return Path(str(resources.files("haltlab") / "profiles"))


def user_profiles_dir() -> Path | None:
    """``$HALTLAB_PROFILES``: a directory of the user's own profiles, or None."""
    env = os.environ.get("HALTLAB_PROFILES")
    return Path(env) if env else None


def profile_dirs() -> list[Path]:
    """Where a bare profile name is looked up, in order: the user's directory
    (a profile there shadows a shipped one of the same name, which is how a
    calibrated copy of a shipped profile is used), then the shipped ones."""
    user = user_profiles_dir()
    return ([user] if user is not None else []) + [shipped_profiles_dir()]


def profiles_dir() -> Path:
    """The first directory of `profile_dirs()`: ``$HALTLAB_PROFILES`` if set,
    else the shipped profiles."""
    return profile_dirs()[0]


def list_profiles() -> list[str]:
    names: set[str] = set()
    for directory in profile_dirs():
        try:
            if directory.is_dir():
                names.update(p.stem for p in directory.glob("*.toml"))
        except OSError:
            pass
    return sorted(names)


def _find(name: str) -> Path | None:
    for directory in profile_dirs():
        path = directory / f"{name}.toml"
        if _is_file(path):
            return path
    return None


def _dirs_shown() -> str:
    return " or ".join(str(d) for d in profile_dirs())


def check_profile_writable(profile: Profile) -> Path:
    """Fail now, in one line, if ``write_profile(profile, profile.path)`` could not
    replace the file (a shipped profile in a read-only site-packages, say), so
    that ``haltlab lab calibrate`` refuses before minutes of measuring instead of
    after. The probe creates and removes a temporary file beside it (the atomic
    writer needs exactly that). Returns the path that would be written."""
    path = Path(profile.path)
    try:
        tempfile.NamedTemporaryFile(prefix=f".{path.name}.", dir=path.parent).close()
    except OSError as e:
        hint = ""
        if path.resolve().parent == shipped_profiles_dir().resolve():
            hint = (f"; it is a shipped profile: copy it into a directory of your own, set "
                    f"HALTLAB_PROFILES to that directory, and calibrate the copy")
        raise UserError(f"{profile.path}: cannot write the calibrated profile here "
                        f"({e.strerror or e}){hint}") from None
    return path


MAX_PROFILE_BYTES = 1 << 20    # 1 MiB: a profile is a few kB; /dev/zero is endless


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """Load ``NAME.toml`` from the profile directories for a bare name, else the
    file at that path.

    Only a regular file of at most ``MAX_PROFILE_BYTES`` is read: a device
    (``/dev/zero``) would be read without end and a FIFO would block the open.
    The file is opened with ``O_NONBLOCK`` and checked with ``fstat`` on the open
    descriptor, so a FIFO put in place between a check and the open cannot
    block either."""
    text = os.fspath(name_or_path)
    why = path_problem(text)
    if why is not None:
        raise ConfigError("profile", show_path(text), why)
    path = Path(text)
    if not (path.suffix == ".toml" or os.sep in text or "/" in text or _is_file(path)):
        found = _find(text)
        if found is None:
            names = list_profiles()
            raise UserError(f"profile {text!r}: not found in {_dirs_shown()}"
                            f"{_suggest(text, names)} (known: {', '.join(names) or 'none'})")
        path = found
    where = _display(path)
    try:
        data = tomllib.loads(_read_regular(path, where).decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{where}: no such profile file") from None
    except OSError as exc:
        raise UserError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: malformed TOML: {_one_line(str(exc))}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text ({exc.reason})") from None
    return _validate(where, data)


def _read_regular(path: Path, where: str) -> bytes:
    """The bytes of a regular file of at most MAX_PROFILE_BYTES (see load_profile)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(mode):
            raise UserError(f"{where}: cannot read: {file_kind(mode)}, not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PROFILE_BYTES:
        raise UserError(f"{where}: larger than {MAX_PROFILE_BYTES // 1024} KiB; a profile is a few kB")
    return data


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False

def _validate(where: str, data: dict) -> Profile:
    for section in data:
        if section not in _SECTIONS:
            raise UserError(f"{where}: [{section}]: unknown section{_suggest(section, _SECTIONS)}")
        if not isinstance(data[section], dict):
            raise UserError(f"{where}: {section} = {_show(data[section])}: expected a [{section}] table")
    header = _header(where, data.get("profile"))
    if "hypervisor" in data and header["kind"] != "guest":
        raise UserError(f"{where}: [hypervisor]: only allowed with kind = \"guest\", "
                        f"not {header['kind']!r}")
    params: dict[str, Param] = {}
    for section in ("machine", "costs", "hypervisor", "kernel"):
        table = data.get(section, {})
        for key, raw in table.items():
            spec = KEYS.get(key)
            if spec is None or spec.section != section:
                hint = (f" (it belongs in [{spec.section}])" if spec else
                        _suggest(key, [k.name for k in _KEYS if k.section == section]))
                raise UserError(f"{where}: [{section}] {key}: unknown key{hint}")
            params[key] = _param(where, spec, raw)
    for spec in _KEYS:
        required = not spec.optional and (spec.section != "hypervisor" or header["kind"] == "guest")
        if required and spec.name not in params:
            raise UserError(f"{where}: [{spec.section}] {spec.name}: missing required key")
    return Profile(header["name"], header["description"], header["arch"], header["kind"],
                   where, MappingProxyType(params))


def _header(where: str, table: object) -> dict[str, str]:
    if table is None:
        raise UserError(f"{where}: [profile]: missing section")
    for key in table:
        if key not in _HEADER_KEYS:
            raise UserError(f"{where}: [profile] {key}: unknown key{_suggest(key, _HEADER_KEYS)}")
    for key in _HEADER_KEYS:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{where}: [profile] {key} = {_show(value)}: "
                            "missing or empty (a non-empty string is required)")
    for key, allowed in (("arch", ARCHES), ("kind", KINDS)):
        if table[key] not in allowed:
            raise UserError(f"{where}: [profile] {key} = {table[key]!r}: "
                            f"must be one of {', '.join(allowed)}")
    return dict(table)


def _param(where: str, spec: _Key, raw: object) -> Param:
    label = f"{where}: [{spec.section}] {spec.name}"
    if not isinstance(raw, dict):
        raise UserError(f"{label} = {_show(raw)}: expected {{ value = ..., source = \"...\" }}")
    for sub in raw:
        if sub not in ("value", "source"):
            raise UserError(f"{label}.{sub}: unknown field{_suggest(sub, ('value', 'source'))}")
    if "value" not in raw:
        raise UserError(f"{label}: missing value")
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise UserError(f"{label} = {_show(raw['value'])}: missing or empty source "
                        "(cite a seed, kernel file + symbol, document, or lab command)")
    unit = _DIMENSIONS[spec.dimension][0]
    return Param(_convert(label, spec, raw["value"]), _one_line(source), unit)


def _convert(label: str, spec: _Key, raw: object) -> int | float:
    _, scales, integral = _DIMENSIONS[spec.dimension]
    shown = f"{label} = {_show(raw)}"
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise UserError(f"{shown}: not a number")
    if isinstance(raw, str):
        if raw.strip().startswith("-"):
            raise UserError(f"{shown}: negative value")
        match = _NUMBER.match(raw)
        if not match:
            raise UserError(f"{shown}: not a number with an optional unit")
        suffix = match.group(2)
        scale = scales.get(suffix.lower() if spec.dimension == "frequency" else suffix)
        if scale is None:
            accepted = ", ".join(s for s in scales if s) or "none (a plain number)"
            raise UserError(f"{shown}: wrong unit {suffix!r} for a {spec.dimension} "
                            f"(accepted: {accepted})")
        value = float(match.group(1)) * scale
    else:
        value = raw
    if not math.isfinite(value):
        raise UserError(f"{shown}: not a finite number")
    if value < 0:
        raise UserError(f"{shown}: negative value")
    if spec.dimension in ("count", "number") and value != int(value):
        raise UserError(f"{shown}: must be a whole number")
    result = int(round(value)) if integral else float(value)
    if spec.positive and result == 0:
        rounded = f" (rounds to 0 {_DIMENSIONS[spec.dimension][0]})" if value else ""
        raise UserError(f"{shown}: must be greater than zero{rounded}")
    if spec.period and result > 1_000_000_000:
        raise UserError(f"{shown}: a period under 1 ns, which the model cannot wait (at most 1 GHz)")
    return result


def write_profile(profile: Profile, path: str | os.PathLike) -> Path:
    """Write ``profile`` as TOML in the canonical layout, sources preserved."""
    lines = ["# haltlab machine profile; format and units: docs/profiles.md", "",
             "[profile]"]
    for key in _HEADER_KEYS:
        lines.append(f"{key} = {_toml_str(getattr(profile, key))}")
    for section in ("machine", "costs", "hypervisor", "kernel"):
        keys = [k for k in _KEYS if k.section == section and k.name in profile.params]
        if not keys:
            continue
        lines += ["", f"[{section}]"]
        for spec in keys:
            param = profile.params[spec.name]
            lines.append(f"{spec.name} = {{ value = {_toml_value(spec, param.value)}, "
                         f"source = {_toml_str(param.source)} }}")
    out = Path(path)
    write_text_atomic(out, "\n".join(lines) + "\n")
    return out


def _toml_value(spec: _Key, value: int | float) -> str:
    """Exact and readable: "200 us" rather than 200000 when that loses nothing."""
    steps = {"time": ((10**9, "s"), (10**6, "ms"), (10**3, "us"), (1, "ns")),
             "frequency": ((10**9, "GHz"), (10**6, "MHz"), (10**3, "kHz"), (1, "Hz"))}
    if spec.dimension in steps:
        for scale, unit in steps[spec.dimension]:
            if value and value % scale == 0:
                return f'"{value // scale} {unit}"'
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    return str(int(value))


def _toml_str(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " or c == "\t" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _show(value: object) -> str:
    return _one_line(repr(value))[:120]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _display(path: Path) -> str:
    """`path` relative to the working directory when under it. A path that has
    no resolved form (a symlink loop: 3.11's ``Path.resolve()`` raises
    RuntimeError on one) is shown as given; opening it then fails with ELOOP."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, RuntimeError, OSError):
        return str(path)
