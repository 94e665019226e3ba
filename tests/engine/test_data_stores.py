"""Data stores in models brought from other teams (a CRM, a service desk tool): the engine keeps no data in
them, so it sets them and their data associations aside at deploy, says so as a warning located like a
problem, and runs the process as drawn otherwise. The stored source keeps them for the diagram."""
from __future__ import annotations

from click.testing import CliRunner

from usm_engine.api.cli import main
from tests.conftest import FIXTURES, bearer, deploy, fixture_files

ANYONE = lambda lane: True  # noqa: E731 - authorization is the API's concern, not these tests'
MODEL = "camunda/data_store.bpmn"


def test_the_process_deploys_with_a_warning_per_data_store_and_runs(engine):
    created, [item] = engine.deploy(fixture_files(MODEL), "designer")
    assert created and item["key"] == "data_store_incident"
    assert [(w["line"], w["element_id"]) for w in item["warnings"]] == [(6, "DataStore_Crm"),
                                                                       (21, "Reference_Tickets")]
    crm, tickets = item["warnings"]
    assert "data store 'CRM' (DataStore_Crm) is kept as documentation only" in crm["message"]
    assert "its 1 data association is ignored" in crm["message"]
    assert "data store reference 'Service desk tool' (Reference_Tickets)" in tickets["message"]

    case, _ = engine.start_case("data_store_incident", "system")
    [task] = case["tasks"]
    assert task["element_id"] == "Activity_Register"
    done = engine.complete_task(task["id"], {"summary": "mail is down"}, "desk", ANYONE)
    assert done["status"] == "completed" and not done.get("incident")

    _, source = engine.definition_source("data_store_incident", 1)
    assert b'<bpmn:dataStore id="DataStore_Crm"' in source and b"Association_ReadCustomer" in source


def test_deploying_the_same_file_again_repeats_its_warnings(engine):
    engine.deploy(fixture_files(MODEL), "designer")
    created, [item] = engine.deploy(fixture_files(MODEL), "designer")
    assert not created and len(item["warnings"]) == 2


def test_the_api_returns_the_warnings_of_a_validation_and_of_a_deployment(client):
    with (FIXTURES / MODEL).open("rb") as handle:
        validated = client.post("/api/v1/definitions/validate", data={"files": [(handle, "data_store.bpmn")]},
                                content_type="multipart/form-data", headers=bearer("designer"))
    assert validated.status_code == 200
    body = validated.get_json()
    assert body["valid"] is True and [w["element_id"] for w in body["warnings"]] == ["DataStore_Crm",
                                                                                      "Reference_Tickets"]
    deployed = deploy(client, MODEL)
    assert deployed.status_code == 201
    assert len(deployed.get_json()["items"][0]["warnings"]) == 2


def test_usm_validate_prints_the_warnings_and_succeeds():
    result = CliRunner().invoke(main, ["validate", str(FIXTURES / MODEL)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("data_store.bpmn:6: DataStore_Crm: warning: data store 'CRM'")
    assert lines[1].startswith("data_store.bpmn:21: Reference_Tickets: warning: data store reference")
    assert lines[2].startswith("ok: 1 files, 1 executable processes")


def test_the_conformance_report_counts_a_file_deployed_with_warnings():
    from usm_engine.engine.conformance import Report, check

    result = check(FIXTURES / MODEL, FIXTURES)
    assert result.outcome == "deployed" and not result.faults
    assert result.warnings == ["data store reference … is kept as documentation only",
                               "data store … is kept as documentation only"]
    assert Report([result]).markdown().startswith("# Conformance: 1 files, 1 deployed (1 with warnings)")
