"""Shared fixtures, kept tiny: the S1 machine profile, loaded once."""

import pytest

from haltlab.machine.profile import load_profile


@pytest.fixture(scope="session")
def kvm():
    """The kvm-x86 profile (HZ=250, KVM halt polling 200 us / grow 2 / start 10 us)."""
    return load_profile("kvm-x86")
