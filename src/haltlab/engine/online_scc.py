"""Strongly connected components found while the explorer's depth-first
search runs (Tarjan's algorithm on its own stack), so that a search may stop at
the first component that answers its question.

The explorer numbers states in the order it finds them, which is Tarjan's
index; a state is on this module's stack from when it is found until its
component is complete. A component is complete when the search leaves its
root (the state of lowest index in it) for good: by then every state reachable
from the root has been found, so nothing found later can join it. Each state's
out-edges are kept only while it is on the stack (their tokens and
destinations), which is what judging a component needs: the choices taken
inside it and those taken out of it.

`haltlab.checks.properties.check` uses it to stop at the first fair
non-progress component (a livelock is then proved: every state of the
component is expanded, its edges all recorded), as a safety search stops at
its first violation.
"""

from __future__ import annotations

from array import array

__all__ = ["OnlineScc"]


class OnlineScc:
    """Tarjan's bookkeeping beside the explorer's search stack."""

    def __init__(self) -> None:
        self.low = array("I")
        self._on = bytearray()
        self._stack: list[int] = []
        self._out: dict[int, list[tuple[str, int]]] = {}

    def found(self, sid: int) -> None:
        """A new state (ids come in order: `sid` is its index)."""
        self.low.append(sid)
        self._on.append(1)
        self._stack.append(sid)
        self._out[sid] = []

    def edge(self, src: int, token: str, dst: int) -> None:
        """An edge the search took from `src`, which is on the stack."""
        self._out[src].append((token, dst))
        if self._on[dst] and dst < self.low[src]:
            self.low[src] = dst

    def finished(self, sid: int, parent: int | None) -> tuple[list[int], dict] | None:
        """The search left `sid` for good (`parent`: the state below it on the
        search stack). Its component, with each member's out-edges, when
        `sid` is the component's root; else None."""
        low = self.low
        if parent is not None and low[sid] < low[parent]:
            low[parent] = low[sid]
        if low[sid] != sid:
            return None
        members, out = [], {}
        while True:
            v = self._stack.pop()
            self._on[v] = 0
            members.append(v)
            out[v] = self._out.pop(v)
            if v == sid:
                return members, out
