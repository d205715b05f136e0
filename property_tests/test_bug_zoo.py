"""The suite has teeth: every mutant of the bug zoo is caught, and the oracle says where.

For each mutant the network properties (``properties.NETWORK_PROPERTIES``) are run against it,
in order, by Hypothesis, over the networks where its mistake can show (``Mutant.habitat``: e.g.
a sigmoid somewhere for a wrong sigmoid', two layers for an update made too early). The first
property that fails has caught it; its shrunk case goes to ``check_network``, whose first
failing term must be the mutant's term at the layer ``zoo.expected_location`` computes (an
independent second opinion that uses the reference's own functions as the judge).

The control: ``TextbookNetwork``, the base of the class mutants, passes every property and the
oracle, so what the mutants trip over is their one changed line.
"""

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from oracle import check_network
from oracle.strategies import cases, network_specs

from .profiles import budget
from .properties import NETWORK_PROPERTIES
from .reproduce import PropertyFailure
from .zoo import MUTANTS, TextbookNetwork, expected_location

ZOO_EXAMPLES = max(40, budget(0.5))
"""Examples per property and mutant. At least 40 whatever the profile: the zoo must be caught
deterministically (the search is derandomised), and most mutants fall on the first example."""


def _search(prop, strategy, build):
    """Run ``prop`` under Hypothesis; return the shrunk ``PropertyFailure``, or None."""

    @settings(max_examples=ZOO_EXAMPLES, derandomize=True, database=None,
              report_multiple_bugs=False, print_blob=False,
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(case=strategy, data=st.data())
    def run(case, data):
        prop(case, build, data)

    try:
        run()
    except PropertyFailure as failure:
        return failure
    return None


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_mutant_is_caught_and_the_oracle_names_its_layer_and_term(name):
    mutant = MUTANTS[name]
    strategy = cases(network_specs(**mutant.habitat), min_batch=mutant.min_batch)
    build = mutant.builder()
    for prop in NETWORK_PROPERTIES.values():
        failure = _search(prop, strategy, build)
        if failure is not None:
            break
    else:
        pytest.fail(f"mutant {name!r} ({mutant.bug}) survived every property")
    prop_name = prop.__name__
    case = failure.case
    report = check_network(mutant.build(case), case.X, case.T)
    where = expected_location(mutant, case)
    first = report.first_failure
    assert not report.ok, f"{prop_name} caught {name!r} but the oracle passes it:\n{report}"
    assert where is not None and where[1] == mutant.term, (
        f"{name!r} shows at {where} on the case {prop_name} found, not in a {mutant.term!r} term")
    assert (first.layer, first.term) == where, (
        f"{name!r}: the oracle names layer {first.layer} {first.term!r}, expected {where}; "
        f"caught by {prop_name} on {case!r}\n{report}")


@pytest.mark.parametrize("prop_name", list(NETWORK_PROPERTIES))
def test_the_textbook_network_behind_the_mutants_passes_every_property(prop_name):
    prop = NETWORK_PROPERTIES[prop_name]
    failure = _search(prop, cases(), lambda case: case.network(TextbookNetwork))
    assert failure is None, str(failure)


PINNED = {repr(m.pinned): m.pinned for m in MUTANTS.values()}


@pytest.mark.parametrize("key", list(PINNED), ids=[f"case{i}" for i in range(len(PINNED))])
def test_each_pinned_zoo_case_is_passed_by_the_textbook_network_and_the_reference(key):
    case = PINNED[key]
    for cls in (TextbookNetwork, None):
        net = case.network() if cls is None else case.network(cls)
        report = check_network(net, case.X, case.T)
        assert report.ok, str(report)
