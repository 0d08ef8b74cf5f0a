"""Issue 9: every patch set in the repository applies to the source the lab pins,
and a bad set is one line naming its file, field and value.

The apply test unpacks only the files the patches touch from Debian's
/usr/src/linux-source-6.1.tar.xz (a full unpack is ~1.3 GB), into a directory
under the lab cache keyed by the tarball's size and mtime and the file list, so
a second run costs nothing. It is skipped only when the tarball is absent.
"""

import hashlib
import subprocess
from pathlib import Path

import pytest

from haltlab.errors import ConfigError, UserError
from haltlab.kernel.commits import commit_set
from haltlab.kernel.policies import POLICIES
from haltlab.lab.cache import cache_dir
from haltlab.lab.patchsets import apply_patch_set, load_patch_set, patch_set_names, touched_files

NAMES = patch_set_names()


def _tarball(package: str) -> Path:
    return Path("/usr/src") / f"{package}.tar.xz"


def _unpacked(package: str, files: list[str]) -> Path:
    """A directory holding `files` (source-relative) as the tarball has them."""
    tarball = _tarball(package)
    if not tarball.is_file():
        pytest.skip(f"{tarball} is absent (apt-get install {package}; bin/_setup.sh installs it)")
    st = tarball.stat()
    key = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}:{sorted(files)}".encode()).hexdigest()[:16]
    out = cache_dir() / "patch-test" / f"{package}-{key}"
    if not (out / ".done").is_file():
        out.mkdir(parents=True, exist_ok=True)
        assert files, "no member names would make tar unpack the whole tree"
        top = package
        subprocess.run(["tar", "-xJf", str(tarball), "-C", str(out), "--strip-components=1",
                        *[f"{top}/{f}" for f in files]], check=False, capture_output=True)
        (out / ".done").write_text("")
    return out


def test_the_stock_set_exists_and_has_no_patches():
    assert "stock" in NAMES
    assert load_patch_set("stock").patches == ()


@pytest.mark.parametrize("name", NAMES)
def test_every_set_loads_and_names_a_model_kernel(name):
    ps = load_patch_set(name)
    assert commit_set(ps.model_kernel)          # a ConfigError if the model does not know it
    for pair in (ps.model_policy or "").split(",") if ps.model_policy else ():
        policy, value = pair.split("=")
        assert value in POLICIES[policy], f"{name}: model_policy {pair}: the model has no such policy"
    assert bool(touched_files(ps)) == bool(ps.patches)


@pytest.mark.parametrize("name", NAMES)
def test_every_set_applies_to_the_pinned_source(name):
    ps = load_patch_set(name)
    files = touched_files(ps)
    if not files:
        assert ps.patches == ()
        return
    source = _unpacked(ps.source_package, files)
    before = {f: (source / f).read_bytes() for f in files if (source / f).is_file()}
    apply_patch_set(ps, source, dry_run=True)
    assert {f: (source / f).read_bytes() for f in files if (source / f).is_file()} == before


# --- the loader's errors: each a one-line message naming file, field and value ---

GOOD_PATCH = """Subject: a change
Source: https://lore.kernel.org/x
Why: because

--- a/kernel/panic.c
+++ b/kernel/panic.c
@@ -1,1 +1,1 @@
-old
+new
"""
GOOD_TOML = 'description = "d"\nsource_package = "linux-source-6.1"\nmodel_kernel = "debian-6.1.0-56"\n'


def _set(tmp_path, toml=GOOD_TOML, patches=None, name="s") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "set.toml").write_text(toml)
    for fname, text in (patches or {}).items():
        (d / fname).write_text(text)
    return tmp_path


def _error(tmp_path, name="s", **kw) -> str:
    root = _set(tmp_path, name=name, **kw)
    with pytest.raises(UserError) as e:
        load_patch_set(name, root)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_a_good_set_loads(tmp_path):
    ps = load_patch_set("s", _set(tmp_path, patches={"0001-a.patch": GOOD_PATCH}))
    assert (ps.source_package, ps.model_kernel, ps.model_policy) == ("linux-source-6.1", "debian-6.1.0-56", None)
    assert [p.name for p in ps.patches] == ["0001-a.patch"]
    assert touched_files(ps) == ["kernel/panic.c"]


def test_patches_apply_in_name_order(tmp_path):
    second = GOOD_PATCH.replace("-old\n+new", "-new\n+newer")
    root = _set(tmp_path, patches={"0002-b.patch": second, "0001-a.patch": GOOD_PATCH})
    ps = load_patch_set("s", root)
    src = tmp_path / "src"
    (src / "kernel").mkdir(parents=True)
    (src / "kernel/panic.c").write_text("old\n")
    apply_patch_set(ps, src, dry_run=True)                  # 0002 sees 0001's result
    assert (src / "kernel/panic.c").read_text() == "old\n"
    apply_patch_set(ps, src)
    assert (src / "kernel/panic.c").read_text() == "newer\n"
    assert sorted(p.name for p in (src / "kernel").iterdir()) == ["panic.c"]   # no .orig/.rej left


def test_a_failing_hunk_names_the_patch_and_the_hunk(tmp_path):
    ps = load_patch_set("s", _set(tmp_path, patches={"0001-a.patch": GOOD_PATCH}))
    src = tmp_path / "src"
    (src / "kernel").mkdir(parents=True)
    (src / "kernel/panic.c").write_text("something else\n")
    with pytest.raises(UserError) as e:
        apply_patch_set(ps, src)
    msg = str(e.value)
    assert "\n" not in msg
    assert "0001-a.patch" in msg and "kernel/panic.c" in msg and "Hunk #1 FAILED" in msg, msg


def test_a_missing_file_names_the_patch(tmp_path):
    ps = load_patch_set("s", _set(tmp_path, patches={"0001-a.patch": GOOD_PATCH}))
    (tmp_path / "src").mkdir()
    with pytest.raises(UserError) as e:
        apply_patch_set(ps, tmp_path / "src", dry_run=True)
    assert "0001-a.patch" in str(e.value) and "\n" not in str(e.value)


def test_an_unknown_set_lists_the_known(tmp_path):
    root = _set(tmp_path)
    with pytest.raises(UserError, match=r"unknown patch set 'nope' \(choose from s\)"):
        load_patch_set("nope", root)


@pytest.mark.parametrize("toml, field, needle", [
    (GOOD_TOML.replace('description = "d"\n', ""), "description", "is required"),
    (GOOD_TOML.replace('"d"', "3"), "description", "3: must be a non-empty string"),
    (GOOD_TOML.replace('"linux-source-6.1"', '"linux-6.1"'), "source_package", "linux-6.1: must name"),
    (GOOD_TOML.replace('"debian-6.1.0-56"', '"debian 6.1"'), "model_kernel", "must be a kernel spec"),
    (GOOD_TOML + 'model_policy = "panic-cpu-only"\n', "model_policy", "panic-cpu-only: must be POLICY=NAME"),
    (GOOD_TOML + 'colour = "red"\n', "colour", "red: unknown key"),
])
def test_a_bad_field_names_file_field_and_value(tmp_path, toml, field, needle):
    msg = _error(tmp_path, toml=toml)
    assert msg.startswith(f"{tmp_path / 's' / 'set.toml'}: {field} "), msg
    assert needle in msg, msg
    assert isinstance(_raise(tmp_path), ConfigError)


def _raise(tmp_path):
    try:
        load_patch_set("s", tmp_path)
    except UserError as e:
        return e


def test_bad_toml_names_the_file(tmp_path):
    msg = _error(tmp_path, toml="description = \n")
    assert str(tmp_path / "s" / "set.toml") in msg and "is not TOML" in msg


@pytest.mark.parametrize("fname, text, needle", [
    ("0001-a.patch", GOOD_PATCH.replace("Source: https://lore.kernel.org/x\n", ""), "no Source: line"),
    ("0001-a.patch", GOOD_PATCH.replace("Why: because\n", ""), "no Why: line"),
    ("0001-a.patch", "Source: x\nWhy: y\n", "has no diff"),
    ("a.patch", GOOD_PATCH, "named NNNN-short-name.patch"),
])
def test_a_bad_patch_names_its_file(tmp_path, fname, text, needle):
    msg = _error(tmp_path, patches={fname: text})
    assert msg.startswith(str(tmp_path / "s" / fname)) and needle in msg, msg


def test_the_digest_is_of_the_sets_own_files(tmp_path):
    root = _set(tmp_path, patches={"0001-a.patch": GOOD_PATCH})
    before = load_patch_set("s", root).digest
    assert load_patch_set("s", root).digest == before
    (root / "s" / "set.toml").write_text(GOOD_TOML.replace('"d"', '"e"'))
    assert load_patch_set("s", root).digest != before
    (root / "s" / "0001-a.patch").write_text(GOOD_PATCH.replace("because", "why not"))
    assert len({before, load_patch_set("s", root).digest}) == 2
