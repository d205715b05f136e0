"""simple-net's gradient oracle: hand-derived gradients against JAX and finite differences.

    from oracle import check_network, check_gradient, check_activation, check_loss
    report = check_network(net, X, T)    # report.ok; print(report) shows where, if wrong

Importing this package switches JAX to float64 (and checks that it took) before any array is
made.
"""

from .function_check import check_activation, check_gradient, check_loss
from .hvp_check import check_double_backward, check_hvp
from .jax_support import assert_x64  # noqa: F401  (first: x64 before any JAX array)
from .layers_check import check_layers
from .network_check import check_network
from .report import Report, Row
from .vjp_check import check_vjp

__all__ = [
    "Report",
    "Row",
    "check_activation",
    "check_double_backward",
    "check_gradient",
    "check_hvp",
    "check_layers",
    "check_loss",
    "check_network",
    "check_vjp",
]
