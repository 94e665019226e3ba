"""`usm conformance` finds a business rule task's decision in a .dmn file anywhere under the folder, nearest
to the model first, as it finds a called process (ProcessIndex), and deploys the model with that file."""
from __future__ import annotations

from tests.conftest import FIXTURES
from tests.engine.test_deployment import DMN  # the risk table (decision 'risk_level')
from usm_engine.engine.conformance import ProcessIndex, bundle_for, run

MODEL = "camunda_spiff_decision.bpmn"


def tree(root):
    (root / "models" / "review").mkdir(parents=True)
    (root / "models" / "tables").mkdir(parents=True)
    (root / "elsewhere").mkdir()
    (root / "models" / "review" / MODEL).write_bytes((FIXTURES / MODEL).read_bytes())
    (root / "models" / "tables" / "risk.dmn").write_bytes(DMN)
    # Further away, and with a decision of the same id: the nearer file is the one taken.
    (root / "elsewhere" / "risk.dmn").write_bytes(DMN.replace(b"high", b"far"))
    return root / "models" / "review" / MODEL


def test_the_nearest_dmn_defining_the_decision_is_uploaded_with_the_model(tmp_path):
    model = tree(tmp_path)
    bundle = bundle_for(model, ProcessIndex(tmp_path, sorted(tmp_path.rglob("*.bpmn"))))
    assert [name for name, _ in bundle] == [MODEL, "risk.dmn"]
    assert bundle[1][1] == DMN


def test_the_model_then_deploys_and_its_case_reaches_the_decision(tmp_path):
    tree(tmp_path)
    report = run(tmp_path)
    [result] = report.results
    assert result.outcome == "deployed", result.reasons
    [case] = report.cases
    # The decision runs: its table reads 'amount', which nothing in the model sets, so the run starts the
    # case with it (a start input, typed by the column's entries), and the case completes.
    assert (case.outcome, case.start_inputs) == ("completed", ["amount"])
    assert not report.faults
