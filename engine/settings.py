"""Every setting, with its default, as one object built once at start-up and passed in.

The defaults are the documented ones (README.md, "Configuration"). Reading them from the environment is
the API layer's job (api/settings.py): the engine only receives values, so a test or a tool can run an
engine with any settings without touching the process's environment.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True)
class ScriptLimits:
    """What one sandboxed script or expression may use (engine/script_limits.py enforces them)."""

    seconds: float = 2.0  # wall clock and CPU, per script or expression
    memory_bytes: int = 256 * MIB  # memory a script may take beyond what the process running it holds
    max_items: int = 10_000_000  # characters, list items, or an int's bits/4, built by one operation
    max_helper_calls: int = 100  # calls of the engine's helpers (next_call_number) by one script run


@dataclass(frozen=True)
class Limits:
    """How large an upload of definition files may be (each limit above it answers 413)."""

    max_file_bytes: int = 2 * MIB
    max_files: int = 100
    max_elements: int = 5000  # XML elements in one BPMN or DMN file


@dataclass(frozen=True)
class EngineSettings:
    """The part of the settings the engine itself uses."""

    database_url: str = "sqlite:///usm.db"
    pool_size: int = 10  # PostgreSQL connections per pool, two pools per process (and as many again on overflow)
    limits: Limits = field(default_factory=Limits)
    max_case_data_bytes: int = MIB
    script_limits: ScriptLimits = field(default_factory=ScriptLimits)
    spec_cache_size: int = 256
    # Live workflows kept per process for their cases' next commands, by the size of their stored states
    # (workflow_cache.py); a live workflow takes a few times its state's size. 0 keeps none.
    workflow_cache_bytes: int = 16 * MIB
    max_instances: int = 1000  # instances of one multi-instance activity (its cardinality or collection)
    # Camunda 7 Java service tasks (camunda:class, delegateExpression, expression) become external tasks on a
    # topic named after what they name (java_tasks.py); off, a case reaching one stops with an incident.
    java_as_external_tasks: bool = False
    # Service tasks that name nothing this engine runs, and business rule tasks without a decision, become external
    # tasks on a topic equal to their id (java_tasks.py); off, a case reaching one stops with an incident.
    unimplemented_as_external_tasks: bool = False


@dataclass(frozen=True)
class Settings:
    """The engine's settings plus those of the HTTP server and the command line around it."""

    engine: EngineSettings = field(default_factory=EngineSettings)
    admin_token: str | None = None
    tokens_file: str | None = None
    max_body_bytes: int = 4 * MIB
    max_page_size: int = 500
    access_log: str | None = None  # where gunicorn writes its access log ("-": standard output); None: nowhere
    operator: str = "cli"  # who `usm deploy` records as the deployer when it writes to the database directly
    session_secret: str | None = None  # signs browser sign-in cookies; None: `usm serve` makes one per start
    session_hours: float = 8.0  # how long a browser sign-in lasts (checked on the signed timestamp)
