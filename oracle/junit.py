"""JUnit XML for CI systems: reports as test suites, each checked term as a test case.

    write_junit("gradcheck.xml", {"my_layers:affine_backward": report})
    python -m oracle vjp my_layers:affine_forward my_layers:affine_backward ... --junit out.xml

One ``<testsuite>`` per report (named by its key), one ``<testcase>`` per row (an input of
``check_vjp``, a layer's term of ``check_network``):

- FAIL -> ``<failure>`` whose message is the row's one-line description and whose text is the
  whole report (table and notes);
- doubt -> ``<skipped>`` with the reason (the sources of truth could not confirm each other:
  neither a pass nor the user's fault), or ``<failure>`` when the report is strict;
- pass and kink -> a passing test case (a kink's count is in its ``<system-out>``).

The report's headline, which sources judged, and its notes are the suite's properties and
``<system-out>``. Test suites written by pytest (``--junitxml``) are the other route: there the
plugin adds each test's check counts as a ``gradcheck`` property.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from .report import Report, Row

__all__ = ["junit_xml", "write_junit"]


def _case(suite: ET.Element, name: str, row: Row, report: Report) -> str:
    """Append ``row``'s test case; return its outcome ("passed", "failure", "skipped")."""
    case = ET.SubElement(suite, "testcase", classname=name,
                         name=f"{row.where} ({row.scope})")
    if row.status == "FAIL" or (row.status == "doubt" and report.strict):
        failure = ET.SubElement(case, "failure", message=row.describe(),
                                type="wrong gradient" if row.status == "FAIL" else "doubt")
        failure.text = str(report)
        return "failure"
    if row.status == "doubt":
        ET.SubElement(case, "skipped", message=f"the check itself is in doubt: "
                                               f"{row.describe()}")
        return "skipped"
    out = ET.SubElement(case, "system-out")
    out.text = (f"{row.status}: max abs err {row.max_abs_err:.1e}, max rel err "
                f"{row.max_rel_err:.1e}, {row.kinks} kink entries, sources "
                f"{'+'.join(row.sources) or 'none'}")
    return "passed"


def junit_xml(reports: Report | Mapping[str, Report], *, name: str = "gradcheck") -> str:
    """The JUnit XML text for ``reports`` (a report, or reports by suite name).

    Returns:
        A UTF-8 XML document: ``<testsuites>`` holding one ``<testsuite>`` per report, with the
        counts (tests, failures, errors, skipped) that CI systems read.
    """
    if isinstance(reports, Report):
        reports = {reports.title: reports}
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite_name, report in reports.items():
        suite = ET.SubElement(root, "testsuite", name=suite_name)
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="headline", value=report.headline)
        ET.SubElement(props, "property", name="judged_by", value=report.judged_by)
        ET.SubElement(props, "property", name="strict", value=str(report.strict).lower())
        outcomes = [_case(suite, suite_name, row, report) for row in report.rows]
        counts = {"tests": len(outcomes), "failures": outcomes.count("failure"), "errors": 0,
                  "skipped": outcomes.count("skipped")}
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        out = ET.SubElement(suite, "system-out")
        out.text = str(report)
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(path: str | os.PathLike, reports: Report | Mapping[str, Report], *,
                name: str = "gradcheck") -> Path:
    """Write ``junit_xml(reports)`` to ``path`` (folders made as needed); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(reports, name=name), encoding="utf-8")
    return path
