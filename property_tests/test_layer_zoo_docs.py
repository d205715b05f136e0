"""docs/layer_zoo.md is generated from check_vjp's real reports, and stays up to date.

Regenerate it with ``python -m property_tests.layer_zoo_docs``. Numbers at the rounding level
are masked before comparing (``zoo_docs.normalise``): they differ between BLAS builds and CPUs.
"""

import re

import pytest

pytest.importorskip("jax")

from .layer_zoo import LAYERS  # noqa: E402
from .layer_zoo_docs import DOC, HEADER, render_section, render_table  # noqa: E402
from .zoo_docs import normalise  # noqa: E402

STALE = "docs/layer_zoo.md is out of date: run `python -m property_tests.layer_zoo_docs`"


@pytest.fixture(scope="module")
def page():
    assert DOC.exists(), STALE
    return normalise(DOC.read_text())


def test_the_layer_zoo_page_has_one_section_per_layer_in_zoo_order(page):
    assert page.startswith(normalise(HEADER)), STALE
    assert re.findall(r"^## (\S+)$", page, flags=re.MULTILINE) == list(LAYERS), STALE


def test_the_layer_zoo_table_shows_every_current_verdict(page):
    assert normalise(render_table()) in page, STALE


@pytest.mark.parametrize("name", list(LAYERS))
def test_the_layer_zoo_page_shows_the_current_report_on(name, page):
    assert normalise(render_section(name, LAYERS[name])) in page, STALE
