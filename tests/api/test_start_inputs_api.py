"""Over HTTP: the deploy response warns of each read of a variable nothing in the model sets, the
definition shows its start inputs, and a client that starts cases with them gets both branches."""
from __future__ import annotations

from tests.conftest import APPROVAL, bearer, deploy

SYSTEM = bearer("system")


def test_the_definition_shows_its_start_inputs_and_a_case_started_with_them_runs(client):
    response = deploy(client, "start_inputs/invoice_inputs.bpmn")
    assert response.status_code == 201
    [item] = response.get_json()["items"]
    assert [w["element_id"] for w in item["warnings"]] == ["approved_gw", "approved_gw", "size_gw", "review"]

    shown = client.get("/api/v1/definitions/invoice_inputs", headers=SYSTEM).get_json()
    assert shown["start_inputs"]["required"] == ["amount", "approved", "region", "reviewers"]
    assert shown["start_inputs"]["properties"]["region"] == {"type": "string", "enum": ["EU", "US"]}

    for data, status in (({"approved": True, "region": "EU", "amount": 20}, "completed"),
                         ({"approved": False, "reviewers": ["ann"]}, "completed"),
                         ({}, "error")):
        case = client.post("/api/v1/cases", json={"definition": "invoice_inputs", "data": data},
                           headers=SYSTEM).get_json()
        assert case["status"] == status, case


def test_a_definition_whose_forms_set_what_it_reads_has_empty_start_inputs(client):
    # approval's gateway reads `approved`, a field of its decide form.
    assert deploy(client, *APPROVAL).status_code == 201
    shown = client.get("/api/v1/definitions/approval", headers=SYSTEM).get_json()
    assert shown["start_inputs"] == {"type": "object", "properties": {}, "required": []}
