"""Specs rebuilt once per process and shared by every case that runs them.

A definition version is immutable, so its spec objects can be cached by (key, version) forever. A
case pins the versions of the processes its call activities reach when it starts; the set of spec
objects it runs with (a blueprint) is cached by those pins too.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, TypeVar

from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent

from .forms import Form
from .multi_instance import set_ceiling
from .settings import EngineSettings
from .spiff_setup import spec_from_dict, wire_loop_tasks
from .task_outputs import link_data, with_declared_outputs

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


@dataclass(frozen=True)
class StoredDefinition:
    key: str
    version: int
    spec: dict
    embedded: dict
    meta: dict
    hash: str = ""


@dataclass
class UserTaskInfo:
    element_id: str
    name: str | None
    lane: str | None
    documentation: str | None
    form: Form
    definition: str
    version: int


class CompiledVersion:
    """The live spec objects and task metadata of one definition version."""

    def __init__(self, stored: StoredDefinition, max_instances: int = EngineSettings.max_instances):
        self.key, self.version, self.meta, self.hash = stored.key, stored.version, stored.meta, stored.hash
        self.spec = spec_from_dict(stored.spec)
        self.embedded = {name: spec_from_dict(dct) for name, dct in stored.embedded.items()}
        wire_loop_tasks(self.spec, *self.embedded.values())
        self.has_multi_instance = set_ceiling(max_instances, self.spec, *self.embedded.values())
        starts = [task_spec for task_spec in self.spec.task_specs.values() if isinstance(task_spec, StartEvent)]
        self.message_starts = {
            task_spec.event_definition.name for task_spec in starts
            if isinstance(getattr(task_spec, "event_definition", None), MessageEventDefinition)}
        self.plain_start = any(isinstance(getattr(task_spec, "event_definition", None), NoneEventDefinition)
                               for task_spec in starts)
        # A designer marks a definition meant only to be called (Camunda Modeler: untick "Startable").
        self.startable = stored.meta.get("startable", True)
        self.throws = {
            task_spec.event_definition.name
            for spec in (self.spec, *self.embedded.values()) for task_spec in spec.task_specs.values()
            if isinstance(task_spec, ThrowingEvent)
            and isinstance(getattr(task_spec, "event_definition", None), MessageEventDefinition)}
        # Versions deployed before declared outputs joined the form get them here (task_outputs.py).
        task_specs = {(spec.name, getattr(task_spec, "bpmn_id", None)): task_spec
                      for spec in (self.spec, *self.embedded.values()) for task_spec in spec.task_specs.values()}
        self.user_tasks = {
            (task["process"], task["element_id"]): UserTaskInfo(
                element_id=task["element_id"], name=task["name"], lane=task["lane"],
                documentation=task["documentation"], form=Form(_form(task, task_specs)),
                definition=stored.key, version=stored.version)
            for task in stored.meta["user_tasks"]
        }
        self.external_topics = {(task["process"], task["element_id"]): task["topic"]
                                for task in stored.meta.get("external_tasks", [])}
        # The literal parameters of a SpiffWorkflow connector call, which go with its job (worker_tasks.py).
        self.external_parameters = {(task["process"], task["element_id"]): task["parameters"]
                                    for task in stored.meta.get("external_tasks", []) if task.get("parameters")}


def _form(task: dict, task_specs: dict) -> dict | None:
    """The task's form with its declared outputs (task_outputs.py), its data links followed by the spec."""
    task_spec = task_specs.get((task["process"], task["element_id"]))
    if task_spec is None:
        return task["form"]
    links = task.get("data_links") or {}
    form = with_declared_outputs(task["form"], task_spec, links)
    link_data(task_spec, links)
    return form


class Blueprint:
    """Everything a case needs to run: its spec, every subprocess spec it can reach, and task metadata."""

    def __init__(self, main: CompiledVersion, called: list[CompiledVersion]):
        self.key, self.version, self.hash = main.key, main.version, main.hash
        self.spec = main.spec
        self.subprocess_specs = dict(main.embedded)
        self.user_tasks = dict(main.user_tasks)
        self.external_topics = dict(main.external_topics)
        self.external_parameters = dict(main.external_parameters)
        # Element ids are unique within a definition only, so names, lanes and flows are kept per
        # definition, and every process id (its own, embedded subprocesses, called ones) maps to the
        # definition that holds it.
        self.versions = {main.key: main.version}
        self.owner_of = {main.spec.name: main.key, **{name: main.key for name in main.embedded}}
        self.elements_of = {main.key: main.meta["elements"]}
        self.flows_of = {main.key: main.meta.get("flows", {})}
        self.has_multi_instance = main.has_multi_instance or any(c.has_multi_instance for c in called)
        for compiled in called:
            self.subprocess_specs[compiled.key] = compiled.spec
            self.subprocess_specs.update(compiled.embedded)
            self.user_tasks.update(compiled.user_tasks)
            self.external_topics.update(compiled.external_topics)
            self.external_parameters.update(compiled.external_parameters)
            self.versions.setdefault(compiled.key, compiled.version)
            for process_id in (compiled.spec.name, *compiled.embedded):
                self.owner_of.setdefault(process_id, compiled.key)
            self.elements_of.setdefault(compiled.key, compiled.meta["elements"])
            self.flows_of.setdefault(compiled.key, compiled.meta.get("flows", {}))

    def user_task(self, process_id: str, element_id: str) -> UserTaskInfo | None:
        return self.user_tasks.get((process_id, element_id))

    def topic_of(self, process_id: str | None, element_id: str) -> str | None:
        """The topic of an external service task; None for every other element."""
        return self.external_topics.get((process_id, element_id))

    def locate(self, process_id: str | None, element_id: str) -> tuple[str, dict]:
        """(definition key, {name, lane, type}) of an element; an unknown process means the case's own."""
        owner = self._owner(process_id)
        return owner, self.elements_of.get(owner, {}).get(element_id) or {}

    def flows_from(self, process_id: str | None, element_id: str) -> dict[str, str]:
        """{target element id: sequence flow id} of the flows leaving an element of a running process."""
        return self.flows_of.get(self._owner(process_id), {}).get(element_id, {})

    def _owner(self, process_id: str | None) -> str:
        return self.owner_of.get(process_id, self.key) if process_id else self.key


class SpecCache:
    """An LRU of compiled definitions and blueprints; `load(key, version)` reads a stored definition, and
    its multi-instance activities get this engine's ceiling."""

    def __init__(self, load: Callable[[str, int], StoredDefinition], size: int = 256,
                 max_instances: int = EngineSettings.max_instances):
        self._load = load
        self._size = size
        self._max_instances = max_instances
        self._compiled: OrderedDict[tuple[str, int], CompiledVersion] = OrderedDict()
        self._blueprints: OrderedDict[tuple[str, int, tuple[tuple[str, int], ...]], Blueprint] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, table: OrderedDict[_Key, _Value], key: _Key, build: Callable[[], _Value]) -> _Value:
        with self._lock:
            if key in table:
                table.move_to_end(key)
                return table[key]
        value = build()  # built outside the lock: two threads may build the same thing once each
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            while len(table) > self._size:
                table.popitem(last=False)
        return value

    def compiled(self, key: str, version: int) -> CompiledVersion:
        return self._get(self._compiled, (key, version),
                         lambda: CompiledVersion(self._load(key, version), self._max_instances))

    def blueprint(self, key: str, version: int, pins: dict[str, int]) -> Blueprint:
        pin_key = (key, version, tuple(sorted(pins.items())))
        return self._get(self._blueprints, pin_key, lambda: Blueprint(
            self.compiled(key, version),
            [self.compiled(k, v) for k, v in sorted(pins.items()) if k != key]))
