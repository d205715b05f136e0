"""simple-net's gradient oracle: hand-derived gradients against JAX and finite differences.

    from oracle import check_network, check_gradient, check_activation, check_loss
    report = check_network(net, X, T)    # report.ok; print(report) shows where, if wrong

Importing this package switches JAX to float64 (and checks that it took) before any array is
made. Without JAX installed the package still imports, so that what needs no JAX works
(``oracle.snapshots`` comparing a snapshot, ``oracle.report``); the checks then raise
ImportError when asked for.
"""

from .report import Report, Row

try:
    from .jax_support import assert_x64  # noqa: F401  (first: x64 before any JAX array)
except ModuleNotFoundError as _missing:
    if _missing.name != "jax":
        raise
    _NO_JAX = _missing

    def __getattr__(name: str):
        if name in __all__:
            raise ImportError(f"oracle.{name} needs JAX, which is not installed (pip install "
                              "'simple-net[oracle]'); comparing snapshots (oracle.snapshots) "
                              "does not") from _NO_JAX
        raise AttributeError(f"module 'oracle' has no attribute {name!r}")
else:
    from .function_check import check_activation, check_gradient, check_loss
    from .hvp_check import check_double_backward, check_hvp
    from .layers_check import check_layers
    from .network_check import check_network
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
