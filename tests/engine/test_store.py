"""The compact store: digests that do not depend on the process (frozenset
order, salted str hashes), edges and labels that read like the lists and dicts
they replace, and the debug mode that catches a collision."""

import os
import subprocess
import sys

import pytest

from haltlab.engine import store as store_mod
from haltlab.engine.store import Edges, Labels, StateStore, StoreError, digest


def _fp():
    names = {"panic_owners", "self_stopped", "stopped", "in_panic_loop"}
    return ((("panic_cpu", 1),), (("ready", frozenset(names)),), frozenset({(1, "NMI"), (2, "REBOOT")}))


def test_digest_is_16_bytes_and_ignores_frozenset_history():
    a = frozenset(range(100))
    grown = set(range(1000))
    for i in range(100, 1000):
        grown.discard(i)
    b = frozenset(grown)
    assert digest((a, "x")) == digest((b, "x"))
    assert len(digest(_fp())) == 16
    assert digest((1, 2)) != digest((2, 1))


def test_digest_is_the_same_under_another_hash_seed():
    code = ("from haltlab.engine.store import digest;"
            "print(digest(frozenset({'panic_owners','stopped','self_stopped','a','b','c','d'})).hex())")
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout)
    assert len(outs) == 1


def test_edges_read_as_triples():
    e = Edges()
    e.append((0, "c1", 1))
    e.append((1, "i0.NMI", 0), perm=3)
    e.append((1, "c1", 2))
    assert list(e) == [(0, "c1", 1), (1, "i0.NMI", 0), (1, "c1", 2)]
    assert len(e) == 3 and e[1] == (1, "i0.NMI", 0) and e[-1] == (1, "c1", 2)
    assert e.tokens == ["c1", "i0.NMI"] and list(e.perm) == [0, 3, 0]


def test_labels_read_as_a_dict_of_facts():
    lab = Labels()
    lab.set(0, frozenset())
    lab.set(2, frozenset({"won", "settled"}))
    assert dict(lab.items()) == {0: frozenset(), 2: frozenset({"won", "settled"})}
    assert 1 not in lab and len(lab) == 2
    assert lab.with_fact("won") == {2}


def test_debug_mode_catches_a_collision(monkeypatch):
    st = StateStore(debug=True)
    monkeypatch.setattr(store_mod, "digest", lambda fp: b"\0" * 16)
    st.add(st.key((1,)))
    assert st.key((1,)) == b"\0" * 16            # the same state again is no collision
    with pytest.raises(StoreError, match="collision"):
        st.key((2,))


def test_without_debug_only_digests_are_kept():
    st = StateStore()
    sid, new = st.add(st.key(_fp()))
    again, new2 = st.add(st.key(_fp()))
    assert (sid, new, again, new2) == (0, True, 0, False)
    assert not st._full
