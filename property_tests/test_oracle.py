"""The oracle itself: ``check_network`` finds no fault in a correct network.

Few examples: a fresh network shape costs ``check_network`` ~1-3 s of eager-JAX compilation
(the other properties use ``padded_autodiff`` instead), so the shapes are kept small here, which
lets the compiled primitives be reused from one example to the next. Its false FAILs, once
found, move to ``test_oracle_known_issues.py``.
"""

from hypothesis import given, settings

from oracle import check_network
from oracle.strategies import cases, network_specs

from .profiles import budget
from .reproduce import PropertyFailure


@settings(max_examples=budget(0.1))
@given(case=cases(network_specs(max_depth=2, max_width=3), max_batch=2))
def test_the_oracle_passes_any_correct_network(case):
    report = check_network(case.network(), case.X, case.T)
    if not report.ok:
        raise PropertyFailure(f"check_network reports a fault in the correct reference: "
                              f"{report.headline}", case)
