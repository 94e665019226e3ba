"""The RestrictedPython script sandbox (engine/sandbox.py).

Escape attempts are real: if the sandbox failed they would write files, so every test that runs one
works in a temporary directory and spies on os.system and open() to prove nothing reached the OS.
"""
from __future__ import annotations

import builtins
import io
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from usm_engine.engine import sandbox
from usm_engine.engine.sandbox import RestrictedEnvironment, is_json_value, make_script_engine
from tests.conftest import FIXTURES

HOSTILE = FIXTURES / "hostile"
PROBE_BPMN = HOSTILE / "escapes.bpmn"

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"


# --- helpers -------------------------------------------------------------------------------------

def script_process(*scripts: str) -> bytes:
    """start -> one script task per script -> end, as process 'proc'."""
    ids = [f"s{i}" for i in range(len(scripts))]
    nodes = ["start", *ids, "end"]
    tasks = "".join(
        f'<bpmn:scriptTask id="{tid}" name="{tid}" scriptFormat="python">'
        f"<bpmn:script>{escape(src)}</bpmn:script></bpmn:scriptTask>"
        for tid, src in zip(ids, scripts, strict=True)
    )
    flows = "".join(
        f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>'
        for i, (a, b) in enumerate(pairwise(nodes))
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="defs" targetNamespace="http://example.com/test">'
        f'<bpmn:process id="proc" isExecutable="true">'
        f'<bpmn:startEvent id="start"/>{tasks}<bpmn:endEvent id="end"/>{flows}'
        f"</bpmn:process></bpmn:definitions>"
    ).encode()


def gateway_process(script: str, condition: str) -> bytes:
    """start -> script -> exclusive gateway; `condition` leads to end 'yes', the default to 'no'."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="http://example.com/test">'
        f'<bpmn:process id="proc" isExecutable="true">'
        f'<bpmn:startEvent id="start"/>'
        f'<bpmn:scriptTask id="script" scriptFormat="python">'
        f'<bpmn:script>{escape(script)}</bpmn:script></bpmn:scriptTask>'
        f'<bpmn:exclusiveGateway id="gw" default="to_no"/>'
        f'<bpmn:endEvent id="yes"/><bpmn:endEvent id="no"/>'
        f'<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="script"/>'
        f'<bpmn:sequenceFlow id="f1" sourceRef="script" targetRef="gw"/>'
        f'<bpmn:sequenceFlow id="to_yes" sourceRef="gw" targetRef="yes">'
        f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(condition)}</bpmn:conditionExpression>'
        f"</bpmn:sequenceFlow>"
        f'<bpmn:sequenceFlow id="to_no" sourceRef="gw" targetRef="no"/>'
        f"</bpmn:process></bpmn:definitions>"
    ).encode()


def workflow_from_xml(xml: bytes, process_id: str = "proc", parser_class=CamundaParser) -> BpmnWorkflow:
    parser = parser_class()
    parser.add_bpmn_str(xml, filename="x.bpmn")
    return BpmnWorkflow(parser.get_spec(process_id), script_engine=make_script_engine())


def workflow_from_file(path: Path, process_id: str, parser_class=CamundaParser, script_engine=None) -> BpmnWorkflow:
    parser = parser_class()
    parser.add_bpmn_file(str(path))
    return BpmnWorkflow(parser.get_spec(process_id), script_engine=script_engine or make_script_engine())


def task_data(wf: BpmnWorkflow, bpmn_id: str) -> dict:
    [task] = [t for t in wf.get_tasks() if t.task_spec.bpmn_id == bpmn_id]
    return task.data


def reached(wf: BpmnWorkflow, bpmn_id: str) -> bool:
    return any(t.task_spec.bpmn_id == bpmn_id and t.state == TaskState.COMPLETED for t in wf.get_tasks())


@pytest.fixture
def os_spy(monkeypatch, tmp_path):
    """Work in an empty directory and record every os.system/os.popen/open call made meanwhile.

    The spies do not run commands, and hand out a fake for /etc/passwd and the probe's output files.

    os.system is replaced in the os module's namespace, which is the very dict the
    `_wrap_close.__init__.__globals__['system']` escape reads from.
    """
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    calls: list[tuple[str, str]] = []
    real_open = builtins.open

    def spy_system(command):
        calls.append(("system", str(command)))
        return 1

    def spy_popen(command, *args, **kwargs):
        calls.append(("popen", str(command)))
        raise OSError("blocked by test")

    def spy_open(file, *args, **kwargs):
        calls.append(("open", str(file)))
        if str(file) == "/etc/passwd" or "pwned" in str(file):
            return io.StringIO("spy: not the real file")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "system", spy_system)
    monkeypatch.setattr(os, "popen", spy_popen)
    monkeypatch.setattr(builtins, "open", spy_open)
    return SimpleNamespace(dir=tmp_path, calls=calls)


def assert_nothing_reached_os(spy) -> None:
    assert [c for c in spy.calls if c[0] in ("system", "popen")] == []
    suspicious = [c for c in spy.calls if c[1] == "/etc/passwd" or "pwned" in c[1]]
    assert suspicious == []
    written = [p.relative_to(spy.dir).as_posix() for p in spy.dir.rglob("*") if p.is_file()]
    assert written == []


# --- 1. ordinary scripts -------------------------------------------------------------------------

ORDINARY_SCRIPT = """\
items = [dict(sku=s, qty=i + 1) for i, s in enumerate(['a', 'b', 'c'])]
total = 0
for it in items:
    total += it['qty']
by_sku = {it['sku']: it['qty'] for it in items}
summary = {'n': len(items), 'max': max(i['qty'] for i in items), 'skus': sorted(set(i['sku'] for i in items))}
summary['ok'] = True
by_sku['z'] = 26
del by_sku['a']
items.append({'sku': 'd', 'qty': 0})
label = "total=%d of %s" % (total, 'three')
pairs = [[k, v] for k, v in sorted(by_sku.items())]
first, *rest = [1, 2, 3]
text = f"{label}!"
rounded = round(sum([0.5, 1.25]), 1)
flags = [any([False, True]), all([]), isinstance(total, int)]
ranged = list(zip(range(2), reversed(['x', 'y'])))
chosen = list(filter(None, map(abs, [-1, 0, 2])))
print('printing is accepted and discarded')
"""


def test_ordinary_script_results_land_in_task_data():
    wf = workflow_from_xml(script_process(ORDINARY_SCRIPT, "total += 10\nbigger = min(total, 100)"))
    wf.do_engine_steps()

    assert wf.is_completed()
    data = task_data(wf, "s1")
    assert data["items"][-1] == {"sku": "d", "qty": 0}
    assert data["total"] == 16
    assert data["bigger"] == 16
    assert data["by_sku"] == {"b": 2, "c": 3, "z": 26}
    assert data["summary"] == {"n": 3, "max": 3, "skus": ["a", "b", "c"], "ok": True}
    assert data["label"] == "total=6 of three"
    assert data["text"] == "total=6 of three!"
    assert data["pairs"] == [["b", 2], ["c", 3], ["z", 26]]
    assert (data["first"], data["rest"]) == (1, [2, 3])
    assert data["rounded"] == 1.8
    assert data["flags"] == [True, True, True]
    assert data["chosen"] == [1, 2]
    # The loop variable is ordinary data too (Spiff semantics), but nothing non-JSON survives:
    # the tuples from zip() are dropped, and so is RestrictedPython's print collector.
    assert data["it"] == {"sku": "c", "qty": 3}
    assert "ranged" not in data
    assert not [k for k in data if k.startswith("_")]
    json.dumps(data)


def test_a_field_reads_as_an_attribute_and_a_missing_attribute_is_an_error_not_none():
    # Case data is JSON: order.size reads the field as order["size"] does; a dict's own methods come first.
    wf = workflow_from_xml(script_process('order = {"size": "L", "items": 3}\n'
                                          'size = order.size\nkeys = sorted(order.keys())'))
    wf.do_engine_steps()
    assert task_data(wf, "s0")["size"] == "L" and task_data(wf, "s0")["keys"] == ["items", "size"]
    # RestrictedPython alone reads a missing attribute as None, so a typo went on silently.
    for script in ('order = {"size": "L"}\nsize = order.sise', 'word = "x"\nn = word.lenght'):
        wf = workflow_from_xml(script_process(script))
        with pytest.raises(WorkflowTaskException, match="has no attribute"):
            wf.do_engine_steps()


def test_ordinary_gateway_condition_is_evaluated():
    xml = gateway_process("amount = sum([100, 250])", "\n        amount > 300 and len(str(amount)) == 3\n    ")
    wf = workflow_from_xml(xml)
    wf.do_engine_steps()

    assert wf.is_completed()
    assert reached(wf, "yes") and not reached(wf, "no")


def test_make_script_engine_uses_the_restricted_environment():
    engine = make_script_engine()
    assert isinstance(engine, PythonScriptEngine)
    assert isinstance(engine.environment, RestrictedEnvironment)


def test_sandbox_builtins_expose_no_escape_hatches():
    names = RestrictedEnvironment().globals["__builtins__"]
    forbidden = {"type", "getattr", "eval", "exec", "open", "__import__", "globals", "vars", "compile",
                 "locals", "SystemExit", "KeyboardInterrupt", "BaseException"}
    assert forbidden.isdisjoint(names)
    for needed in ("dict", "list", "set", "tuple", "enumerate", "sum", "min", "max", "any", "all", "map",
                   "filter", "reversed", "sorted", "len", "range", "zip", "abs", "round", "str", "int",
                   "float", "bool", "isinstance"):
        assert needed in names, needed


def test_extra_globals_are_available_but_cannot_replace_guards():
    env = RestrictedEnvironment({"double": lambda x: 2 * x})
    data = {"n": 21}
    env.execute("answer = double(n)", data)
    assert data == {"n": 21, "answer": 42}
    assert env.evaluate("double(n)", {"n": 4}) == 8

    with pytest.raises(ValueError, match="_getattr_"):
        RestrictedEnvironment({"_getattr_": getattr})


def test_task_data_cannot_replace_guards_in_expressions():
    # A hostile form field named like a guard must not switch that guard off.
    hostile = {"x": 5, "_getattr_": "nope", "__builtins__": {}}
    assert RestrictedEnvironment().evaluate("x.real + len([x])", hostile) == 6


def test_compiled_code_is_cached():
    env = RestrictedEnvironment()
    expression = "cache_probe_value * 3 + 1"
    env.evaluate(expression, {"cache_probe_value": 1})
    hits = sandbox._compile.cache_info().hits
    for i in range(5):
        assert env.evaluate(expression, {"cache_probe_value": i}) == i * 3 + 1
    assert sandbox._compile.cache_info().hits == hits + 5
    assert sandbox._compile.cache_info().maxsize == sandbox.COMPILE_CACHE_SIZE


# --- 2. escape attempts, one per script (fixtures/hostile/escapes.bpmn) --------------------------

DANGEROUS_STEPS = {
    # bpmn id -> the exception the sandbox turns it into
    "do_import": "ImportError",
    "do_dunder": "SyntaxError",
    "do_open": "NameError",
    "do_escape": "SyntaxError",
    "gw": "SyntaxError",
}


def test_every_escape_in_dangerous_bpmn_is_blocked(os_spy):
    wf = workflow_from_file(PROBE_BPMN, "dangerous")
    failed: dict[str, str] = {}
    # Each dangerous step fails in turn; completing the failed task by hand moves on to the next
    # one, so every script in the file is attempted. The gateway is the last one.
    while True:
        with pytest.raises(WorkflowTaskException) as info:
            wf.do_engine_steps()
        err = info.value
        bpmn_id = err.task.task_spec.bpmn_id
        assert err.task.state == TaskState.ERROR
        failed[bpmn_id] = err.error_type
        if bpmn_id == "gw":
            break
        assert isinstance(err.line_number, int) and err.line_number >= 1
        err.task.complete()

    assert failed == DANGEROUS_STEPS
    assert not reached(wf, "end_cond")
    data = task_data(wf, "gw")
    assert data["summary"]["ok"] is True  # the ordinary script before them did run
    for key in ("pid", "rc_import", "rc_dunder", "passwd_head", "escaped", "os"):
        assert key not in data
    assert_nothing_reached_os(os_spy)


def test_dangerous_bpmn_does_escape_without_the_sandbox(os_spy):
    """Control: proves the spies above can see an escape, so their silence means something."""
    from SpiffWorkflow.bpmn.script_engine import TaskDataEnvironment

    wf = workflow_from_file(PROBE_BPMN, "dangerous",
                            script_engine=PythonScriptEngine(environment=TaskDataEnvironment()))
    wf.do_engine_steps()
    assert ("system", "echo imported > out/pwned_import.txt") in os_spy.calls
    assert ("open", "/etc/passwd") in os_spy.calls


# --- 3. scripts that read secrets (fixtures/hostile/read_*.bpmn) ---------------------------------

@pytest.mark.parametrize("parser_class", [CamundaParser, SpiffBpmnParser])
@pytest.mark.parametrize("filename, script_id, error_type, leaked_key", [
    ("read_etc_passwd.bpmn", "read_etc_passwd", "NameError", "user_list"),
    ("read_env.bpmn", "import_os", "ImportError", "env"),
])
def test_secret_reading_models_fail_without_reading(
        os_spy, monkeypatch, parser_class, filename, script_id, error_type, leaked_key):
    monkeypatch.setenv("USM_SANDBOX_CANARY", "canary-secret-value")
    wf = workflow_from_file(HOSTILE / filename, "dangerous", parser_class=parser_class)

    with pytest.raises(WorkflowTaskException) as info:
        wf.do_engine_steps()

    assert info.value.task.task_spec.bpmn_id == script_id
    assert info.value.error_type == error_type
    assert info.value.line_number == 1
    assert not wf.is_completed()
    data = info.value.task.data
    assert leaked_key not in data
    assert "canary-secret-value" not in json.dumps(data)
    assert_nothing_reached_os(os_spy)


# --- 4. individual escape techniques -------------------------------------------------------------

SCRIPT_ESCAPES = {
    "subclasses": (
        "for c in ().__class__.__base__.__subclasses__():\n"
        "    if c.__name__ == '_wrap_close':\n"
        "        c.__init__.__globals__['system']('touch out/pwned')",
        SyntaxError,
    ),
    "generator frame": (
        "g = (x for x in [])\n"
        "b = g.gi_frame.f_back.f_builtins\n"
        "b['open']('out/pwned', 'w').write('x')",
        SyntaxError,
    ),
    "str.format traversal": ("leak = '{0.__class__}'.format(1)", NotImplementedError),
    "str.format globals": ("leak = '{0.__init__.__globals__}'.format(random.Random())", NotImplementedError),
    "string.Formatter": ("leak = string.Formatter().format('{0.__class__}', 1)", NotImplementedError),
    "getattr": ("cls = getattr(1, '__class__')", NameError),
    "import os": ("import os\nos.system('touch out/pwned')", ImportError),
    "from import": ("from os import system\nsystem('touch out/pwned')", ImportError),
    "open read": ("passwd = open('/etc/passwd').read()", NameError),
    "open write": ("open('out/pwned', 'w').write('x')", NameError),
    "eval": ("x = eval('1')", SyntaxError),
    "exec": ("exec('x=1')", SyntaxError),
    "__import__": ("__import__('os').system('touch out/pwned')", SyntaxError),
    "type": ("t = type(1)", NameError),
    "globals": ("g = globals()", NameError),
    "vars": ("v = vars()", NameError),
    "builtins name": ("b = __builtins__", SyntaxError),
    "class definition": ("class Evil:\n    pass", NameError),
    "process exit": ("raise SystemExit(0)", NameError),
}

EXPRESSION_ESCAPES = {
    "subclasses": ("().__class__.__base__.__subclasses__()", SyntaxError),
    "generator frame": ("(x for x in []).gi_frame", SyntaxError),
    "str.format traversal": ("'{0.__class__}'.format(1)", NotImplementedError),
    "getattr": ("getattr(1, '__class__')", NameError),
    "open": ("open('/etc/passwd')", NameError),
    "eval": ("eval('1')", SyntaxError),
    "exec": ("exec('x=1')", SyntaxError),
    "__import__": ("__import__('os').system('touch out/pwned')", SyntaxError),
    "type": ("type(1)", NameError),
    "function globals": ("(lambda: 0).__globals__", SyntaxError),
}


@pytest.mark.parametrize("name", SCRIPT_ESCAPES)
def test_script_escape_is_blocked(os_spy, name):
    script, expected = SCRIPT_ESCAPES[name]
    data = {"existing": 1}
    with pytest.raises(expected):
        RestrictedEnvironment().execute(script, data)
    assert_nothing_reached_os(os_spy)
    assert is_json_value(data)


@pytest.mark.parametrize("name", EXPRESSION_ESCAPES)
def test_expression_escape_is_blocked(os_spy, name):
    expression, expected = EXPRESSION_ESCAPES[name]
    with pytest.raises(expected):
        RestrictedEnvironment().evaluate(expression, {"existing": 1})
    assert_nothing_reached_os(os_spy)


@pytest.mark.parametrize("name", ["subclasses", "open read", "process exit"])
def test_script_escape_in_a_workflow_fails_the_task(os_spy, name):
    script, expected = SCRIPT_ESCAPES[name]
    wf = workflow_from_xml(script_process(script))
    with pytest.raises(WorkflowTaskException) as info:
        wf.do_engine_steps()
    assert info.value.error_type == expected.__name__
    assert info.value.task.state == TaskState.ERROR
    assert_nothing_reached_os(os_spy)


# --- 5. non-JSON values do not become task data --------------------------------------------------

def test_non_json_locals_are_not_left_in_task_data():
    script = (
        "module = math\n"
        "other_module = random\n"
        "func = lambda: 1\n"
        "def helper():\n"
        "    return 1\n"
        "cls = dict\n"
        "builtin = len\n"
        "method = [].append\n"
        "obj = random.Random()\n"
        "gen = (i for i in [1])\n"
        "a_set = {1, 2}\n"
        "a_tuple = (1, 2)\n"
        "raw = b'bytes'\n"
        "nested_func = [1, {'f': len}]\n"
        "kept = {'a': [1, 2.5, None, True, 'x'], 'b': {'c': []}}\n"
        "int_keys = {1: 'one'}\n"
        "helper_result = helper()\n"
    )
    wf = workflow_from_xml(script_process(script))
    wf.do_engine_steps()

    data = task_data(wf, "s0")
    assert data == {
        "kept": {"a": [1, 2.5, None, True, "x"], "b": {"c": []}},
        "int_keys": {1: "one"},
        "helper_result": 1,
    }
    json.dumps(data)


def test_non_json_values_are_dropped_even_when_the_script_fails():
    data = {"before": [1]}
    with pytest.raises(ZeroDivisionError):
        RestrictedEnvironment().execute("m = math\nok = 2\nboom = 1 / 0", data)
    assert data == {"before": [1], "ok": 2}


def test_non_json_values_already_in_task_data_are_dropped():
    data = {"inherited": object(), "fine": "yes"}
    RestrictedEnvironment().execute("x = 1", data)
    assert data == {"fine": "yes", "x": 1}


@pytest.mark.parametrize("value", [
    None, True, 0, -1.5, 10**30, "", "text", [], {}, [1, "a", None, [2.0, {"k": False}]],
    {"a": {"b": {"c": [1]}}}, {1: "int key", 2.5: "float key", None: "none key"}, {True: "bool key"},
])
def test_is_json_value_accepts_json(value):
    assert is_json_value(value) is True


@pytest.mark.parametrize("value", [
    (1, 2), {1, 2}, frozenset(), b"x", bytearray(b"x"), object(), len, lambda: 1, os, dict,
    [1, (2,)], {"k": {1}}, {(1, 2): "tuple key"}, [[[len]]], 1j, range(3),
    float("nan"), float("inf"), [float("-inf")],
])
def test_is_json_value_rejects_everything_else(value):
    assert is_json_value(value) is False


def test_is_json_value_handles_cycles_shared_references_and_depth():
    cyclic: list = [1]
    cyclic.append(cyclic)
    assert is_json_value(cyclic) is False

    cyclic_dict: dict = {}
    cyclic_dict["self"] = {"up": cyclic_dict}
    assert is_json_value(cyclic_dict) is False

    shared = {"x": 1}
    assert is_json_value([shared, shared, {"again": shared}]) is True

    deep: list = []
    node = deep
    for _ in range(100_000):  # far beyond the recursion limit
        child: list = []
        node.append(child)
        node = child
    assert is_json_value(deep) is True
    node.append(len)
    assert is_json_value(deep) is False


# --- 6. errors are reported, not hidden ----------------------------------------------------------

@pytest.mark.parametrize("script, line_number, error_line", [
    ("x = 1\ny = (", 2, "y = ("),  # Python's own syntax error
    ("a = 1\nb = 2\nc = a.__class__", 3, "c = a.__class__"),  # RestrictedPython policy error
    ("if a:", 1, "if a:"),  # Python points past the last line
])
def test_syntax_error_becomes_workflow_task_exception_with_line(script, line_number, error_line):
    wf = workflow_from_xml(script_process(script))
    with pytest.raises(WorkflowTaskException) as info:
        wf.do_engine_steps()

    err = info.value
    assert err.error_type == "SyntaxError"
    assert isinstance(err.line_number, int)
    assert err.line_number == line_number
    assert err.error_line == error_line
    assert err.task.state == TaskState.ERROR


def test_syntax_error_in_condition_becomes_workflow_task_exception():
    wf = workflow_from_xml(gateway_process("a = 1", "a >"))
    with pytest.raises(WorkflowTaskException) as info:
        wf.do_engine_steps()
    assert info.value.error_type == "SyntaxError"
    assert info.value.task.task_spec.bpmn_id == "gw"


def test_runtime_error_with_non_string_argument_is_reported():
    # Spiff concatenates err.args[0] to a str; KeyError(0) used to become a TypeError there.
    wf = workflow_from_xml(script_process("d = {}\nx = 1\nvalue = d[0]"))
    with pytest.raises(WorkflowTaskException) as info:
        wf.do_engine_steps()
    assert info.value.error_type == "KeyError"
    assert info.value.line_number == 3
    assert info.value.error_line == "value = d[0]"


# --- 7. threads ----------------------------------------------------------------------------------

def test_one_script_engine_serves_several_threads():
    engine = make_script_engine()
    barrier = threading.Barrier(4)

    def work(worker: int) -> list:
        barrier.wait()
        results = []
        for i in range(300):
            task = SimpleNamespace(data={"values": list(range(i % 17)), "k": worker})
            # A distinct expression per worker and round, so compilation also runs concurrently.
            expression = f"sum(v * k for v in values) + {worker * 1000 + i % 50}"
            results.append(engine.evaluate(task, expression))
            data = {"n": i, "k": worker}
            engine.environment.execute("out = [n * k for _ in range(3)]\nm = math", data)
            results.append(data)
        return results

    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(work, range(4)))

    for worker, results in enumerate(outputs):
        for i in range(300):
            assert results[2 * i] == sum(v * worker for v in range(i % 17)) + worker * 1000 + i % 50
            assert results[2 * i + 1] == {"n": i, "k": worker, "out": [i * worker] * 3}
