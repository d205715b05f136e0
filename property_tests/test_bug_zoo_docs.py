"""docs/bug_zoo.md is generated from the oracle's real reports, and stays up to date.

Regenerate it with ``python -m property_tests.zoo_docs``. Numbers at the rounding level
(< 1e-11) are masked before comparing: they differ between BLAS builds and CPUs.
"""

import re

import pytest

from .zoo import MUTANTS
from .zoo_docs import DOC, HEADER, normalise, render_section, render_table

STALE = "docs/bug_zoo.md is out of date: run `python -m property_tests.zoo_docs`"


@pytest.fixture(scope="module")
def page():
    assert DOC.exists(), STALE
    return normalise(DOC.read_text())


def test_the_bug_zoo_page_has_one_section_per_mutant_in_catalogue_order(page):
    assert page.startswith(normalise(HEADER)), STALE
    assert re.findall(r"^## (\S+)$", page, flags=re.MULTILINE) == list(MUTANTS), STALE


def test_the_bug_zoo_table_says_where_the_oracle_points_for_every_mutant(page):
    assert normalise(render_table()) in page, STALE


@pytest.mark.parametrize("name", list(MUTANTS))
def test_the_bug_zoo_page_shows_the_oracles_current_report_on(name, page):
    assert normalise(render_section(MUTANTS[name])) in page, STALE
