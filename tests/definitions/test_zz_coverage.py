"""Item 7: how much of each diagram the test suite visits. Runs after the scenarios (file order); any
scenario not run in this session is run here first, so the figures never depend on test selection.
The report is printed (pytest -s, or in the captured output of a failure) and written to
test-output/definitions-coverage.txt."""
from __future__ import annotations

from pathlib import Path

from tests.definitions.scenarios import SCENARIOS
from tests.definitions.support import COVERAGE, SCENARIOS_RUN, models
from tests.definitions.test_workflows import run_scenario

REPORT = Path(__file__).resolve().parents[2] / "test-output" / "definitions-coverage.txt"


def format_report(figures: dict) -> str:
    lines = [f"{'definition':28} {'flow nodes':>14} {'sequence flows':>16}"]
    total = [0, 0, 0, 0]
    for key in sorted(figures):
        nodes, all_nodes, flows, all_flows = figures[key]
        total = [a + b for a, b in zip(total, figures[key], strict=True)]
        lines.append(f"{key:28} {nodes:>4}/{all_nodes:<4} {100 * nodes / all_nodes:5.1f}% "
                     f"{flows:>4}/{all_flows:<4} {100 * flows / all_flows if all_flows else 100:5.1f}%")
    lines.append(f"{'all':28} {total[0]:>4}/{total[1]:<4} {100 * total[0] / total[1]:5.1f}% "
                 f"{total[2]:>4}/{total[3]:<4} {100 * total[2] / total[3]:5.1f}%")
    return "\n".join(lines)


def test_the_suite_visits_every_flow_node_and_sequence_flow(app_factory):
    for name in SCENARIOS:
        if name not in SCENARIOS_RUN:
            run_scenario(app_factory, name)
    all_models = models()
    report = format_report(COVERAGE.report(all_models))
    print("\ndiagram coverage of definitions/ by tests/definitions\n" + report)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(report + "\n")
    assert COVERAGE.missing(all_models) == {}, report
