"""End-to-end scenarios through the HTTP API. Each scenario drives cases to completion with a
form-reading client and checks the call record; test_workflows.py runs them, and the diagram
coverage test runs any that were not run in this session before it reports."""
from __future__ import annotations

from tests.definitions.support import AGREEMENT, REQUEST, STATIC, Driver, completed_elements

SCENARIOS: dict[str, tuple] = {}   # name -> (function, needs a clock)


def scenario(name: str, clock: bool = False):
    def register(function):
        SCENARIOS[name] = (function, clock)
        return function
    return register


TOP = ["registered", "in progress", "workflow fulfilled", "closed"]
FORKED = ["registered", "in progress", "process fulfilled", "closed"]
RISK_TOP = ["registered", "in progress", "known error", "workflow fulfilled", "closed"]
RISK_FORKED = ["registered", "in progress", "known error", "process fulfilled", "closed"]


def finish(d: Driver, case: dict, decisions: dict | None = None) -> dict:
    done = d.drive(case["id"], decisions)
    assert done["status"] == "completed", (done["status"], done.get("incident"), done["tasks"])
    return done


def shape(call: dict) -> list:
    """The tree of linked calls: [type, workflow, [children...]]."""
    return [call["type"], call["workflow"], [shape(child) for child in call["children"]]]


def check_record(call: dict, prefix: str, history: list, parent: str | None = None) -> None:
    assert call["number"].startswith(prefix + "-") and len(call["number"]) == len(prefix) + 7, call["number"]
    assert call["history"] == history and call["status"] == "closed", call["history"]
    assert call["parent"] == parent
    assert call["impact"] and call["urgency"] and call["priority"] in ("P1", "P2", "P3", "P4")
    for child in call["children"]:
        expected = RISK_FORKED if child["type"] == "risk" else FORKED
        check_record(child, {"wish": "WSH", "rfc": "RFC", "service request": "SRQ", "incident": "INC"}[child["type"]],
                     expected, call["number"])


WF1_TREE = ["wish", "WF1", [["rfc", "WF1", [["service request", "WF1", []]]]]]


# --- static workflows ----------------------------------------------------------------------------

@scenario("static WF1")
def static_wf1(d: Driver):
    done = finish(d, d.start(STATIC["WF1"]))
    assert done["workflow"] == "WF1" and shape(done["data"]["call"]) == WF1_TREE
    check_record(done["data"]["call"], "WSH", TOP)
    # the diagram page draws each definition the case ran, with the path it took there
    diagrams = d.app.extensions["usm_engine"].case_diagram(done["id"])["diagrams"]
    assert [x["definition"] for x in diagrams] == [
        STATIC["WF1"], "usm-agree", "usm-frame-intake", "usm-frame-classify", "usm-change", "usm-operate",
        "usm-frame-review", "usm-frame-close"]
    for diagram in diagrams:
        assert diagram["current"] == [] and diagram["executed"] and diagram["flows"], diagram["definition"]
        assert all(f'id="{element}"' in diagram["bpmn"] for element in diagram["executed"] + diagram["flows"])


@scenario("static WF2")
def static_wf2(d: Driver):
    done = finish(d, d.start(STATIC["WF2"]))
    assert done["workflow"] == "WF2"
    assert shape(done["data"]["call"]) == ["rfc", "WF2", [["service request", "WF2", []]]]
    check_record(done["data"]["call"], "RFC", TOP)


@scenario("static WF3: a route the workflow does not allow brings Prepare recovery back")
def static_wf3(d: Driver):
    case = d.start(STATIC["WF3"])
    assert case["workflow"] == "WF3"  # known from the start: the path is fixed
    done = finish(d, case, {"recovery_route": ["operate", "change"]})
    prepared = [e for e in completed_elements(d, case["id"]) if e == "Activity_PrepareRecovery"]
    assert prepared == ["Activity_PrepareRecovery"] * 2
    assert shape(done["data"]["call"]) == ["incident", "WF3", [["rfc", "WF3", [["service request", "WF3", []]]]]]
    check_record(done["data"]["call"], "INC", TOP)


@scenario("static WF4")
def static_wf4(d: Driver):
    done = finish(d, d.start(STATIC["WF4"]), {"recovery_route": "operate"})
    assert done["workflow"] == "WF4"
    assert shape(done["data"]["call"]) == ["incident", "WF4", [["service request", "WF4", []]]]


@scenario("static WF5")
def static_wf5(d: Driver):
    done = finish(d, d.start(STATIC["WF5"]))
    assert done["workflow"] == "WF5" and shape(done["data"]["call"]) == ["service request", "WF5", []]
    check_record(done["data"]["call"], "SRQ", TOP)


@scenario("static WF6: a follow-up the workflow does not allow brings Select measure back")
def static_wf6(d: Driver):
    case = d.start(STATIC["WF6"])
    done = finish(d, case, {"measure_call": ["rfc", "wish"]})
    assert completed_elements(d, case["id"]).count("Activity_SelectMeasure") == 2
    assert done["workflow"] == "WF6"
    assert shape(done["data"]["call"]) == [
        "risk", "WF6", [["wish", "WF6", [["rfc", "WF6", [["service request", "WF6", []]]]]]]]
    check_record(done["data"]["call"], "RSK", RISK_TOP)


@scenario("static WF7")
def static_wf7(d: Driver):
    done = finish(d, d.start(STATIC["WF7"]), {"measure_call": "rfc"})
    assert shape(done["data"]["call"]) == ["risk", "WF7", [["rfc", "WF7", [["service request", "WF7", []]]]]]


@scenario("static WF8")
def static_wf8(d: Driver):
    done = finish(d, d.start(STATIC["WF8"]), {"measure_call": "service request"})
    assert shape(done["data"]["call"]) == ["risk", "WF8", [["service request", "WF8", []]]]


# --- dynamic: started on the process of the call type ---------------------------------------------

@scenario("dynamic WF1 from usm-agree")
def dynamic_agree(d: Driver):
    case = d.start("usm-agree")
    assert case["workflow"] == "WF1"
    done = finish(d, case)
    assert shape(done["data"]["call"]) == WF1_TREE
    check_record(done["data"]["call"], "WSH", TOP)


@scenario("dynamic WF2 from usm-change")
def dynamic_change(d: Driver):
    done = finish(d, d.start("usm-change"))
    assert done["workflow"] == "WF2" and shape(done["data"]["call"]) == ["rfc", "WF2", [["service request", "WF2", []]]]


@scenario("dynamic WF3 and WF4 from usm-recover: the workflow is known at the fork")
def dynamic_recover(d: Driver):
    case = d.start("usm-recover")
    assert case["workflow"] is None
    at_fork = d.drive(case["id"], until="Activity_PrepareRecovery")
    assert at_fork["workflow"] is None
    after = d.drive(case["id"], {"recovery_route": "change"}, until="Activity_AcceptCall")
    assert after["workflow"] == "WF3"  # decided at the fork, visible while the forked RFC runs
    done = finish(d, case, {"recovery_route": "change"})
    assert done["workflow"] == "WF3"
    assert shape(done["data"]["call"]) == ["incident", "WF3", [["rfc", "WF3", [["service request", "WF3", []]]]]]
    done = finish(d, d.start("usm-recover"), {"recovery_route": "operate"})
    assert done["workflow"] == "WF4"
    assert shape(done["data"]["call"]) == ["incident", "WF4", [["service request", "WF4", []]]]
    check_record(done["data"]["call"], "INC", TOP)


@scenario("dynamic WF3 from usm-recover: both a service request and a change")
def dynamic_recover_both(d: Driver):
    done = finish(d, d.start("usm-recover"), {"recovery_route": "both"})
    assert done["workflow"] == "WF3"
    assert shape(done["data"]["call"]) == ["incident", "WF3", [["service request", "WF3", []],
                                                                ["rfc", "WF3", [["service request", "WF3", []]]]]]


@scenario("dynamic WF5 from usm-operate")
def dynamic_operate(d: Driver):
    done = finish(d, d.start("usm-operate"))
    assert done["workflow"] == "WF5" and shape(done["data"]["call"]) == ["service request", "WF5", []]


@scenario("dynamic WF6, WF7, WF8 from usm-improve")
def dynamic_improve(d: Driver):
    for measure, wf, tree in [
            ("wish", "WF6", [["wish", "WF6", [["rfc", "WF6", [["service request", "WF6", []]]]]]]),
            ("rfc", "WF7", [["rfc", "WF7", [["service request", "WF7", []]]]]),
            ("service request", "WF8", [["service request", "WF8", []]])]:
        case = d.start("usm-improve")
        at_cause = d.drive(case["id"], until="Activity_SelectMeasure")
        assert at_cause["data"]["call"]["status"] == "known error" and at_cause["workflow"] is None
        done = finish(d, case, {"measure_call": measure})
        assert done["workflow"] == wf and shape(done["data"]["call"]) == ["risk", wf, tree]
        check_record(done["data"]["call"], "RSK", RISK_TOP)


# --- the service desk intake ------------------------------------------------------------------------

CALL_PATHS = [  # call class, process started, call type, workflow, extra decisions
    ("incident", "usm-recover", "incident", "WF4", {"recovery_route": "operate"}),
    ("complaint", "usm-agree", "wish", "WF1", {}),
    ("outside agreement", "usm-agree", "wish", "WF1", {}),
    ("changes managed infrastructure", "usm-change", "rfc", "WF2", {}),
    ("no change to managed infrastructure", "usm-operate", "service request", "WF5", {}),
    ("risk", "usm-improve", "risk", "WF7", {"measure_call": "rfc"}),
]


def linked_cases(d: Driver, case_id: str, message: str) -> list[dict]:
    """The cases `case_id` started with `message`, checked against both trails."""
    children = d.children(case_id)
    started = {e["details"]["child_case"]: e["details"] for e in d.trail(case_id)
               if e["type"] == "case_linked" and "child_case" in e["details"]}
    assert set(started) == {c["id"] for c in children}
    found = [c for c in children if started[c["id"]]["message"] == message]
    for child in found:
        assert child["parent_case"] == case_id
        [link] = [e["details"] for e in d.trail(child["id"])
                  if e["type"] == "case_linked" and "parent_case" in e["details"]]
        assert link == {"parent_case": case_id, "message": message}
    return found


@scenario("usm-call: every branch of the classification tree starts its process as a linked case")
def from_call(d: Driver):
    for call_class, key, call_type, wf, extra in CALL_PATHS:
        case = d.call_received()
        assert case["definition"] == "usm-call"
        handed = finish(d, case, {"call_class": call_class})
        assert handed["data"]["registration"] == {"requester": "Requester (Activity_RegisterAndClassifyCall)",
                                                  "summary": "Request (Activity_RegisterAndClassifyCall)",
                                                  "call_class": call_class, "raised_by": None}
        [linked] = linked_cases(d, case["id"], key)
        assert linked["data"]["request"]["requester"] == "Requester (Activity_RegisterAndClassifyCall)"
        assert linked["data"]["request"]["agreement"] == AGREEMENT
        done = finish(d, linked, extra)
        call = done["data"]["call"]
        assert done["workflow"] == wf and call["type"] == call_type and call["raised_by"] is None
        check_record(call, {"usm-recover": "INC", "usm-agree": "WSH", "usm-change": "RFC", "usm-operate": "SRQ",
                            "usm-improve": "RSK"}[key], RISK_TOP if call_type == "risk" else TOP)


# --- reclassification exits ------------------------------------------------------------------------

RECLASSIFY = [  # process, reclassified as, call class the service desk then gives, process started, workflow
    ("usm-change", "wish", "outside agreement", "usm-agree", "WF1"),
    ("usm-agree", "incident", "incident", "usm-recover", "WF4"),
    ("usm-recover", "wish", "complaint", "usm-agree", "WF1"),
    ("usm-operate", "rfc", "changes managed infrastructure", "usm-change", "WF2"),
    ("usm-improve", "service request", "no change to managed infrastructure", "usm-operate", "WF5"),
]


@scenario("reclassification: each process hands a wrongly typed call to the service desk, which starts the right one")
def reclassify(d: Driver):
    for key, new_type, call_class, new_key, wf in RECLASSIFY:
        case = d.start(key)
        done = finish(d, case, {"intake_decision": "reclassify", "reclassify_as": new_type})
        call = done["data"]["call"]
        assert call["status"] == "closed" and call["resolution"] == f"reclassified as {new_type}"
        assert call["history"] == ["registered", "closed"]
        assert call["handoffs"] == [{"type": new_type, "summary": "a test call"}]
        [desk] = linked_cases(d, case["id"], "call_received")
        assert desk["definition"] == "usm-call"
        assert desk["data"]["handoff"]["type"] == new_type and desk["data"]["handoff"]["raised_by"] == call["number"]
        handed = finish(d, desk, {"call_class": call_class})
        assert handed["data"]["registration"]["raised_by"] == call["number"]
        [linked] = linked_cases(d, desk["id"], new_key)
        assert linked["data"]["handoff"]["reason"] == "reclassified at intake"
        new = finish(d, linked, {"recovery_route": "operate"})
        assert new["workflow"] == wf and new["data"]["call"]["raised_by"] == call["number"]


@scenario("refusal: a requester who is not authorised")
def refuse(d: Driver):
    case = d.start("usm-operate")
    done = finish(d, case, {"intake_decision": "refuse"})
    assert done["data"]["call"]["resolution"] == "refused: requester not authorised"
    assert d.case(case["id"])["child_cases"] == []


# --- loops -----------------------------------------------------------------------------------------------

@scenario("usm-change loops: plan not agreed, tests not accepted, delivery not verified")
def change_loops(d: Driver):
    case = d.start("usm-change")
    done = finish(d, case, {"plan_agreed": [False, True], "tests_accepted": [False, True, True],
                            # reviews: Operate's (fork), Change's (not verified), Operate's again, Change's
                            "delivery_verified": [True, False, True, True]})
    steps = completed_elements(d, case["id"])
    assert steps.count("Activity_PlanAgree") == 2 and steps.count("Activity_PrepareChange") == 3
    assert steps.count("Activity_TestRelease") == 3 and steps.count("Activity_UpdateMIR") == 1
    call = done["data"]["call"]
    assert call["reviews_failed"] == 1 and len(call["children"]) == 2  # two deployments
    assert call["history"] == TOP


@scenario("usm-recover loops: the next solution team; delivery not verified")
def recover_loops(d: Driver):
    case = d.start("usm-recover")
    done = finish(d, case, {"solution_found": [False, False, True], "recovery_route": "operate",
                            "delivery_verified": [True, False, True, True]})
    call = done["data"]["call"]
    assert call["solution_teams"] == ["Next solution team (Activity_Analyze)"] * 2
    assert completed_elements(d, case["id"]).count("Activity_Analyze") == 3
    assert completed_elements(d, case["id"]).count("Activity_PrepareRecovery") == 2
    assert [c["type"] for c in call["children"]] == ["service request", "service request"]


@scenario("delivery not verified: back to the work in Agree, Operate and Improve")
def not_verified(d: Driver):
    case = d.start("usm-agree")
    # reviews: Operate's, Change's, Agree's (not verified), then the three again
    done = finish(d, case, {"delivery_verified": [True, True, False, True, True, True]})
    assert completed_elements(d, case["id"]).count("Activity_Negotiate") == 1
    assert [c["type"] for c in done["data"]["call"]["children"]] == ["rfc", "rfc"]
    case = d.start("usm-operate")
    finish(d, case, {"delivery_verified": [False, True]})
    assert completed_elements(d, case["id"]).count("Activity_ExecuteActivities") == 2
    case = d.start("usm-improve")
    finish(d, case, {"measure_call": "service request", "delivery_verified": [True, False, True, True]})
    assert completed_elements(d, case["id"]).count("Activity_SelectMeasure") == 2


@scenario("negotiation fails: the wish is closed without a change")
def negotiation_fails(d: Driver):
    case = d.start("usm-agree")
    done = finish(d, case, {"offer_agreed": False})
    call = done["data"]["call"]
    assert call["history"] == ["registered", "in progress", "closed"] and call["children"] == []
    assert "Activity_Realize" not in [e["element_id"] for e in d.trail(case["id"])]


# --- service levels -------------------------------------------------------------------------------------

SLA_HOSTS = [("usm-agree", "Activity_PlanAgree"), ("usm-change", "Activity_PrepareChange"),
             ("usm-recover", "Activity_Analyze"), ("usm-operate", "Activity_ExecuteActivities"),
             ("usm-improve", "Activity_DetermineCause")]


@scenario("service levels: the resolution target raises an escalation for the workflow coordinator", clock=True)
def escalation(d: Driver):
    for key, wait_at in SLA_HOSTS:
        case = d.start(key, {"request": {**REQUEST, "agreement": {**AGREEMENT, "service_levels": {"P1": "PT4H"}}}})
        d.drive(case["id"], {"impact": "high", "urgency": "high"}, until=wait_at)
        data = d.case(case["id"])["data"]
        assert data["call"]["priority"] == "P1" and data["call"]["resolution_target"] == "PT4H"
        d.clock.advance(hours=3)
        d.fire_timers()
        assert d.case(case["id"])["child_cases"] == []
        d.clock.advance(hours=2)
        assert d.fire_timers() >= 1
        [escalated] = d.children(case["id"])
        assert escalated["definition"] == "usm-escalation" and escalated["parent_case"] == case["id"]
        assert [t["name"] for t in escalated["tasks"]] == ["Handle escalation"]
        assert escalated["tasks"][0]["lane"] == "Workflow coordinator"
        assert escalated["data"]["escalation"]["priority"] == "P1"
        assert escalated["data"]["escalation"]["call"].split("-")[0] in ("WSH", "RFC", "INC", "SRQ", "RSK")
        assert finish(d, escalated)["status"] == "completed"
        assert d.case(case["id"])["status"] == "running"  # non-interrupting: the work goes on
        done = finish(d, case, {"recovery_route": "operate", "measure_call": "rfc"})
        assert done["data"]["call"]["status"] == "closed"
        assert [e["type"] for e in d.trail(case["id"])].count("timer_fired") == 1


@scenario("service levels: the standard target of the priority table applies without an agreement", clock=True)
def standard_target(d: Driver):
    case = d.start("usm-operate", {"request": {"requester": "bob", "summary": "no agreement given"}})
    at = d.drive(case["id"], {"impact": "low", "urgency": "low"}, until="Activity_ExecuteActivities")
    assert at["data"]["call"]["priority"] == "P4" and at["data"]["call"]["resolution_target"] == "PT72H"
    d.clock.advance(hours=71)
    d.fire_timers()
    assert d.case(case["id"])["child_cases"] == []
    d.clock.advance(hours=2)
    d.fire_timers()
    assert [c["definition"] for c in d.children(case["id"])] == ["usm-escalation"]


# --- hand-offs that start linked cases -------------------------------------------------------------

@scenario("hand-off: Evaluate & close submits a risk as a new linked usm-improve case")
def risk_from_close(d: Driver):
    case = d.start("usm-operate")
    done = finish(d, case, {"improvement_found": [True, False]})
    number = done["data"]["call"]["number"]
    assert done["data"]["call"]["handoffs"] == [{"type": "risk", "summary": "Risk to submit (Activity_EvaluateClose)"}]
    [linked] = linked_cases(d, case["id"], "usm-improve")
    assert linked["data"]["handoff"] == {"type": "risk", "summary": "Risk to submit (Activity_EvaluateClose)",
                                         "raised_by": number, "reason": "improvement found in Evaluate & close"}
    assert linked["data"]["request"]["summary"] == "Risk to submit (Activity_EvaluateClose)"
    risk = finish(d, linked, {"measure_call": "service request"})
    call = risk["data"]["call"]
    assert call["type"] == "risk" and call["raised_by"] == number and call["parent"] is None
    assert risk["workflow"] == "WF8"
    check_record(call, "RSK", RISK_TOP)


@scenario("hand-off: an incident and a risk raised while executing in Operate start usm-recover and usm-improve")
def raised_in_operate(d: Driver):
    case = d.start("usm-operate")
    done = finish(d, case, {"failure_noticed": [True, False], "risk_noticed": [True, False]})
    number = done["data"]["call"]["number"]
    [incident_case] = linked_cases(d, case["id"], "usm-recover")
    [risk_case] = linked_cases(d, case["id"], "usm-improve")
    assert len(d.children(case["id"])) == 2
    for kind, c in (("incident", incident_case), ("risk", risk_case)):
        assert c["data"]["handoff"]["type"] == kind and c["data"]["handoff"]["raised_by"] == number
    incident = finish(d, incident_case, {"recovery_route": "operate"})
    assert incident["data"]["call"]["type"] == "incident" and incident["workflow"] == "WF4"
    assert incident["data"]["call"]["raised_by"] == number
    risk = finish(d, risk_case, {"measure_call": "wish"})
    assert risk["workflow"] == "WF6" and risk["data"]["call"]["raised_by"] == number
    # only the failure was raised here: a new incident, and nothing else
    case = d.start("usm-operate")
    finish(d, case, {"failure_noticed": [True, False]})
    assert [c["definition"] for c in d.children(case["id"])] == ["usm-recover"]


@scenario("Operate: delivery not verified, then both a failure and a risk noticed in the second round")
def both_noticed_in_second_round(d: Driver):
    # The inclusive join after "Failure or risk noticed?" once fired per branch in a loop's second round:
    # the review frame ran twice and the case failed. One review per round, two hand-offs, one end.
    case = d.start("usm-operate")
    done = finish(d, case, {"delivery_verified": [False, True], "failure_noticed": [False, True],
                            "risk_noticed": [False, True]})
    trail = d.trail(case["id"])
    assert [e["element_id"] for e in trail if e["type"] == "gateway_taken"
            and e["element_id"] == "Gateway_NoticedJoin"] == ["Gateway_NoticedJoin"] * 2
    assert completed_elements(d, case["id"]).count("Activity_ReviewDelivery") == 2
    assert sorted(c["definition"] for c in d.children(case["id"])) == ["usm-improve", "usm-recover"]
    check_record(done["data"]["call"], "SRQ", TOP)


@scenario("hand-off: a risk raised in a forked Operate links to the top-level case")
def raised_in_fork(d: Driver):
    case = d.start("usm-change")
    done = finish(d, case, {"risk_noticed": [True, False]})
    [fork] = done["data"]["call"]["children"]
    [risk_case] = linked_cases(d, case["id"], "usm-improve")
    assert risk_case["data"]["handoff"]["raised_by"] == fork["number"] and fork["type"] == "service request"
