"""haltlab.checks: what the explorer's verdicts are judged by.

`liveness` judges a recorded state graph for weakly fair runs that never make
progress (the lasso of an `eventually` violation). It depends on nothing but
the graph's edges, so it is tested against brute force on small graphs.
"""

from haltlab.checks.liveness import Lasso, Liveness, fair_nonprogress_cycle, strongly_connected

__all__ = ["Lasso", "Liveness", "fair_nonprogress_cycle", "strongly_connected"]
