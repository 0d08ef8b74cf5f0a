"""A child process that dies with its parent, however the parent dies.

Shared by the lab (QEMU and its helpers, set between fork and exec) and the
sweep (pool workers, set in their initializer): `prctl(PR_SET_PDEATHSIG,
SIGKILL)` has the kernel kill the child when the thread that forked it dies,
even by SIGKILL, when nothing in haltlab runs. The parent may die between the
fork and the prctl (the usual race); then the child already has another parent
and kills itself. Linux only, as the lab is.
"""

import ctypes
import os
import signal

__all__ = ["PR_SET_PDEATHSIG", "die_with_parent"]

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h

_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved in the parent: a child only calls it


def die_with_parent(parent_pid: int) -> None:
    """In the child: die by SIGKILL when `parent_pid`'s forking thread dies."""
    if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the prctl: nobody would kill us
        signal.raise_signal(signal.SIGKILL)
