"""Multi-instance activities over a collection written in BPMN's own form (`loopDataInputRef` with
`inputDataItem`, and optionally `loopDataOutputRef` with `outputDataItem`), or in Camunda 8's
(`zeebe:loopCharacteristics inputCollection="=items" inputElement="item"`). Part of deployment.

SpiffWorkflow runs the standard form natively, but its Camunda flavour, which the engine parses with,
reads only a loop cardinality or `camunda:collection` (and then writes each instance's element variable
back into the collection). So before parsing, `read_standard_loops` resolves the form to variable names,
notes them on the loop characteristics in a namespace of the engine's own, and gives the Camunda parser
the collection it asks for; after parsing, `apply_standard_loop` makes the task spec the standard one:
instances over the collection, each with its item; the outputs, when named, gathered into their own
collection. multi_instance.py then runs it without the Camunda flavour's rewriting.

The collection is the case variable loopDataInputRef names. Where it names a data object (or a reference
to one), that data object is read into the activity through a data association, as SpiffWorkflow passes
data objects, and the output likewise written to one; a process's data input is the case variable of
its id. A collection missing or not a list at run time is the model's incident, said in a sentence
(multi_instance.py). A multi-instance activity that names neither a cardinality nor a collection in any
form stays refused: nothing says how many instances it has.
"""
from __future__ import annotations

from lxml import etree
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask

from .data_associations import reference_to
from .deploy_problems import DeployProblem, describe
from .deploy_schema import BPMN_NS
from .expression_translation import Untranslatable, translate

_B = f"{{{BPMN_NS}}}"
_CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"
_ZEEBE = "{http://camunda.org/schema/zeebe/1.0}"
# The engine's own notes on the parsed copy of a file (never in the stored source).
_USM = "{urn:usm-engine:standard-loop}"
_NOTES = ("collection", "item", "output", "outputItem")


def read_standard_loops(filename: str, tree: etree._ElementTree) -> list[DeployProblem]:
    """Note, in place, the variables of each multi-instance activity of an executable process written in
    the standard or the Camunda 8 form; returns a problem for a Camunda 8 collection that is not a name."""
    problems = []
    root = tree.getroot()
    ids: dict[str | None, etree._Element] = {}
    for element in root.iter():
        if isinstance(element.tag, str) and element.get("id"):
            ids.setdefault(element.get("id"), element)
    for process in root.iterchildren(f"{_B}process"):
        if process.get("isExecutable", "true") != "true":
            continue
        for loop in list(process.iter(f"{_B}multiInstanceLoopCharacteristics")):
            if loop.find(f"{_B}loopCardinality") is not None or loop.get(f"{_CAMUNDA}collection"):
                continue  # the Camunda form: the parser reads it
            activity = loop.getparent()
            if activity is None:  # never: the loop characteristics were found inside the process
                continue
            try:
                names = _standard(loop, ids) or _zeebe(loop)
            except Untranslatable as exc:
                problems.append(DeployProblem(filename, f"{describe(activity)}: {exc}", loop.sourceline,
                                              activity.get("id")))
                continue
            if names is None:
                continue  # neither form: refused by the parser, which says what to set
            _read_and_write_data_objects(loop, names, ids)
            for note, value in zip(_NOTES, names, strict=True):
                if value:
                    loop.set(f"{_USM}{note}", value)
            loop.set(f"{_CAMUNDA}collection", names[0])
    return problems


def _standard(loop: etree._Element, ids: dict) -> tuple[str, str, str, str] | None:
    collection = _text(loop.find(f"{_B}loopDataInputRef"))
    if not collection:
        return None
    return (_variable(collection, ids), _item(loop.find(f"{_B}inputDataItem")),
            _variable(_text(loop.find(f"{_B}loopDataOutputRef")), ids), _item(loop.find(f"{_B}outputDataItem")))


def _zeebe(loop: etree._Element) -> tuple[str, str, str, str] | None:
    zeebe = loop.find(f"{_B}extensionElements/{_ZEEBE}loopCharacteristics")
    if zeebe is None or not (zeebe.get("inputCollection") or "").strip():
        return None
    return (_feel_name(zeebe.get("inputCollection"), "inputCollection"), (zeebe.get("inputElement") or "").strip(),
            (zeebe.get("outputCollection") or "").strip(), _feel_name(zeebe.get("outputElement"), "outputElement"))


def _feel_name(text: str | None, attribute: str) -> str:
    """The variable a Camunda 8 expression (`=items`) reads; refused unless it is a plain name."""
    if not (text or "").strip():
        return ""
    python = translate(text or "") or (text or "").strip()
    if not python.isidentifier():
        raise Untranslatable("FEEL (Camunda 8)", f"its zeebe {attribute} '{(text or '').strip()}' is not the name of "
                                                 "a variable", "compute the list in a script task before the "
                                                 "activity and name that variable here (e.g. =items)")
    return python


def _variable(reference: str, ids: dict) -> str:
    """The case variable loopDataInputRef/loopDataOutputRef names: a data object reference stands for its
    data object, any other element (a data object, a process's data input) is the variable of its id, and
    text that names no element is a variable's name itself."""
    element = ids.get(reference)
    if element is not None and element.tag == f"{_B}dataObjectReference" and element.get("dataObjectRef"):
        return str(element.get("dataObjectRef"))
    return reference


def _item(element: etree._Element | None) -> str:
    # SpiffWorkflow names an item by its id (the name may hold spaces); the name serves when there is no id.
    return "" if element is None else (element.get("id") or element.get("name") or "").strip()


def _text(element: etree._Element | None) -> str:
    return "" if element is None else (element.text or "").strip()


def _read_and_write_data_objects(loop: etree._Element, names: tuple[str, str, str, str], ids: dict) -> None:
    """A collection (or output) that is a data object is read into (written from) the activity through a
    data association, unless the designer drew one: SpiffWorkflow keeps data objects apart from the case
    data and passes them only through associations."""
    activity = loop.getparent()
    assert activity is not None, "loop characteristics found inside a process always belong to an activity"
    for variable, tag, end in ((names[0], "dataInputAssociation", "sourceRef"),
                               (names[2], "dataOutputAssociation", "targetRef")):
        data_object = ids.get(variable)
        if not variable or data_object is None or data_object.tag != f"{_B}dataObject":
            continue
        drawn = {_variable(_text(ref), ids) for ref in activity.iterfind(f"{_B}{tag}/{_B}{end}")}
        if variable not in drawn:
            association = etree.Element(f"{_B}{tag}")
            etree.SubElement(association, f"{_B}{end}").text = reference_to(data_object, activity, ids).get("id")
            loop.addprevious(association)  # the schema's order: associations before loop characteristics


def apply_standard_loop(task_spec: MultiInstanceTask, loop: etree._Element) -> None:
    """Make a multi-instance task spec the standard one noted by read_standard_loops (no-op otherwise)."""
    notes = {note: loop.get(f"{_USM}{note}") for note in _NOTES}
    if not notes["collection"]:
        return
    reference = {note: TaskDataReference(value) if value else None for note, value in notes.items()}
    task_spec.cardinality = None
    task_spec.data_input, task_spec.input_item = reference["collection"], reference["item"]
    task_spec.data_output, task_spec.output_item = reference["output"], reference["outputItem"]
