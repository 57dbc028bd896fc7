"""A run and its gate for a CI system: JUnit XML (``--junit``) and Markdown (``--summary``).

JUnit: one testcase per variant (its numbers; it passes) and one per gate check (it fails
with the numbers when the check fails; a check with nothing to compare against is skipped).
Markdown: the results table, the gate's verdicts and the recommendation, as a CI job summary
(GitHub's ``$GITHUB_STEP_SUMMARY``) shows it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from assay.analysis.gate import GateCheck, GateResult
from assay.analysis.results import RunReport
from assay.analysis.summary import VariantSummary

# XML 1.0 cannot hold these code points at all, escaped or not.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(report: RunReport, gate: GateResult) -> str:
    cases = [_variant_case(report, v) for v in report.variants]
    cases += [_gate_case(c) for c in gate.checks]
    failures = sum(1 for c in gate.checks if not c.passed)
    skipped = sum(1 for c in gate.checks if c.skipped)
    suite = ET.Element(
        "testsuite",
        name=_xml_text(f"assay run {report.run_id}"),
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    suite.extend(cases)
    root = ET.Element("testsuites", name="assay", tests=str(len(cases)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _variant_case(report: RunReport, v: VariantSummary) -> ET.Element:
    case = ET.Element("testcase", classname="assay.variants", name=_xml_text(v.variant))
    out = ET.SubElement(case, "system-out")
    out.text = _xml_text(
        f"{report.primary_metric}: {_score(v)}; scored/unscored/errors {_counts(v)}; "
        f"$ per 1k requests {_cost(v)}"
    )
    return case


def _gate_case(check: GateCheck) -> ET.Element:
    name = f"{check.check}: {check.variant}" if check.variant else check.check
    case = ET.Element("testcase", classname="assay.gate", name=_xml_text(name))
    if check.skipped:
        ET.SubElement(case, "skipped", message=_xml_text(check.detail))
    elif not check.passed:
        failure = ET.SubElement(case, "failure", message=_xml_text(check.detail))
        failure.text = _xml_text(f"{name}: {check.detail}")
    else:
        ET.SubElement(case, "system-out").text = _xml_text(check.detail)
    return case


def summary_markdown(report: RunReport, gate: GateResult) -> str:
    lines = [f"## Assay run `{report.run_id}`", ""]
    lines += _results_table(report)
    if gate.checks:
        lines += ["", *_gate_lines(gate)]
    lines += ["", f"**Recommendation:** {_md(report.recommendation)}", ""]
    return "\n".join(lines)


def _results_table(report: RunReport) -> list[str]:
    rows = [
        f"| variant | {_md(report.primary_metric)} (95% CI) | scored / unscored / errors "
        "| $ per 1k requests | latency p50 |",
        "|---|---|---|---|---|",
    ]
    for v in report.variants:
        p50 = "–" if v.latency_p50_ms is None else f"{v.latency_p50_ms:,.0f} ms"
        rows.append(f"| {_md(v.variant)} | {_score(v)} | {_counts(v)} | {_cost(v)} | {p50} |")
    return rows


def _gate_lines(gate: GateResult) -> list[str]:
    verdict = "passed" if gate.passed else "failed"
    lines = [f"**Gate {verdict}**", ""]
    if gate.baseline:
        lines += [f"Compared with baseline run {_md(gate.baseline)}.", ""]
    for c in gate.checks:
        mark = "skipped" if c.skipped else ("pass" if c.passed else "**FAIL**")
        who = f" {_md(c.variant)}" if c.variant else ""
        lines.append(f"- {mark}: {_md(c.check)}{who}: {_md(c.detail)}")
    return lines


def _score(v: VariantSummary) -> str:
    s = v.score
    if s is None or s.mean is None:
        return "no score"
    if s.ci_low is None or s.ci_high is None:
        return f"{s.mean:.3f}"
    return f"{s.mean:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def _counts(v: VariantSummary) -> str:
    s = v.score
    if s is None:
        return f"0 / 0 / {v.n_errors}"
    return f"{s.n_scored} / {s.n_unscored} / {s.n_errors}"


def _cost(v: VariantSummary) -> str:
    return "unknown" if v.cost_per_1k_usd is None else f"${v.cost_per_1k_usd:,.4f}"


def _md(text: str) -> str:
    """Text in a Markdown table cell or list item: no control codes, no markup."""
    text = _CONTROL.sub(" ", text)
    return re.sub(r"([\\`*_\[\]<|])", r"\\\1", text)
