"""S4's reproduce rows: the thread's smp_init() figures beside `run_kexec_x86`
on S4's machine, the stock bring-up and S4's park."""

from haltlab.validation.figures import FIGURES    # first: it imports s4_figures at its end
from haltlab.kernel.policies import Bringup
from haltlab.report.reproduce import evaluate
from haltlab.scenarios.kexec_x86 import X86KexecConfig, run_kexec_x86


def _alone(bringup):
    return run_kexec_x86(X86KexecConfig(profile="xeon-gold-6154", bringup=bringup, kernel="v5.17"))


def test_the_rows_come_after_s3_and_carry_the_threads_figures():
    ids = [f.id for f in FIGURES]
    s4 = [f for f in FIGURES if f.thread == "S4"]
    assert [f.id for f in s4] == ["S4-smp-init-init-sipi", "S4-smp-init-park", "S4-park-speedup"]
    assert ids.index(s4[0].id) > max(i for i, f in enumerate(FIGURES) if f.thread == "S3")
    assert [f.seed_value for f in s4] == [0.210, 0.080, 0.210 / 0.080]
    assert all("210ms with cpu park while 80ms without" in f.seed_source for f in s4[:1])
    assert all("swaps" in f.seed_source for f in s4[:2])


def test_model_values_are_run_kexec_x86s_on_s4s_machine():
    stock, park = _alone(Bringup.INIT_SIPI), _alone(Bringup.PARK_SPIN)
    rows = {f.id: evaluate(f, "auto") for f in FIGURES if f.thread == "S4"}
    assert rows["S4-smp-init-init-sipi"]["model_value"] == stock["smp_init_ns"] / 1e9
    assert rows["S4-smp-init-park"]["model_value"] == park["smp_init_ns"] / 1e9
    assert rows["S4-park-speedup"]["model_value"] == stock["smp_init_ns"] / park["smp_init_ns"]
    assert rows["S4-smp-init-init-sipi"]["model_over_seed"] == stock["smp_init_ns"] / 1e9 / 0.210
    assert park["smp_init_ns"] < stock["smp_init_ns"]              # parking is the faster, as S4 meant
    note = rows["S4-smp-init-park"]["note"]
    assert "v5.17" in note and "woken by park" in note and "calibrates its delay loop" in note
    assert "woken by init-sipi" in rows["S4-smp-init-init-sipi"]["note"]
    assert all(r["lab_value"] is None and "not S4's 72-CPU Xeon" in r["lab_note"]
               for k, r in rows.items() if k != "S4-park-speedup")
