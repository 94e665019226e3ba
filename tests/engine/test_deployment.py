"""compile_bundle against hostile and malformed uploads, and the guarantees a valid one gets.

Whatever is uploaded, compile_bundle either returns definitions or raises DefinitionInvalid (problems
naming file, line and element) or TooLarge; it never reads a file or URL the upload points at, never
hangs, and never lets a RecursionError or another exception escape.
"""
from __future__ import annotations

import http.server
import json
import sys
import threading
import time

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from usm_engine.engine.deployment import CompiledDefinition, Limits, compile_bundle
from usm_engine.engine.errors import DefinitionInvalid, TooLarge
from usm_engine.engine.spiff_setup import spec_from_dict

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
HEADER = ('<?xml version="1.0" encoding="UTF-8"?>\n'
          f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
          'id="Definitions_1" targetNamespace="http://example.com/bpmn">\n')


def bpmn(body: str, pid: str = "p", name: str = "Test process", executable: bool = True,
         extra: str = "") -> bytes:
    """A BPMN document with one process whose body is `body` (line 3 is the <process> element)."""
    flag = "true" if executable else "false"
    return (HEADER + f'  <bpmn:process id="{pid}" name="{name}" isExecutable="{flag}">\n{body}'
            f'  </bpmn:process>\n{extra}</bpmn:definitions>\n').encode()


def simple_body(middle: str = '    <bpmn:task id="t" name="Do it" />\n') -> str:
    return ('    <bpmn:startEvent id="start" />\n' + middle +
            '    <bpmn:endEvent id="end" />\n'
            '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="t" />\n'
            '    <bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="end" />\n')


SIMPLE = bpmn(simple_body())


def rejected(files, limits=None) -> DefinitionInvalid:
    """The DefinitionInvalid raised for `files`, after checking every problem is well-formed."""
    names = {name for name, _ in files}
    with pytest.raises(DefinitionInvalid) as info:
        compile_bundle(files, set(), limits)
    exc = info.value
    assert exc.detail and exc.errors
    for problem in exc.errors:
        assert set(problem) == {"file", "line", "element_id", "message"}
        assert problem["message"].strip()
        assert problem["file"] in names
        for leak in ("<Element", "NoneType", "Traceback"):
            assert leak not in problem["message"]
    return exc


def only_problem(exc: DefinitionInvalid) -> dict:
    assert len(exc.errors) == 1, exc.errors
    return exc.errors[0]


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-MARKER-4711")
    return path


@pytest.fixture
def http_server():
    """A local HTTP server that records every request; an upload must never make it receive one."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # the name BaseHTTPRequestHandler calls
            requests.append(self.path)
            body = b'<!ENTITY leaked "FETCHED-OVER-HTTP">'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def assert_no_leak(exc: DefinitionInvalid, *markers: str) -> None:
    text = json.dumps(exc.errors) + exc.detail
    for marker in markers:
        assert marker not in text


# --- entities, DTDs and includes ------------------------------------------------------------------

def test_external_file_entity_is_refused_unread(secret_file):
    doc = ('<?xml version="1.0"?>\n'
           f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret_file}">]>\n'
           + SIMPLE.decode().split("\n", 1)[1].replace('name="Do it"', 'name="&xxe;"')).encode()
    exc = rejected([("xxe.bpmn", doc)])
    problem = only_problem(exc)
    assert "DOCTYPE" in problem["message"] and problem["line"] == 2
    assert_no_leak(exc, "TOP-SECRET-MARKER-4711")


def test_external_http_entity_is_refused_without_a_request(http_server):
    url, requests = http_server
    doc = ('<?xml version="1.0"?>\n'
           f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "{url}/entity">]>\n'
           + SIMPLE.decode().split("\n", 1)[1].replace('name="Do it"', 'name="&xxe;"')).encode()
    exc = rejected([("xxe.bpmn", doc)])
    assert "DOCTYPE" in only_problem(exc)["message"]
    assert requests == []


def test_parameter_entities_are_refused_without_a_request(http_server, secret_file):
    url, requests = http_server
    doc = ('<?xml version="1.0"?>\n'
           '<!DOCTYPE d [\n'
           f'  <!ENTITY % remote SYSTEM "{url}/evil.dtd">\n'
           f'  <!ENTITY % file SYSTEM "file://{secret_file}">\n'
           '  %remote;\n'
           ']>\n' + SIMPLE.decode().split("\n", 1)[1]).encode()
    exc = rejected([("pe.bpmn", doc)])
    assert "DOCTYPE" in only_problem(exc)["message"]
    assert requests == []
    assert_no_leak(exc, "TOP-SECRET-MARKER-4711", "FETCHED-OVER-HTTP")


def test_billion_laughs_is_refused_quickly():
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, 10)]
    doc = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [' + "".join(entities) + ']>\n'
           + SIMPLE.decode().split("\n", 1)[1].replace('name="Do it"', 'name="&lol9;"')).encode()
    started = time.perf_counter()
    exc = rejected([("lol.bpmn", doc)])
    assert time.perf_counter() - started < 1
    assert "DOCTYPE" in only_problem(exc)["message"]


def test_doctype_without_entities_is_refused_with_its_line():
    doc = ('<?xml version="1.0"?>\n\n<!DOCTYPE definitions>\n' + SIMPLE.decode().split("\n", 1)[1]).encode()
    problem = only_problem(rejected([("doctype.bpmn", doc)]))
    assert "DOCTYPE" in problem["message"] and problem["line"] == 3


def test_utf16_document_with_doctype_is_refused(secret_file):
    text = ('<?xml version="1.0" encoding="UTF-16"?>\n'
            f'<!DOCTYPE d [<!ENTITY xxe SYSTEM "file://{secret_file}">]>\n'
            + SIMPLE.decode().split("\n", 1)[1].replace('name="Do it"', 'name="&xxe;"'))
    for encoded in (text.encode("utf-16"), text.encode("utf-16-le"), text.encode("utf-16-be")):
        exc = rejected([("utf16.bpmn", encoded)])
        assert "DOCTYPE" in only_problem(exc)["message"]
        assert_no_leak(exc, "TOP-SECRET-MARKER-4711")


def test_utf16_document_without_doctype_deploys():
    text = SIMPLE.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    [definition] = compile_bundle([("utf16.bpmn", text.encode("utf-16"))], set())
    assert definition.key == "p"


def test_quoted_doctype_inside_a_script_is_not_a_dtd():
    script = ('    <bpmn:scriptTask id="t" name="Render">\n'
              '      <bpmn:script><![CDATA[html = "<!DOCTYPE html><p>hi</p>"]]></bpmn:script>\n'
              '    </bpmn:scriptTask>\n')
    [definition] = compile_bundle([("script.bpmn", bpmn(simple_body(script)))], set())
    assert definition.key == "p"


def test_xinclude_is_not_processed(secret_file):
    body = simple_body(
        '    <bpmn:task id="t" name="Do it">\n'
        '      <bpmn:extensionElements>\n'
        f'        <xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{secret_file}" '
        'parse="text" />\n'
        '      </bpmn:extensionElements>\n'
        '    </bpmn:task>\n')
    try:
        compiled = compile_bundle([("xinclude.bpmn", bpmn(body))], set())
    except DefinitionInvalid as exc:
        assert_no_leak(exc, "TOP-SECRET-MARKER-4711")
        return
    [definition] = compiled
    stored = json.dumps([definition.spec, definition.embedded, definition.meta])
    assert "TOP-SECRET-MARKER-4711" not in stored


# --- malformed, oversized and foreign documents ---------------------------------------------------

def test_deeply_nested_xml_is_refused_fast_without_recursion_error():
    doc = b"<a>" * 100_000 + b"</a>" * 100_000
    started = time.perf_counter()
    problem = only_problem(rejected([("deep.bpmn", doc)]))
    assert time.perf_counter() - started < 2
    assert "nested" in problem["message"]


def test_deeply_nested_bpmn_elements_are_refused_fast():
    depth = 100_000
    opening = "".join(f'<bpmn:subProcess id="s{i}">' for i in range(depth))
    doc = bpmn("    <bpmn:startEvent id=\"start\" />\n" + opening + "</bpmn:subProcess>" * depth + "\n")
    started = time.perf_counter()
    exc = rejected([("deep.bpmn", doc)], Limits(max_file_bytes=10 * 1024 * 1024))
    assert time.perf_counter() - started < 2
    assert "nested" in only_problem(exc)["message"]


def test_file_over_the_size_limit_is_too_large():
    padding = "<!-- " + "x" * (2 * 1024 * 1024) + " -->\n"
    with pytest.raises(TooLarge) as info:
        compile_bundle([("huge.bpmn", SIMPLE + padding.encode())], set())
    assert "huge.bpmn" in info.value.detail


def test_too_many_elements_is_too_large():
    tasks = "".join(f'    <bpmn:task id="t{i}" />\n' for i in range(6000))
    doc = bpmn(simple_body() + tasks)
    assert len(doc) < Limits().max_file_bytes
    with pytest.raises(TooLarge) as info:
        compile_bundle([("many.bpmn", doc)], set())
    assert "elements" in info.value.detail


def test_too_many_files_is_too_large():
    with pytest.raises(TooLarge):
        compile_bundle([(f"f{i}.bpmn", SIMPLE) for i in range(3)], set(), Limits(max_files=2))


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n\x00\x00", b"PK\x03\x04zip"])
def test_binary_bytes_are_not_xml(content):
    problem = only_problem(rejected([("binary.bpmn", content)]))
    assert "not XML" in problem["message"]


@pytest.mark.parametrize("content", [b"", b"  \n\t ", "\ufeff".encode()])
def test_empty_file(content):
    assert "empty" in only_problem(rejected([("empty.bpmn", content)]))["message"]


def test_truncated_xml_names_its_line():
    problem = only_problem(rejected([("cut.bpmn", SIMPLE[: SIMPLE.index(b"<bpmn:endEvent")])]))
    assert problem["message"].startswith("not well-formed XML") and problem["line"]


def test_non_bpmn_root():
    doc = b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>'
    problem = only_problem(rejected([("page.bpmn", doc)]))
    assert "not a BPMN 2.0 document" in problem["message"] and "<html>" in problem["message"]
    assert problem["line"] == 2


def test_dmn_uploaded_as_bpmn_is_named():
    problem = only_problem(rejected([("rules.bpmn", DMN)]))
    assert ".dmn" in problem["message"]


def test_xsd_violation_has_line_and_element():
    # A BPMN element where BPMN has none (an unknown one would be a vendor extension: test_camunda_vendor_extensions).
    body = simple_body('    <bpmn:task id="t" name="Do it">\n'
                       '      <bpmn:timerEventDefinition />\n'
                       '    </bpmn:task>\n')
    problem = only_problem(rejected([("xsd.bpmn", bpmn(body))]))
    assert problem["message"].startswith("does not conform to the BPMN 2.0 schema")
    assert "bpmn:timerEventDefinition" in problem["message"] and "{http" not in problem["message"]
    assert problem["line"] == 6 and problem["element_id"] == "t"


def test_all_xsd_violations_are_reported_at_once():
    body = simple_body('    <bpmn:task id="t" name="Do it" isForCompensation="x" />\n'
                       '    <bpmn:task id="u" startQuantity="y" />\n')
    exc = rejected([("xsd.bpmn", bpmn(body))])
    assert [p["element_id"] for p in exc.errors] == ["t", "u"]
    assert [p["line"] for p in exc.errors] == [5, 6]


def test_duplicate_element_ids_name_both_lines():
    body = simple_body('    <bpmn:task id="t" name="Do it" />\n    <bpmn:task id="t" name="Again" />\n')
    problem = only_problem(rejected([("dup.bpmn", bpmn(body))]))
    assert "'t' is used by 2 elements (lines 5, 6)" in problem["message"]


# --- SpiffWorkflow's limits -----------------------------------------------------------------------

def chain(length: int) -> bytes:
    nodes = ['    <bpmn:startEvent id="start" />\n']
    flows = []
    previous = "start"
    for i in range(length):
        nodes.append(f'    <bpmn:scriptTask id="t{i}"><bpmn:script>n = {i}</bpmn:script></bpmn:scriptTask>\n')
        flows.append(f'    <bpmn:sequenceFlow id="f{i}" sourceRef="{previous}" targetRef="t{i}" />\n')
        previous = f"t{i}"
    nodes.append('    <bpmn:endEvent id="end" />\n')
    flows.append(f'    <bpmn:sequenceFlow id="f_end" sourceRef="{previous}" targetRef="end" />\n')
    return bpmn("".join(nodes + flows))


def test_600_task_chain_deploys_despite_the_recursive_parser():
    limit = sys.getrecursionlimit()
    started = time.perf_counter()
    [definition] = compile_bundle([("chain.bpmn", chain(600))], set())
    assert time.perf_counter() - started < 10
    assert sys.getrecursionlimit() == limit, "the recursion limit must be restored"
    assert len(definition.meta["elements"]) == 602
    spec = spec_from_dict(definition.spec)
    BpmnWorkflow(spec, {})


def test_chain_at_the_element_limit_never_escapes_a_recursion_error():
    # The longest chain max_elements allows (one task and one flow per link) still parses, or is
    # refused with a problem; either way nothing but DefinitionInvalid/TooLarge comes out.
    length = (Limits().max_elements - 10) // 3  # script tasks have a <script> child
    try:
        compile_bundle([("chain.bpmn", chain(length))], set())
    except DefinitionInvalid as exc:
        assert "split it into call activities" in exc.errors[0]["message"]


def test_duplicate_process_ids_across_files_name_both_files():
    exc = rejected([("one.bpmn", SIMPLE), ("two.bpmn", SIMPLE)])
    problem = only_problem(exc)
    assert "'p'" in problem["message"] and "one.bpmn" in problem["message"] and "two.bpmn" in problem["message"]
    assert problem["element_id"] == "p" and problem["line"] == 3


def test_form_that_is_not_json():
    files = [("approve.bpmn", SIMPLE), ("form.schema.json", b'{"type": "object",')]
    problem = only_problem(rejected(files))
    assert problem["file"] == "form.schema.json" and "not valid JSON" in problem["message"]


def test_form_that_is_not_a_valid_json_schema():
    files = [("approve.bpmn", SIMPLE),
             ("form.schema.json", json.dumps({"type": "object", "properties": {"n": {"type": "integr"}}}).encode())]
    problem = only_problem(rejected(files))
    assert problem["file"] == "form.schema.json"
    assert "not a valid JSON Schema" in problem["message"] and "properties/n/type" in problem["message"]


def test_user_task_naming_a_missing_form():
    body = simple_body('    <bpmn:userTask id="t" name="Fill in" camunda:formKey="missing.schema.json" />\n')
    problem = only_problem(rejected([("form.bpmn", bpmn(body))]))
    assert "missing.schema.json" in problem["message"]
    assert problem["element_id"] == "t" and problem["line"] == 5


def test_call_activity_to_a_missing_process():
    body = simple_body('    <bpmn:callActivity id="t" name="Review" calledElement="review_process" />\n')
    problem = only_problem(rejected([("caller.bpmn", bpmn(body))]))
    assert "'review_process'" in problem["message"] and "'Review' (t)" in problem["message"]
    assert problem["element_id"] == "t" and problem["line"] == 5 and problem["file"] == "caller.bpmn"


def test_call_activity_to_a_deployed_process_is_fine():
    body = simple_body('    <bpmn:callActivity id="t" name="Review" calledElement="review_process" />\n')
    [definition] = compile_bundle([("caller.bpmn", bpmn(body))], {"review_process"})
    assert definition.meta["calls"] == ["review_process"]


def test_call_activity_to_a_process_in_the_same_upload():
    body = simple_body('    <bpmn:callActivity id="t" name="Review" calledElement="review" />\n')
    compiled = compile_bundle([("caller.bpmn", bpmn(body)), ("review.bpmn", bpmn(simple_body(), pid="review"))],
                              set())
    assert {d.key for d in compiled} == {"p", "review"}
    assert next(d for d in compiled if d.key == "p").meta["calls"] == ["review"]


def test_no_executable_process_points_at_the_process():
    problem = only_problem(rejected([("model.bpmn", bpmn(simple_body(), executable=False))]))
    assert 'isExecutable="true"' in problem["message"]
    assert problem["element_id"] == "p" and problem["line"] == 3


def test_implicit_split_after_a_task_deploys_as_bpmn_says():
    # Several flows out of a task: each gets a token (engine/implicit_splits.py; run in
    # test_deploy_data_and_splits.py). Refused until the engine split implicitly.
    body = simple_body() + ('    <bpmn:endEvent id="end2" />\n'
                            '    <bpmn:sequenceFlow id="f3" sourceRef="t" targetRef="end2" />\n')
    [definition] = compile_bundle([("split.bpmn", bpmn(body))], set())
    assert definition.key == "p" and definition.warnings == []


def test_unsupported_element_type_is_named():
    body = ('    <bpmn:startEvent id="start" />\n'
            '    <bpmn:complexGateway id="g" name="Complex" />\n'
            '    <bpmn:endEvent id="end" />\n'
            '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="g" />\n'
            '    <bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="end" />\n')
    problem = only_problem(rejected([("complex.bpmn", bpmn(body))]))
    assert "complex gateway 'Complex' (g)" in problem["message"] and "not support" in problem["message"]
    assert problem["line"] == 5


def test_missing_start_event():
    # Without a start event, what no flow leads to starts (test_deploy_open_models.py); here every node
    # has an incoming flow, so nothing says where the process starts.
    body = ('    <bpmn:task id="t" />\n    <bpmn:task id="u" />\n'
            '    <bpmn:sequenceFlow id="f" sourceRef="t" targetRef="u" />\n'
            '    <bpmn:sequenceFlow id="g" sourceRef="u" targetRef="t" />\n')
    problem = only_problem(rejected([("nostart.bpmn", bpmn(body))]))
    assert "no start event" in problem["message"] and problem["element_id"] == "p"


@pytest.mark.parametrize("reserved", ["Start", "End", "StartEventJoin", "p.EndJoin", "t.BoundaryEventSplit"])
def test_ids_of_internal_steps_deploy_under_the_designers_id(reserved):
    # SpiffWorkflow names internal task specs like this; the parser reads such an id marked, and the spec
    # gives the designer's id back (deploy_ids.py; cases run: test_camunda_reserved_ids.py).
    doc = SIMPLE.replace(b'"end"', f'"{reserved}"'.encode())
    [definition] = compile_bundle([("reserved.bpmn", doc)], set())
    assert definition.meta["elements"][reserved]["type"] == "EndEvent"
    workflow = BpmnWorkflow(spec_from_dict(definition.spec))
    workflow.do_engine_steps()
    [task] = workflow.get_tasks(state=TaskState.READY, manual=True)
    task.run()
    workflow.do_engine_steps()
    assert workflow.is_completed()
    assert reserved in {t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.COMPLETED)}


def nested_data_object(object_id: str = "obj", defined_at: str = "process") -> bytes:
    """A task two subprocesses deep writing a data object defined in the process, the outer or the inner
    subprocess (or nowhere)."""
    def data(level):
        return f'<bpmn:dataObject id="{object_id}" />' if defined_at == level else ""
    inner = (f'{data("inner")}<bpmn:startEvent id="s2" /><bpmn:task id="t">'
             '<bpmn:dataOutputAssociation id="a"><bpmn:targetRef>ref</bpmn:targetRef></bpmn:dataOutputAssociation>'
             '</bpmn:task><bpmn:endEvent id="e2" />'
             '<bpmn:dataObjectReference id="ref" dataObjectRef="obj" />'
             '<bpmn:sequenceFlow id="g1" sourceRef="s2" targetRef="t" />'
             '<bpmn:sequenceFlow id="g2" sourceRef="t" targetRef="e2" />')
    outer = (f'{data("outer")}<bpmn:startEvent id="s1" /><bpmn:subProcess id="inner">{inner}</bpmn:subProcess>'
             '<bpmn:endEvent id="e1" /><bpmn:sequenceFlow id="h1" sourceRef="s1" targetRef="inner" />'
             '<bpmn:sequenceFlow id="h2" sourceRef="inner" targetRef="e1" />')
    return bpmn(f'    {data("process")}<bpmn:startEvent id="start" />\n'
                f'    <bpmn:subProcess id="outer">{outer}</bpmn:subProcess>\n'
                '    <bpmn:endEvent id="end" />\n'
                '    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="outer" />\n'
                '    <bpmn:sequenceFlow id="f2" sourceRef="outer" targetRef="end" />\n')


@pytest.mark.parametrize("defined_at", ["inner", "outer"])
def test_data_object_in_reach_deploys(defined_at):
    [definition] = compile_bundle([("data.bpmn", nested_data_object(defined_at=defined_at))], set())
    assert set(definition.embedded) == {"outer", "inner"}


@pytest.mark.parametrize("defined_at, says", [("process", "too far out"), ("nowhere", "is not defined")])
def test_data_object_out_of_reach_is_refused_instead_of_hanging(defined_at, says):
    # SpiffWorkflow 3.2 loops forever looking for these (node_parser._resolve_data_object_ref).
    started = time.perf_counter()
    problem = only_problem(rejected([("data.bpmn", nested_data_object(defined_at=defined_at))]))
    assert time.perf_counter() - started < 2
    assert says in problem["message"] and "'ref'" in problem["message"] and problem["element_id"] == "t"


def test_a_data_store_deploys_with_a_warning_at_its_location():
    extra = '  <bpmn:dataStore id="ds" name="CRM" />\n'
    [definition] = compile_bundle([("store.bpmn", bpmn(simple_body(), extra=extra))], set())
    [warning] = definition.warnings
    assert warning["file"] == "store.bpmn" and warning["line"] == 10 and warning["element_id"] == "ds"
    assert "data store 'CRM' (ds) is kept as documentation only" in warning["message"]


def test_send_task_the_serializer_cannot_store_is_refused_not_crashing():
    # CamundaParser builds send tasks with the plain BPMN message definition, which the Camunda
    # serializer configuration cannot convert; deploying must say so instead of failing in the store.
    body = simple_body('    <bpmn:sendTask id="t" name="Notify" messageRef="m" />\n')
    extra = '  <bpmn:message id="m" name="notified" />\n'
    try:
        [definition] = compile_bundle([("send.bpmn", bpmn(body, extra=extra))], set())
    except DefinitionInvalid as exc:
        problem = only_problem(exc)
        assert problem["element_id"] == "t" and "cannot be stored" in problem["message"]
    else:
        json.dumps(definition.spec)  # the serializer configuration learned it


# --- DMN, and what a valid deployment carries --------------------------------------------------------

DMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="Definitions_risk" name="Risk"
             namespace="http://example.com/dmn">
  <decision id="risk_level" name="Risk level">
    <decisionTable id="DecisionTable_risk" hitPolicy="UNIQUE">
      <input id="Input_amount" label="Amount">
        <inputExpression id="InputExpression_amount" typeRef="number"><text>amount</text></inputExpression>
      </input>
      <output id="Output_risk" label="Risk" name="risk" typeRef="string" />
      <rule id="Rule_high">
        <inputEntry id="Entry_high"><text>&gt; 1000</text></inputEntry>
        <outputEntry id="Out_high"><text>"high"</text></outputEntry>
      </rule>
      <rule id="Rule_low">
        <inputEntry id="Entry_low"><text>&lt;= 1000</text></inputEntry>
        <outputEntry id="Out_low"><text>"low"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
</definitions>
"""

RULE_TASK = '    <bpmn:businessRuleTask id="t" name="Assess risk" camunda:decisionRef="risk_level" />\n'


def test_valid_bundle_with_a_dmn_decision():
    [definition] = compile_bundle([("assess.bpmn", bpmn(simple_body(RULE_TASK))), ("risk.dmn", DMN)], set())
    assert definition.meta["decisions"] == [{"element_id": "t", "decision_id": "risk_level", "file": "risk.dmn"}]
    assert set(definition.sources) == {"assess.bpmn", "risk.dmn"}
    assert definition.sources["risk.dmn"] == DMN

    workflow = BpmnWorkflow(spec_from_dict(definition.spec), {})
    workflow.task_tree.data.update({"amount": 5000})
    workflow.do_engine_steps()
    assert workflow.get_next_task(spec_name="t").data["risk"] == "high"


def test_business_rule_task_without_decision_ref():
    # Deployed with a warning, as a task with nothing to run (the case: test_deploy_open_models.py).
    body = simple_body('    <bpmn:businessRuleTask id="t" name="Assess risk" />\n')
    [definition] = compile_bundle([("assess.bpmn", bpmn(body)), ("risk.dmn", DMN)], set())
    [warning] = definition.warnings
    assert "camunda:decisionRef" in warning["message"] and warning["element_id"] == "t" and warning["line"] == 5
    assert definition.meta["decisions"] == [] and set(definition.sources) == {"assess.bpmn"}


def test_business_rule_task_with_an_unknown_decision_lists_the_known_ones():
    body = simple_body(RULE_TASK.replace("risk_level", "credit_score"))
    problem = only_problem(rejected([("assess.bpmn", bpmn(body)), ("risk.dmn", DMN)]))
    assert "'credit_score'" in problem["message"] and "'risk_level'" in problem["message"]
    assert problem["element_id"] == "t" and problem["line"] == 5 and problem["file"] == "assess.bpmn"


def test_dmn_that_fails_its_schema():
    broken = DMN.replace(b'<rule id="Rule_high">', b'<rule id="Rule_high"><bogus />')
    exc = rejected([("assess.bpmn", bpmn(simple_body(RULE_TASK))), ("risk.dmn", broken)])
    problem = exc.errors[0]
    assert problem["file"] == "risk.dmn" and "DMN schema" in problem["message"] and problem["line"] == 10


def test_compiled_definition_round_trips():
    [definition] = compile_bundle([("simple.bpmn", SIMPLE)], set())
    assert isinstance(definition, CompiledDefinition)
    assert (definition.key, definition.name, definition.bpmn_file) == ("p", "Test process", "simple.bpmn")
    json.dumps(definition.spec)
    workflow = BpmnWorkflow(spec_from_dict(definition.spec), {})
    workflow.do_engine_steps()
    assert [t.task_spec.bpmn_id for t in workflow.get_tasks(manual=True, state=16)] == ["t"]


def test_content_hash_is_stable_and_sensitive():
    [first] = compile_bundle([("simple.bpmn", SIMPLE)], set())
    [again] = compile_bundle([("simple.bpmn", SIMPLE)], set())
    [spaced] = compile_bundle([("simple.bpmn", SIMPLE.replace(b"<bpmn:task ", b"<bpmn:task  "))], set())
    [renamed] = compile_bundle([("other.bpmn", SIMPLE)], set())
    assert first.hash == again.hash
    assert len({first.hash, spaced.hash, renamed.hash}) == 3


def test_hash_covers_the_dmn_file():
    files = [("assess.bpmn", bpmn(simple_body(RULE_TASK))), ("risk.dmn", DMN)]
    [first] = compile_bundle(files, set())
    [changed] = compile_bundle([files[0], ("risk.dmn", DMN.replace(b'"high"', b'"very high"'))], set())
    assert first.hash != changed.hash


def test_summary_detail_names_file_line_and_element():
    body = simple_body('    <bpmn:callActivity id="t" name="Review" calledElement="review_process" />\n')
    exc = rejected([("caller.bpmn", bpmn(body))])
    assert exc.detail.startswith("the definition is not valid: caller.bpmn:5 (t): call activity")


def test_no_files_and_no_bpmn():
    with pytest.raises(DefinitionInvalid) as info:
        compile_bundle([], set())
    assert info.value.errors[0]["file"] is None
    with pytest.raises(DefinitionInvalid) as info:
        compile_bundle([("risk.dmn", DMN)], set())
    assert "no BPMN file" in info.value.detail
