"""The machine implements the operations' contract, method for method.

`haltlab.engine.ops.Hardware` declares every call an operation makes on the
machine (the engine cannot import the machine, so the protocol is the contract).
A renamed or re-shaped machine method fails here instead of at the first run
that reaches it.
"""

import inspect

from haltlab.engine import ops
from haltlab.machine.machine import Machine


def _protocol_methods() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(ops.Hardware).items()
            if inspect.isfunction(fn) and not name.startswith("_")}


def test_the_protocol_is_not_empty():
    assert {"irq_entry", "set_irq_flag", "hlt", "uart_write", "send_IPI_mask",
            "pvpanic_event", "emergency_restart", "set_cpu_state"} <= set(_protocol_methods())


def test_machine_has_every_hardware_method_with_the_same_parameters():
    for name, sig in _protocol_methods().items():
        impl = getattr(Machine, name, None)
        assert impl is not None, f"Machine lacks {name}()"
        assert list(inspect.signature(impl).parameters) == list(sig.parameters), name


def test_no_operation_is_dispatched_by_name():
    # The string dispatcher and its two entry points are gone for good.
    assert not hasattr(ops, "machine_op") and not hasattr(ops, "local_op")
    assert not [n for n in dir(Machine) if n.startswith("op_")]
    assert "getattr(" not in inspect.getsource(ops)
