"""Bootstrap definitions/: the USM processes as BPMN (with diagram interchange), their JSON Schema forms
and the priority decision table.

    /work/venv/bin/python tools/generate_definitions.py   # rewrites the generated files in definitions/

This script wrote the first version of the files. From then on the files in definitions/ are the
source: designers open and change them in Camunda Modeler or bpmn.io. Running the script again
overwrites such edits, so only do that on purpose (and port the edits into this script first).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bpmn_writer import Process  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent / "definitions"

MESSAGES = {"Message_CallReceived": "call_received"}
# A message named after a definition key starts that definition as a linked case (at its plain start
# event, so call activities can still fork into it): the hand-offs that are not returns.
START_PROCESS = {"usm-agree": "Message_StartAgree", "usm-change": "Message_StartChange",
                 "usm-recover": "Message_StartRecover", "usm-operate": "Message_StartOperate",
                 "usm-improve": "Message_StartImprove"}


def starts(*keys: str) -> dict[str, str]:
    return {START_PROCESS[key]: key for key in keys}

ESCALATION_MESSAGES = {"Message_EscalationRaised": "escalation_raised"}

SD, SM, WC, ST, OPS, RO = ("Service desk", "Service manager", "Workflow coordinator", "Solution team",
                           "Operations", "Risk owner")

IO_SPEC = """    <bpmn:ioSpecification id="IoSpecification_{short}">
      <bpmn:dataInput id="link" name="link: what the caller hands over (parent call, request, fixed workflow)" />
      <bpmn:dataOutput id="call" name="call: the caller's record with this call linked (or this call's record)" />
      <bpmn:inputSet id="InputSet_{short}"><bpmn:dataInputRefs>link</bpmn:dataInputRefs></bpmn:inputSet>
      <bpmn:outputSet id="OutputSet_{short}"><bpmn:dataOutputRefs>call</bpmn:dataOutputRefs></bpmn:outputSet>
    </bpmn:ioSpecification>"""

FRAME_INTAKE, FRAME_CLASSIFY, FRAME_REVIEW, FRAME_CLOSE = (
    "usm-frame-intake", "usm-frame-classify", "usm-frame-review", "usm-frame-close")


def _escalation(p: Process, short: str, host: str, step: str):
    """The service-level timer of a process: when the resolution target passes while `host` runs,
    raise an escalation (a linked usm-escalation case with a task for the workflow coordinator)."""
    p.timer(f"Event_{short}TargetPassed", "Resolution target passed", host, "resolution_target")
    p.throw(f"Event_{short}RaiseEscalation", "Raise escalation", p.nodes[host].lane, "Message_EscalationRaised",
            "{'escalation': {'call': call['number'], 'workflow': call['workflow'], 'priority': call['priority'], "
            f"'resolution_target': resolution_target, 'step': '{step}'}}}}", below=f"Event_{short}TargetPassed")
    p.end(f"EndEvent_{short}EscalationRaised", "Escalation raised", p.nodes[host].lane,
          below=f"Event_{short}TargetPassed", dx=110)
    p.chain(f"Event_{short}TargetPassed", f"Event_{short}RaiseEscalation", f"EndEvent_{short}EscalationRaised")


def _opening(p: Process, short: str, noun: str, call_type: str, workflow: str | None, start_name: str):
    """Start, call type, intake, 'accepted?' and Classify: the opening every process shares."""
    p.start(f"StartEvent_{short}Received", start_name, SD)
    p.script(f"Activity_SetCallType{short}", f"Set call type: {noun}", SD,
             f"call_type = '{call_type}'\ndefault_workflow = {workflow!r}")
    p.call(f"Activity_Accept{short}", f"Accept {noun}" if short != "Risk" else "Identify risk", SD, FRAME_INTAKE,
           doc="Common intake (usm-frame-intake): register, verify and link the call.")
    p.xor(f"Gateway_{short}Accepted", f"{noun[0].upper() + noun[1:]} accepted?", SD)
    p.call(f"Activity_Classify{short}", "Classify", SD, FRAME_CLASSIFY,
           doc="Common Classify (usm-frame-classify): impact, urgency, priority from the DMN table, service level.")
    p.chain(f"StartEvent_{short}Received", f"Activity_SetCallType{short}", f"Activity_Accept{short}",
            f"Gateway_{short}Accepted")
    p.flow(f"Gateway_{short}Accepted", f"Activity_Classify{short}", "accepted", "intake_decision == 'accept'")


def _closing(p: Process, short: str, noun: str, review_lane=SD):
    """Review delivery & feedback, 'delivery verified?', Evaluate & close, end: the closing every process shares.
    Returns the id of the verification gateway (its 'not verified' flow is drawn by the caller)."""
    p.call(f"Activity_Review{short}", "Review delivery & feedback", review_lane, FRAME_REVIEW,
           doc="Common review (usm-frame-review): verify the delivery with the requester.")
    p.xor(f"Gateway_{short}Delivered", "Delivery verified?", review_lane)
    p.xor(f"Gateway_{short}CloseMerge", "To closing", SD)
    p.call(f"Activity_EvaluateClose{short}", "Evaluate & close", SD, FRAME_CLOSE,
           doc="Common closing (usm-frame-close): evaluate, submit risks, close the call.")
    p.end(f"EndEvent_{short}Closed", f"{noun[0].upper() + noun[1:]} closed", SD)
    p.chain(f"Activity_Review{short}", f"Gateway_{short}Delivered")
    p.flow(f"Gateway_{short}Delivered", f"Gateway_{short}CloseMerge", "verified", "delivery_verified")
    p.chain(f"Gateway_{short}CloseMerge", f"Activity_EvaluateClose{short}", f"EndEvent_{short}Closed")
    p.flow(f"Gateway_{short}Accepted", f"Gateway_{short}CloseMerge", "refused or handed over", default=True)


def _fork_link(summary_field: str, workflow: str = "call['workflow']") -> str:
    return (f"link = {{'parent': call, 'workflow': {workflow}, 'request': {{'requester': call['number'], "
            f"'summary': {summary_field}, 'agreement': agreement}}}}")


# ------------------------------------------------------------------------------------------------
# the common frame


def frame_intake() -> Process:
    p = Process(FRAME_INTAKE, "Common frame: accept a call", [SD], short="Intake", messages=MESSAGES, documentation=(
        "The intake step every USM process starts with (Accept wish, Accept RFC, Accept incident, Accept service "
        "request, Identify risk): register the call with its tracking number, verify the requester and the call "
        "type, and hand the call over as a new call when it is of another type. Called by the five processes."))
    p.start("StartEvent_IntakeStarted", "Call to accept", SD)
    p.script("Activity_RegisterCall", "Register call", SD, """
try:
    link_given = link
except NameError:
    link_given = None
try:
    request_given = request
except NameError:
    request_given = None
try:
    handoff_given = handoff
except NameError:
    handoff_given = None
link = dict(link_given or {})
origin = dict(link.get('request') or request_given or {})
parent_call = link.get('parent')
permitted_routes = link.get('permitted')
agreement = origin.get('agreement') or {'service': None, 'service_levels': {}}
prefixes = {'wish': 'WSH', 'rfc': 'RFC', 'incident': 'INC', 'service request': 'SRQ', 'risk': 'RSK'}
call = {
    'number': next_call_number(prefixes[call_type]),
    'type': call_type,
    'status': 'registered',
    'history': ['registered'],
    'workflow': link.get('workflow') or default_workflow,
    'requester': origin.get('requester'),
    'summary': origin.get('summary'),
    'service': agreement.get('service'),
    'parent': parent_call['number'] if parent_call else None,
    'raised_by': link.get('raised_by') or (handoff_given or {}).get('raised_by'),
    'children': [],
    'handoffs': [],
    'impact': None,
    'urgency': None,
    'priority': None,
}
del link_given, request_given, handoff_given
""")
    p.user("Activity_AcceptCall", "Accept call", SD, "accept-call", (
        "Check the call with the requester. Is the requester authorised for the service (see the agreement)? "
        "Is the call really of the type it was registered as: a wish (new or changed agreement, or a complaint "
        "about the past), an RFC (within the agreement, permanently changes the managed infrastructure), a "
        "service request (within the agreement, no permanent change), an incident (an actual or imminent failure "
        "of the agreed service) or a risk? Request missing data, link the call to the service and to earlier "
        "calls, then decide: accept it, refuse it (requester not authorised), or reclassify it, which closes this "
        "call and hands it over to the service desk as a new call of the right type."))
    p.xor("Gateway_IntakeDecision", "Hand over as another call type?", SD)
    p.throw("Event_HandOverReclassified", "Hand over as a new call", SD, "Message_CallReceived",
            "{'handoff': {'type': reclassify_as, 'summary': call['summary'], 'raised_by': call['number'], "
            "'reason': 'reclassified at intake'}, 'request': {'requester': call['requester'], "
            "'summary': call['summary'], 'agreement': agreement}}")
    p.end("EndEvent_CallHandedOver", "Call handed over", SD)
    p.end("EndEvent_IntakeDone", "Intake done", SD)
    p.chain("StartEvent_IntakeStarted", "Activity_RegisterCall", "Activity_AcceptCall", "Gateway_IntakeDecision")
    p.flow("Gateway_IntakeDecision", "EndEvent_IntakeDone", "no", default=True)
    p.flow("Gateway_IntakeDecision", "Event_HandOverReclassified", "reclassified", "intake_decision == 'reclassify'")
    p.chain("Event_HandOverReclassified", "EndEvent_CallHandedOver")
    return p


def frame_classify() -> Process:
    p = Process(FRAME_CLASSIFY, "Common frame: classify a call", [SD], short="Classify", documentation=(
        "Classify, the second step of every USM process: categorise the call, set impact and urgency (for a risk: "
        "effect and likelihood), let the priority decision table (decisions/priority.dmn) decide the priority, and "
        "take the resolution target for that priority from the agreement (or the standard one from the table)."))
    p.start("StartEvent_ClassifyStarted", "Call to classify", SD)
    p.user("Activity_Classify", "Classify", SD, "classify", (
        "Categorise the call with the categorisation table. Set the impact (how much it affects the customer's "
        "activities: high, medium, low or nil) and the urgency (how long handling can wait: high, medium or low). "
        "For a risk, give its effect as the impact and its likelihood as the urgency (risk matrix). The priority "
        "is then decided by the priority table."))
    p.rule("Activity_DecidePriority", "Decide priority", SD, "Decision_Priority")
    p.script("Activity_RecordPriority", "Record priority & service level", SD, """
call['category'] = category
call['impact'] = impact
call['urgency'] = urgency
call['priority'] = priority
call['status'] = 'in progress'
call['history'] = call['history'] + ['in progress']
resolution_target = (agreement.get('service_levels') or {}).get(priority) or standard_resolution_target
call['resolution_target'] = resolution_target
""")
    p.end("EndEvent_Classified", "Call classified", SD)
    p.chain("StartEvent_ClassifyStarted", "Activity_Classify", "Activity_DecidePriority", "Activity_RecordPriority",
            "EndEvent_Classified")
    return p


def frame_review() -> Process:
    p = Process(FRAME_REVIEW, "Common frame: review delivery & feedback", [SD], short="Review", documentation=(
        "Review delivery & feedback, common to every USM process: check that the delivery (including linked calls) "
        "matches the request and verify it with the requester. A verified call is 'process fulfilled' when it was "
        "called by another process (a fork) and 'workflow fulfilled' at the top of the workflow."))
    p.start("StartEvent_ReviewStarted", "Delivery to review", SD)
    p.user("Activity_ReviewDelivery", "Review delivery & feedback", SD, "review-delivery", (
        "Check that what was delivered matches the request, including the linked calls listed in the call record "
        "(call.children). Verify the result with the requester against the service agreement and record the "
        "feedback. If the requester does not confirm the delivery, answer 'not verified': the work is done again."))
    p.script("Activity_RecordReview", "Record review", SD, """
if delivery_verified:
    fulfilled = 'process fulfilled' if parent_call else 'workflow fulfilled'
    call['status'] = fulfilled
    call['history'] = call['history'] + [fulfilled]
else:
    call['reviews_failed'] = call.get('reviews_failed', 0) + 1
""")
    p.end("EndEvent_Reviewed", "Delivery reviewed", SD)
    p.chain("StartEvent_ReviewStarted", "Activity_ReviewDelivery", "Activity_RecordReview", "EndEvent_Reviewed")
    return p


def frame_close() -> Process:
    p = Process(FRAME_CLOSE, "Common frame: evaluate & close", [SD], short="Close", messages=starts("usm-improve"),
                documentation=(
        "Evaluate & close, the last step of every USM process: evaluate the handling, complete the registration, "
        "submit a risk for every improvement found (a hand-off: a new usm-improve case, linked), and close the "
        "call. A call "
        "that was forked from another process is linked into its parent's record."))
    p.start("StartEvent_CloseStarted", "Call to close", SD)
    p.user("Activity_EvaluateClose", "Evaluate & close", SD, "evaluate-close", (
        "Evaluate the handling with the coordinators and operators: was it done properly, is everything recorded "
        "for reporting, are there lessons learned, could this call become a standard for future calls, is an "
        "improvement needed outside the process? Complete the registration. If you found an improvement, say so "
        "and describe it: it is submitted as a new risk call. Then the call is closed."))
    p.xor("Gateway_ImprovementFound", "Improvement found?", SD)
    p.throw("Event_SubmitRisk", "Submit risk", SD, START_PROCESS["usm-improve"],
            "{'handoff': {'type': 'risk', 'summary': risk_summary, 'raised_by': call['number'], "
            "'reason': 'improvement found in Evaluate & close'}, 'request': {'requester': call['number'], "
            "'summary': risk_summary, 'agreement': agreement}}")
    p.xor("Gateway_ImprovementMerge", "Registration complete", SD)
    p.script("Activity_CloseCall", "Close call", SD, """
if improvement_found:
    call['handoffs'] = call['handoffs'] + [{'type': 'risk', 'summary': risk_summary}]
if intake_decision == 'reclassify':
    call['handoffs'] = call['handoffs'] + [{'type': reclassify_as, 'summary': call['summary']}]
if intake_decision == 'reclassify':
    call['resolution'] = 'reclassified as ' + reclassify_as
elif intake_decision == 'refuse':
    call['resolution'] = 'refused: requester not authorised'
else:
    call['resolution'] = 'handled'
call['status'] = 'closed'
call['history'] = call['history'] + ['closed']
if parent_call:
    closed_call = call
    call = parent_call
    call['children'] = call['children'] + [closed_call]
    del closed_call
""")
    p.end("EndEvent_CallClosed", "Call closed", SD)
    p.chain("StartEvent_CloseStarted", "Activity_EvaluateClose", "Gateway_ImprovementFound")
    p.flow("Gateway_ImprovementFound", "Event_SubmitRisk", "yes", "improvement_found")
    p.flow("Gateway_ImprovementFound", "Gateway_ImprovementMerge", "no", default=True)
    p.chain("Event_SubmitRisk", "Gateway_ImprovementMerge", "Activity_CloseCall", "EndEvent_CallClosed")
    return p


def escalation() -> Process:
    p = Process("usm-escalation", "Service-level escalation", [WC], short="Escalation", messages=ESCALATION_MESSAGES,
                documentation=(
                    "Started as a linked case when a call's resolution target passes (the non-interrupting timer on "
                    "the main step of each process): the workflow coordinator escalates hierarchically."))
    p.start("StartEvent_EscalationRaised", "Resolution target passed", WC, message="Message_EscalationRaised")
    p.user("Activity_HandleEscalation", "Handle escalation", WC, "handle-escalation", (
        "The resolution target of the call in 'escalation' has passed. Find out why, then act: expedite the work, "
        "reassign it, inform the customer, or accept the delay. Record what you did; the call itself goes on."))
    p.end("EndEvent_EscalationHandled", "Escalation handled", WC)
    p.chain("StartEvent_EscalationRaised", "Activity_HandleEscalation", "EndEvent_EscalationHandled")
    return p


# ------------------------------------------------------------------------------------------------
# the five processes


def agree() -> Process:
    p = Process("usm-agree", "Agree (contract management, CTM)", [SD, SM, WC], short="Agree",
                io=IO_SPEC.format(short="Agree"), messages=ESCALATION_MESSAGES, documentation=(
                    "USM Agree: creates and adjusts service agreements. Trigger: a wish (including a complaint). "
                    "Forks to Change to realize an agreed offer (WF1; WF6 when called from Improve)."))
    _opening(p, "Wish", "wish", "wish", "WF1", "Wish received")
    p.user("Activity_SpecifyService", "Specify the service", SM, "specify-service", (
        "Describe the wish as a functional design (facility and support, functionality and functioning). Identify "
        "the internal and external solution teams, specify each team's contribution, and combine them into one "
        "technical design with a measurable 'ready' notification to the requester. Reuse the service catalogue and "
        "cost the parts and the whole."))
    p.user("Activity_DraftOffer", "Draft offer", SM, "draft-offer", (
        "Write the offer in service-agreement format, draft the OLAs with internal teams and UCs with external "
        "suppliers, and record the proposed contributions in the reservations register."))
    p.user("Activity_Negotiate", "Negotiate", SM, "negotiate", (
        "Negotiate the offer with the customer until agreement is reached. If agreed: convert the offer into a "
        "service agreement, fold in pre-agreed calls, link the technical design, and describe the RFC that "
        "realizes it. If not agreed: inform the solution teams and release the reservations; the wish is closed."))
    p.xor("Gateway_OfferAgreed", "Offer agreed?", SM)
    p.xor("Gateway_RealizeMerge", "Realize (again)", WC)
    p.script("Activity_SubmitRFC", "Submit RFC", WC, _fork_link("rfc_summary"))
    p.call("Activity_Realize", "Realize (fork → Change)", WC, "usm-change",
           doc="Fork: submit an RFC with the agreed specification; Change runs as a linked call and returns.")
    _escalation(p, "Agree", "Activity_Realize", "Realize")
    _closing(p, "Wish", "wish")
    p.chain("Activity_ClassifyWish", "Activity_SpecifyService", "Activity_DraftOffer", "Activity_Negotiate",
            "Gateway_OfferAgreed")
    p.flow("Gateway_OfferAgreed", "Gateway_RealizeMerge", "agreed", "offer_agreed")
    p.flow("Gateway_OfferAgreed", "Gateway_WishCloseMerge", "not agreed", default=True)
    p.chain("Gateway_RealizeMerge", "Activity_SubmitRFC", "Activity_Realize", "Activity_ReviewWish")
    p.flow("Gateway_WishDelivered", "Gateway_RealizeMerge", "not verified", default=True)
    return p


def change() -> Process:
    p = Process("usm-change", "Change (CHM)", [SD, WC, ST], short="Change", io=IO_SPEC.format(short="Change"),
                messages=ESCALATION_MESSAGES, documentation=(
                    "USM Change: changes the managed infrastructure within the agreement and updates the MIR. "
                    "Trigger: a request for change (RFC). Forks to Operate to deploy (WF2; part of WF1, WF3, WF6, WF7)."))
    _opening(p, "RFC", "RFC", "rfc", "WF2", "RFC received")
    p.xor("Gateway_PlanMerge", "Plan (again)", WC)
    p.user("Activity_PlanAgree", "Plan & agree", WC, "plan-agree", (
        "Decide from the change category which teams and people are involved. Draw up a high-level change plan "
        "from an impact analysis and the change calendar (bundle related changes into releases), agree it with "
        "the people involved and put it on the change calendar. If they do not agree, plan again."))
    p.xor("Gateway_PlanAgreed", "Plan agreed?", WC)
    p.xor("Gateway_PrepareMerge", "Prepare (again)", ST)
    p.user("Activity_PrepareChange", "Prepare change", ST, "prepare-change", (
        "Detail the plan including continuity plans; build (develop, assemble or buy) the facilities; prepare for "
        "production: manuals, training, a test plan (production and user acceptance) and a deployment plan."))
    _escalation(p, "Change", "Activity_PrepareChange", "Prepare change")
    p.user("Activity_TestRelease", "Test & release", ST, "test-release", (
        "Run the tests and write the test report. The people involved assess the report and the deployment plan: "
        "if they accept, the change is approved for production and you draw up the service request for the "
        "deployment; if not, the change goes back to Prepare change."))
    p.xor("Gateway_TestsAccepted", "Tests accepted?", ST)
    p.script("Activity_SubmitDeploymentRequest", "Submit deployment request", WC, _fork_link("deployment_request"))
    p.call("Activity_Deploy", "Deploy (fork → Operate)", WC, "usm-operate",
           doc="Fork: submit the deployment service request; Operate runs as a linked call and returns.")
    p.user("Activity_UpdateMIR", "Update MIR", ST, "update-mir", (
        "Register the changed service and infrastructure components (MICs) in the managed infrastructure "
        "registry (MIR, the CMDB)."))
    _closing(p, "RFC", "RFC")
    p.chain("Activity_ClassifyRFC", "Gateway_PlanMerge", "Activity_PlanAgree", "Gateway_PlanAgreed")
    p.flow("Gateway_PlanAgreed", "Gateway_PrepareMerge", "agreed", "plan_agreed")
    p.flow("Gateway_PlanAgreed", "Gateway_PlanMerge", "not agreed", default=True)
    p.chain("Gateway_PrepareMerge", "Activity_PrepareChange", "Activity_TestRelease", "Gateway_TestsAccepted")
    p.flow("Gateway_TestsAccepted", "Activity_SubmitDeploymentRequest", "accepted", "tests_accepted")
    p.flow("Gateway_TestsAccepted", "Gateway_PrepareMerge", "not accepted", default=True)
    p.chain("Activity_SubmitDeploymentRequest", "Activity_Deploy", "Activity_ReviewRFC")
    # Update MIR sits between the verification and the closing
    p.flows = [f for f in p.flows if not (f.source == "Gateway_RFCDelivered" and f.target == "Gateway_RFCCloseMerge")]
    p.flow("Gateway_RFCDelivered", "Activity_UpdateMIR", "verified", "delivery_verified")
    p.flow("Activity_UpdateMIR", "Gateway_RFCCloseMerge")
    p.flow("Gateway_RFCDelivered", "Gateway_PrepareMerge", "not verified", default=True)
    return p


PERMITTED = "(permitted_routes is None or recovery_route in permitted_routes)"


def recover() -> Process:
    p = Process("usm-recover", "Recover (incident management, INC)", [SD, ST, WC], short="Recover",
                io=IO_SPEC.format(short="Recover"), messages=ESCALATION_MESSAGES, documentation=(
                    "USM Recover: restores the agreed service after a failure. Trigger: an incident. Forks to "
                    "Operate (WF4), to Change (WF3), or both (WF3)."))
    _opening(p, "Incident", "incident", "incident", None, "Incident received")
    p.xor("Gateway_AnalyzeMerge", "Analyze (next team)", ST)
    p.user("Activity_Analyze", "Analyze", ST, "analyze", (
        "Decide how the effect of the failure can be remedied. First look for an earlier solution in the knowledge "
        "base. If there is none and your team cannot find one, name the next solution team (internal or external): "
        "the incident is routed to it (functional escalation). A workaround counts as a solution."))
    _escalation(p, "Recover", "Activity_Analyze", "Analyze")
    p.xor("Gateway_SolutionFound", "Solution found?", ST)
    p.script("Activity_RouteToNextTeam", "Route to next solution team", ST,
             "call['solution_teams'] = call.get('solution_teams', []) + [next_team]")
    p.xor("Gateway_PrepareRecoveryMerge", "Prepare recovery (again)", WC)
    p.user("Activity_PrepareRecovery", "Prepare recovery", WC, "prepare-recovery", (
        "Choose the route of the recovery: through operations (a service request, no permanent change to the "
        "managed infrastructure), through a change (an RFC: the managed infrastructure must be modified), or "
        "both (first a service request, e.g. for a workaround, then a change). Describe what the linked call must "
        "do. In a static workflow the route is fixed: WF3 allows 'change' or 'both', WF4 allows 'operate'; "
        "another choice brings this task back."))
    p.xor("Gateway_RecoveryRoute", "Recovery route?", WC)
    p.script("Activity_SubmitRecoveryServiceRequest", "Submit service request", WC,
             "call['workflow'] = 'WF3' if recovery_route == 'both' else 'WF4'\n" + _fork_link("recovery_summary"))
    p.call("Activity_RecoverViaOperations", "Recover (fork → Operate)", WC, "usm-operate",
           doc="Fork: submit a service request; Operate runs as a linked call and returns.")
    p.xor("Gateway_AlsoChange", "Change needed as well?", WC)
    p.xor("Gateway_RecoverChangeMerge", "To the change", WC)
    p.script("Activity_SubmitRecoveryRFC", "Submit RFC", WC, "call['workflow'] = 'WF3'\n" + _fork_link("recovery_summary"))
    p.call("Activity_RecoverViaChange", "Recover (fork → Change)", WC, "usm-change",
           doc="Fork: submit an RFC; Change runs as a linked call and returns.")
    p.xor("Gateway_RecoveredMerge", "Recovered", WC)
    _closing(p, "Incident", "incident")
    p.chain("Activity_ClassifyIncident", "Gateway_AnalyzeMerge", "Activity_Analyze", "Gateway_SolutionFound")
    p.flow("Gateway_SolutionFound", "Gateway_PrepareRecoveryMerge", "found", "solution_found")
    p.flow("Gateway_SolutionFound", "Activity_RouteToNextTeam", "not found", default=True)
    p.flow("Activity_RouteToNextTeam", "Gateway_AnalyzeMerge")
    p.chain("Gateway_PrepareRecoveryMerge", "Activity_PrepareRecovery", "Gateway_RecoveryRoute")
    p.flow("Gateway_RecoveryRoute", "Activity_SubmitRecoveryServiceRequest", "operate or both",
           f"recovery_route in ['operate', 'both'] and {PERMITTED}")
    p.flow("Gateway_RecoveryRoute", "Gateway_RecoverChangeMerge", "change", f"recovery_route == 'change' and {PERMITTED}")
    p.flow("Gateway_RecoveryRoute", "Gateway_PrepareRecoveryMerge", "not in this workflow", default=True)
    p.chain("Activity_SubmitRecoveryServiceRequest", "Activity_RecoverViaOperations", "Gateway_AlsoChange")
    p.flow("Gateway_AlsoChange", "Gateway_RecoverChangeMerge", "both", "recovery_route == 'both'")
    p.flow("Gateway_AlsoChange", "Gateway_RecoveredMerge", "no", default=True)
    p.chain("Gateway_RecoverChangeMerge", "Activity_SubmitRecoveryRFC", "Activity_RecoverViaChange",
            "Gateway_RecoveredMerge", "Activity_ReviewIncident")
    p.flow("Gateway_IncidentDelivered", "Gateway_PrepareRecoveryMerge", "not verified", default=True)
    return p


def operate() -> Process:
    p = Process("usm-operate", "Operate (OPS)", [SD, OPS], short="Operate", io=IO_SPEC.format(short="Operate"),
                messages={**starts("usm-recover", "usm-improve"), **ESCALATION_MESSAGES}, documentation=(
                    "USM Operate: delivers within the agreement without a permanent change to the managed "
                    "infrastructure. Trigger: a service request (WF5; the deployment in WF2, part of WF1, WF3, "
                    "WF4, WF6, WF7, WF8). Failures and risks noticed while executing are handed over as new, linked "
                    "usm-recover and usm-improve cases."))
    _opening(p, "ServiceRequest", "service request", "service request", "WF5", "Service request received")
    p.user("Activity_PlanActivities", "Plan activities", OPS, "plan-activities", (
        "Plan the activities on the OPS calendar: activities for new or changed services go into its static and/or "
        "dynamic section, customer service requests into the dynamic section."))
    p.xor("Gateway_ExecuteMerge", "Execute (again)", OPS)
    p.user("Activity_ExecuteActivities", "Execute activities", OPS, "execute-activities", (
        "Carry out the calendar items and log relevant events. If you notice an actual or imminent failure, say so "
        "and describe it: it is submitted as a new incident. If you notice a risk, say so and describe it: it is "
        "submitted as a new risk. This call goes on either way."))
    _escalation(p, "Operate", "Activity_ExecuteActivities", "Execute activities")
    p.inclusive("Gateway_Noticed", "Failure or risk noticed?", OPS)
    p.throw("Event_SubmitIncident", "Submit incident", OPS, START_PROCESS["usm-recover"],
            "{'handoff': {'type': 'incident', 'summary': failure_summary, 'raised_by': call['number'], "
            "'reason': 'failure noticed in Execute activities'}, 'request': {'requester': call['number'], "
            "'summary': failure_summary, 'agreement': agreement}}")
    p.throw("Event_SubmitRiskFromOperations", "Submit risk", OPS, START_PROCESS["usm-improve"],
            "{'handoff': {'type': 'risk', 'summary': risk_summary, 'raised_by': call['number'], "
            "'reason': 'risk noticed in Execute activities'}, 'request': {'requester': call['number'], "
            "'summary': risk_summary, 'agreement': agreement}}")
    p.inclusive("Gateway_NoticedJoin", "Submitted", OPS)
    _closing(p, "ServiceRequest", "service request")
    p.chain("Activity_ClassifyServiceRequest", "Activity_PlanActivities", "Gateway_ExecuteMerge",
            "Activity_ExecuteActivities", "Gateway_Noticed")
    p.flow("Gateway_Noticed", "Event_SubmitIncident", "failure", "failure_noticed")
    p.flow("Gateway_Noticed", "Event_SubmitRiskFromOperations", "risk", "risk_noticed")
    p.flow("Gateway_Noticed", "Gateway_NoticedJoin", "nothing noticed", default=True)
    p.chain("Event_SubmitIncident", "Gateway_NoticedJoin")
    p.chain("Event_SubmitRiskFromOperations", "Gateway_NoticedJoin")
    p.chain("Gateway_NoticedJoin", "Activity_ReviewServiceRequest")
    p.flow("Gateway_ServiceRequestDelivered", "Gateway_ExecuteMerge", "not verified", default=True)
    return p


MEASURE_PERMITTED = "(permitted_routes is None or measure_call in permitted_routes)"


def improve() -> Process:
    p = Process("usm-improve", "Improve (IMP)", [SD, RO, WC], short="Improve", io=IO_SPEC.format(short="Improve"),
                messages=ESCALATION_MESSAGES, documentation=(
                    "USM Improve: manages risks, threats and opportunities. Trigger: a risk. Forks to Agree (WF6), "
                    "Change (WF7) or Operate (WF8) to deploy the selected measure."))
    _opening(p, "Risk", "risk", "risk", None, "Risk reported")
    p.user("Activity_DetermineCause", "Determine cause", RO, "determine-cause", (
        "Find the root cause of the risk (root-cause analysis, business impact and dependency & vulnerability "
        "analysis). When the cause is known, record it: the call gets the status 'known error'."))
    _escalation(p, "Improve", "Activity_DetermineCause", "Determine cause")
    p.script("Activity_RecordKnownError", "Record known error", RO, """
call['root_cause'] = root_cause
call['status'] = 'known error'
call['history'] = call['history'] + ['known error']
""")
    p.xor("Gateway_SelectMeasureMerge", "Select (again)", RO)
    p.user("Activity_SelectMeasure", "Select measure", RO, "select-measure", (
        "For a threat find measures that mitigate its effect or likelihood; for an opportunity, measures that "
        "foster it. Determine the residual risk, write a business case per measure and pick the best. Then say "
        "which follow-up call deploys it: a wish (the agreement must change), an RFC (within the agreement, the "
        "managed infrastructure changes) or a service request (within the agreement, no such change). In a static "
        "workflow the follow-up is fixed (WF6 wish, WF7 RFC, WF8 service request); another choice brings this "
        "task back."))
    p.script("Activity_SubmitFollowUpCall", "Submit follow-up call", WC, (
        f"if {MEASURE_PERMITTED}:\n"
        "    call['workflow'] = {'wish': 'WF6', 'rfc': 'WF7', 'service request': 'WF8'}[measure_call]\n"
        + _fork_link("follow_up_summary")))
    p.xor("Gateway_FollowUpCall", "Follow-up call?", WC)
    p.call("Activity_DeployMeasureWish", "Deploy measure (fork → Agree)", WC, "usm-agree",
           doc="Fork: submit a wish; Agree runs as a linked call (and forks on to Change and Operate).")
    p.call("Activity_DeployMeasureRFC", "Deploy measure (fork → Change)", WC, "usm-change",
           doc="Fork: submit an RFC; Change runs as a linked call (and forks on to Operate).")
    p.call("Activity_DeployMeasureServiceRequest", "Deploy measure (fork → Operate)", WC, "usm-operate",
           doc="Fork: submit a service request; Operate runs as a linked call.")
    p.xor("Gateway_MeasureDeployedMerge", "Measure deployed", WC)
    _closing(p, "Risk", "risk")
    p.chain("Activity_ClassifyRisk", "Activity_DetermineCause", "Activity_RecordKnownError",
            "Gateway_SelectMeasureMerge", "Activity_SelectMeasure", "Activity_SubmitFollowUpCall", "Gateway_FollowUpCall")
    p.flow("Gateway_FollowUpCall", "Activity_DeployMeasureWish", "wish", f"measure_call == 'wish' and {MEASURE_PERMITTED}")
    p.flow("Gateway_FollowUpCall", "Activity_DeployMeasureRFC", "RFC", f"measure_call == 'rfc' and {MEASURE_PERMITTED}")
    p.flow("Gateway_FollowUpCall", "Activity_DeployMeasureServiceRequest", "service request",
           f"measure_call == 'service request' and {MEASURE_PERMITTED}")
    p.flow("Gateway_FollowUpCall", "Gateway_SelectMeasureMerge", "not in this workflow", default=True)
    for fork in ("Activity_DeployMeasureWish", "Activity_DeployMeasureRFC", "Activity_DeployMeasureServiceRequest"):
        p.flow(fork, "Gateway_MeasureDeployedMerge")
    p.chain("Gateway_MeasureDeployedMerge", "Activity_ReviewRisk")
    p.flow("Gateway_RiskDelivered", "Gateway_SelectMeasureMerge", "not verified", default=True)
    return p


# ------------------------------------------------------------------------------------------------
# the service desk intake and the static workflows

CALL_CLASSES = {  # call class -> (throw event, its name, process started)
    "incident": ("Event_StartRecover", "Start Recover (incident)", "usm-recover"),
    "complaint": ("Event_StartAgree", "Start Agree (wish)", "usm-agree"),
    "outside agreement": ("Event_StartAgree", "Start Agree (wish)", "usm-agree"),
    "changes managed infrastructure": ("Event_StartChange", "Start Change (RFC)", "usm-change"),
    "no change to managed infrastructure": ("Event_StartOperate", "Start Operate (service request)", "usm-operate"),
    "risk": ("Event_StartImprove", "Start Improve (risk)", "usm-improve"),
}


def service_desk_call() -> Process:
    p = Process("usm-call", "Service desk intake", [SD], short="Call",
                messages={**MESSAGES, **starts(*START_PROCESS)}, documentation=(
        "One entry for any call (and for calls reclassified at another process's intake): register the requester "
        "and the request, classify it with the help-desk decision tree, and start the matching process as a new, "
        "linked case (the message named after its key). Start it with the message 'call_received' "
        "(POST /api/v1/messages)."))
    p.start("StartEvent_CallReceived", "Call received", SD, message="Message_CallReceived")
    p.user("Activity_RegisterAndClassifyCall", "Register & classify call", SD, "register-call", (
        "Register who calls and what they ask (a call handed over from another case carries 'handoff' with the "
        "suggested type and the call it came from). Then classify it: an actual or imminent failure of the agreed "
        "service now is an incident; dissatisfaction about something in the past is a complaint (a wish); a "
        "request for something the agreement does not cover is a wish; a request within the agreement that "
        "permanently changes the managed infrastructure is an RFC; one that does not (including information and "
        "how-to questions) is a service request; a threat or opportunity is a risk. The matching process then "
        "starts as a linked case, which registers the call with its tracking number."))
    p.script("Activity_PrepareLinkedCall", "Prepare linked call", SD, """
try:
    handoff_given = handoff
except NameError:
    handoff_given = {}
try:
    request_given = request
except NameError:
    request_given = {}
registration = {'requester': requester, 'summary': summary, 'call_class': call_class,
                'raised_by': handoff_given.get('raised_by')}
linked_call = {
    'handoff': {'call_class': call_class, 'summary': summary, 'raised_by': handoff_given.get('raised_by'),
                'reason': handoff_given.get('reason') or 'registered at the service desk'},
    'request': {'requester': requester, 'summary': summary, 'agreement': request_given.get('agreement')},
}
del handoff_given, request_given
""")
    p.xor("Gateway_CallClass", "Which kind of call?", SD)
    p.xor("Gateway_WishMerge", "Wish", SD)
    for event_id, name, key in dict.fromkeys(CALL_CLASSES.values()):
        p.throw(event_id, name, SD, START_PROCESS[key], "linked_call")
    p.xor("Gateway_LinkedCaseStarted", "Linked case started", SD)
    p.end("EndEvent_CallHandedToProcess", "Call handed to its process", SD)
    p.chain("StartEvent_CallReceived", "Activity_RegisterAndClassifyCall", "Activity_PrepareLinkedCall",
            "Gateway_CallClass")
    p.flow("Gateway_CallClass", "Event_StartRecover", "incident", "call_class == 'incident'")
    p.flow("Gateway_CallClass", "Gateway_WishMerge", "complaint", "call_class == 'complaint'",
           flow_id="Flow_CallClass_Complaint_To_WishMerge")
    p.flow("Gateway_CallClass", "Event_StartChange", "RFC", "call_class == 'changes managed infrastructure'")
    p.flow("Gateway_CallClass", "Event_StartOperate", "service request",
           "call_class == 'no change to managed infrastructure'")
    p.flow("Gateway_CallClass", "Event_StartImprove", "risk", "call_class == 'risk'")
    p.flow("Gateway_CallClass", "Gateway_WishMerge", "outside agreement", "call_class == 'outside agreement'",
           flow_id="Flow_CallClass_OutsideAgreement_To_WishMerge")
    p.chain("Gateway_WishMerge", "Event_StartAgree")
    for node_id in ("Event_StartRecover", "Event_StartAgree", "Event_StartChange", "Event_StartOperate",
                    "Event_StartImprove"):
        p.flow(node_id, "Gateway_LinkedCaseStarted")
    p.chain("Gateway_LinkedCaseStarted", "EndEvent_CallHandedToProcess")
    # one track per class, in the order of the decision tree
    for track, node_id in enumerate(["Event_StartRecover", "Gateway_WishMerge", "Event_StartChange",
                                     "Event_StartOperate", "Event_StartImprove"]):
        p.nodes[node_id].track = track
    p.nodes["Event_StartAgree"].track = 1
    return p


STATIC = [
    ("usm-wf1-wish", "WF1", "Changes to agreements (wish)", "usm-agree", None, "Agree → Change → Operate"),
    ("usm-wf2-rfc", "WF2", "Changes to managed resources (RFC)", "usm-change", None, "Change → Operate"),
    ("usm-wf3-incident-change", "WF3", "Incident with changes to managed resources", "usm-recover",
     ["change", "both"], "Recover → Change → Operate"),
    ("usm-wf4-incident-operate", "WF4", "Incident without changes to managed resources", "usm-recover", ["operate"],
     "Recover → Operate"),
    ("usm-wf5-service-request", "WF5", "Operations (service request)", "usm-operate", None, "Operate"),
    ("usm-wf6-risk-agreement", "WF6", "Risk with changes to agreements", "usm-improve", ["wish"],
     "Improve → Agree → Change → Operate"),
    ("usm-wf7-risk-change", "WF7", "Risk with changes to managed resources", "usm-improve", ["rfc"],
     "Improve → Change → Operate"),
    ("usm-wf8-risk-operate", "WF8", "Risk handled by operations", "usm-improve", ["service request"],
     "Improve → Operate"),
]


def static_workflow(key, wf, title, called, permitted, chain) -> Process:
    p = Process(key, f"{wf}: {title}", [SD], short=wf, documentation=(
        f"Static {wf} ({chain}): runs {called} with the path fixed in advance. It holds no step of its own; "
        "start it with data {'request': {'requester', 'summary', 'agreement'}}."))
    p.start(f"StartEvent_{wf}Started", "Call received", SD)
    p.script(f"Activity_FixPath{wf}", f"Fix the path: {wf}", SD, (
        "try:\n    given = request\nexcept NameError:\n    given = {}\n"
        f"link = {{'workflow': '{wf}', 'permitted': {permitted!r}, 'request': given}}\ndel given"))
    p.call(f"Activity_Run{wf}", chain, SD, called, doc=f"Runs {called}; its forks follow {wf}.")
    p.end(f"EndEvent_{wf}Closed", "Workflow closed", SD)
    p.chain(f"StartEvent_{wf}Started", f"Activity_FixPath{wf}", f"Activity_Run{wf}", f"EndEvent_{wf}Closed")
    return p


# ------------------------------------------------------------------------------------------------
# forms

def _form(title, description, properties, required, conditional=None):
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, "description": description,
              "type": "object", "properties": properties, "required": required, "additionalProperties": False}
    if conditional:
        schema["allOf"] = [{"if": {"properties": {field: {"const": value}}, "required": [field]},
                            "then": {"required": needed}} for field, value, needed in conditional]
    return schema


def text(title, description=None):
    prop = {"type": "string", "title": title, "minLength": 1}
    if description:
        prop["description"] = description
    return prop


def enum(title, values, description):
    return {"type": "string", "title": title, "enum": values, "description": description}


def boolean(title, description):
    return {"type": "boolean", "title": title, "description": description}


CALL_TYPES = ["wish", "rfc", "service request", "incident", "risk"]

FORMS = {
    "accept-call": _form("Accept call", "Verify the requester and the call type.", {
        "intake_decision": enum("Decision", ["accept", "refuse", "reclassify"],
                                "accept: authorised requester, right call type; refuse: the requester is not "
                                "authorised; reclassify: the call is of another type and is handed over as a new call"),
        "reclassify_as": enum("New call type", CALL_TYPES, "the type the call really is (when reclassified)"),
        "linked_calls": text("Linked earlier calls", "tracking numbers of related earlier calls"),
        "notes": text("Notes"),
    }, ["intake_decision"], [("intake_decision", "reclassify", ["reclassify_as"])]),
    "classify": _form("Classify", "Categorise and prioritise the call.", {
        "category": text("Category", "from the categorisation table"),
        "impact": enum("Impact (for a risk: effect)", ["high", "medium", "low", "nil"],
                       "how much the call affects the customer's activities"),
        "urgency": enum("Urgency (for a risk: likelihood)", ["high", "medium", "low"],
                        "how long handling can be delayed"),
    }, ["category", "impact", "urgency"]),
    "review-delivery": _form("Review delivery & feedback", "Verify the delivery with the requester.", {
        "delivery_verified": boolean("Delivery verified with the requester", "false sends the call back to the work"),
        "feedback": text("Feedback from the requester"),
    }, ["delivery_verified"]),
    "evaluate-close": _form("Evaluate & close", "Evaluate the handling and close the call.", {
        "handled_properly": boolean("Handled properly", "was it done properly?"),
        "recorded_for_reporting": boolean("Recorded for reporting", "is everything recorded?"),
        "lessons_learned": text("Lessons learned"),
        "standard_candidate": boolean("Candidate standard", "could this call become a standard for future calls?"),
        "improvement_found": boolean("Improvement found", "true submits a risk call for the improvement"),
        "risk_summary": text("Risk to submit", "the improvement, as a risk (threat or opportunity)"),
    }, ["improvement_found"], [("improvement_found", True, ["risk_summary"])]),
    "handle-escalation": _form("Handle escalation", "Escalate a call whose resolution target passed.", {
        "action": enum("Action", ["expedite", "reassign", "inform customer", "accept delay"], "what you did"),
        "note": text("Note"),
    }, ["action"]),
    "register-call": _form("Register & classify call", "Register the call and decide which process handles it.", {
        "requester": text("Requester", "who calls: customer, user, staff member or another call"),
        "summary": text("Request", "what the requester asks or reports"),
        "call_class": enum("Kind of call", list(CALL_CLASSES),
                           "incident: failure of the agreed service now; complaint: dissatisfaction about the past; "
                           "outside agreement: not covered by the agreement (a wish); changes managed "
                           "infrastructure: within the agreement, permanent change (an RFC); no change to managed "
                           "infrastructure: within the agreement (a service request); risk: threat or opportunity"),
    }, ["requester", "summary", "call_class"]),
    "specify-service": _form("Specify the service", "The functional and technical design of the service.", {
        "functional_design": text("Functional design", "facility and support, functionality and functioning"),
        "solution_teams": text("Solution teams", "internal and external teams and their contributions"),
        "technical_design": text("Technical design", "including the measurable 'ready' notification"),
        "cost": text("Cost"),
    }, ["functional_design", "solution_teams", "technical_design"]),
    "draft-offer": _form("Draft offer", "The offer, OLAs/UCs and reservations.", {
        "offer": text("Offer", "in service-agreement format"),
        "olas_ucs": text("OLAs and UCs"),
        "reservations": text("Reservations", "contributions recorded in the reservations register"),
    }, ["offer", "reservations"]),
    "negotiate": _form("Negotiate", "The outcome of the negotiation.", {
        "offer_agreed": boolean("Offer agreed", "true: realize it through an RFC; false: release the reservations "
                                                 "and close the wish"),
        "agreement_reference": text("Service agreement", "reference of the new or changed agreement"),
        "rfc_summary": text("RFC to submit", "agreed specification, delivery dates, MIC updates"),
    }, ["offer_agreed"], [("offer_agreed", True, ["agreement_reference", "rfc_summary"])]),
    "plan-agree": _form("Plan & agree", "The change plan and whether it is agreed.", {
        "change_category": enum("Change category", ["minor", "significant", "major"],
                                "decides the teams and people involved"),
        "change_plan": text("Change plan", "high-level plan, from the impact analysis and the change calendar"),
        "plan_agreed": boolean("Plan agreed", "agreed by the people involved and put on the change calendar"),
    }, ["change_category", "change_plan", "plan_agreed"]),
    "prepare-change": _form("Prepare change", "What was built and prepared.", {
        "build_notes": text("Build", "what was developed, assembled or bought"),
        "test_plan": text("Test plan", "production acceptance and user acceptance"),
        "deployment_plan": text("Deployment plan"),
    }, ["build_notes", "test_plan", "deployment_plan"]),
    "test-release": _form("Test & release", "Test report and release decision.", {
        "test_report": text("Test report"),
        "tests_accepted": boolean("Tests accepted", "false sends the change back to Prepare change"),
        "deployment_request": text("Service request for the deployment", "what Operate must deploy, and how"),
    }, ["test_report", "tests_accepted"], [("tests_accepted", True, ["deployment_request"])]),
    "update-mir": _form("Update MIR", "The MIR registration.", {
        "mir_items": text("Changed MICs", "services and components registered in the MIR"),
    }, ["mir_items"]),
    "analyze": _form("Analyze", "The analysis by this solution team.", {
        "solution_found": boolean("Solution found", "a known solution from the knowledge base, or found by this team "
                                                     "(a workaround counts)"),
        "solution": text("Solution"),
        "workaround": boolean("Workaround", "the solution is a workaround"),
        "next_team": text("Next solution team", "the team the incident is routed to"),
    }, ["solution_found"], [("solution_found", True, ["solution"]), ("solution_found", False, ["next_team"])]),
    "prepare-recovery": _form("Prepare recovery", "The route of the recovery.", {
        "recovery_route": enum("Route", ["operate", "change", "both"],
                               "operate: a service request; change: an RFC (the managed infrastructure changes); "
                               "both: a service request, then an RFC"),
        "recovery_summary": text("Linked call", "what the service request and/or RFC must do"),
        "workaround_in_linked_call": boolean("Workaround in a linked call", "manage the workaround in a linked call"),
    }, ["recovery_route", "recovery_summary"]),
    "plan-activities": _form("Plan activities", "The OPS calendar entries.", {
        "calendar_section": enum("OPS calendar section", ["static", "dynamic", "both"],
                                 "static: recurring activities of new or changed services; dynamic: requests"),
        "planned_activities": text("Planned activities"),
    }, ["calendar_section", "planned_activities"]),
    "execute-activities": _form("Execute activities", "What was done and what was noticed.", {
        "activities_done": text("Activities done", "and the events logged in the OPS log"),
        "failure_noticed": boolean("Failure noticed", "an actual or imminent failure: submitted as an incident"),
        "failure_summary": text("Failure", "what failed or is about to fail"),
        "risk_noticed": boolean("Risk noticed", "a threat or opportunity: submitted as a risk"),
        "risk_summary": text("Risk"),
    }, ["activities_done", "failure_noticed", "risk_noticed"],
        [("failure_noticed", True, ["failure_summary"]), ("risk_noticed", True, ["risk_summary"])]),
    "determine-cause": _form("Determine cause", "The root cause of the risk.", {
        "risk_kind": enum("Kind of risk", ["threat", "opportunity"], "a threat to mitigate or an opportunity to foster"),
        "root_cause": text("Root cause"),
    }, ["risk_kind", "root_cause"]),
    "select-measure": _form("Select measure", "The measure and its follow-up call.", {
        "measure": text("Measure", "the measure with the best business case"),
        "business_case": text("Business case"),
        "residual_risk": text("Residual risk"),
        "measure_call": enum("Follow-up call", ["wish", "rfc", "service request"],
                             "wish: the agreement must change; rfc: within the agreement, the managed "
                             "infrastructure changes; service request: within the agreement, no such change"),
        "follow_up_summary": text("Follow-up call", "what the wish, RFC or service request asks"),
    }, ["measure", "residual_risk", "measure_call", "follow_up_summary"]),
}


# ------------------------------------------------------------------------------------------------
# the priority decision table

PRIORITY_ROWS = [  # impact, urgency, priority
    ("high", "high", "P1"), ("high", "medium", "P2"), ("high", "low", "P3"),
    ("medium", "high", "P2"), ("medium", "medium", "P3"), ("medium", "low", "P4"),
    ("low", "high", "P3"), ("low", "medium", "P4"), ("low", "low", "P4"),
    ("nil", "-", "P4"),
]
STANDARD_TARGETS = {"P1": "PT4H", "P2": "PT8H", "P3": "PT24H", "P4": "PT72H"}


def priority_dmn() -> str:
    rules = []
    for index, (impact, urgency, priority) in enumerate(PRIORITY_ROWS, 1):
        impact_text = f'"{impact}"'
        urgency_text = f'"{urgency}"' if urgency != "-" else "-"
        rules.append(f"""      <rule id="Rule_Priority_{index}">
        <inputEntry id="Rule_Priority_{index}_Impact"><text>{impact_text}</text></inputEntry>
        <inputEntry id="Rule_Priority_{index}_Urgency"><text>{urgency_text}</text></inputEntry>
        <outputEntry id="Rule_Priority_{index}_Priority"><text>"{priority}"</text></outputEntry>
        <outputEntry id="Rule_Priority_{index}_Target"><text>"{STANDARD_TARGETS[priority]}"</text></outputEntry>
      </rule>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" xmlns:dmndi="https://www.omg.org/spec/DMN/20191111/DMNDI/" xmlns:dc="http://www.omg.org/spec/DMN/20180521/DC/" id="Definitions_Priority" name="USM priority" namespace="http://usm-engine.org/definitions">
  <decision id="Decision_Priority" name="Priority">
    <description>Priority = impact x urgency (for a risk: effect x likelihood), with the standard resolution target of each priority. A call's agreement (agreement.service_levels) overrides the standard target.</description>
    <decisionTable id="DecisionTable_Priority" hitPolicy="UNIQUE">
      <input id="Input_Impact" label="Impact (effect)">
        <inputExpression id="InputExpression_Impact" typeRef="string"><text>impact</text></inputExpression>
        <inputValues id="InputValues_Impact"><text>"high","medium","low","nil"</text></inputValues>
      </input>
      <input id="Input_Urgency" label="Urgency (likelihood)">
        <inputExpression id="InputExpression_Urgency" typeRef="string"><text>urgency</text></inputExpression>
        <inputValues id="InputValues_Urgency"><text>"high","medium","low"</text></inputValues>
      </input>
      <output id="Output_Priority" label="Priority" name="priority" typeRef="string" />
      <output id="Output_Target" label="Standard resolution target" name="standard_resolution_target" typeRef="string" />
{chr(10).join(rules)}
    </decisionTable>
  </decision>
  <dmndi:DMNDI>
    <dmndi:DMNDiagram id="DMNDiagram_Priority">
      <dmndi:DMNShape id="DMNShape_Priority" dmnElementRef="Decision_Priority">
        <dc:Bounds height="80" width="180" x="160" y="100" />
      </dmndi:DMNShape>
    </dmndi:DMNDiagram>
  </dmndi:DMNDI>
</definitions>
"""


# ------------------------------------------------------------------------------------------------

FILES = {
    "frame/intake.bpmn": frame_intake, "frame/classify.bpmn": frame_classify, "frame/review.bpmn": frame_review,
    "frame/close.bpmn": frame_close, "processes/agree.bpmn": agree, "processes/change.bpmn": change,
    "processes/recover.bpmn": recover, "processes/operate.bpmn": operate, "processes/improve.bpmn": improve,
    "call.bpmn": service_desk_call, "escalation.bpmn": escalation,
}


def main() -> None:
    written = []
    for name, build in FILES.items():
        written.append((name, build().xml()))
    for key, wf, title, called, permitted, chain in STATIC:
        written.append((f"workflows/{key}.bpmn", static_workflow(key, wf, title, called, permitted, chain).xml()))
    for form, schema in FORMS.items():
        written.append((f"forms/{form}.schema.json", json.dumps(schema, indent=2, ensure_ascii=False) + "\n"))
    written.append(("decisions/priority.dmn", priority_dmn()))
    for name, content in written:
        path = ROOT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    print(f"wrote {len(written)} files under {ROOT}")


if __name__ == "__main__":
    main()
