"""The `usm` command: serve the API, validate and deploy definitions, manage tokens, migrate."""
from __future__ import annotations

import json
import logging
import os
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import click

from usm_engine.engine.errors import DefinitionInvalid, TooLarge
from usm_engine.engine.settings import Settings

DEFINITION_SUFFIXES = (".bpmn", ".dmn", ".json", ".toml")
# The USM definitions: definitions/ of a checkout, or usm_engine/definitions/ of an installed wheel (found
# by path, not importlib.resources, which cannot see a folder mapped into an editable install).
USM_DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions"


def collect_files(paths: tuple[str, ...], root: Path | None = None) -> list[tuple[str, bytes]]:
    """Files named on the command line, and the definition files under any directory named.
    Files under a directory are named by their path relative to it (forms/classify.schema.json)."""
    files = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DEFINITION_SUFFIXES):
                files.append((found.relative_to(path).as_posix(), found.read_bytes()))
        elif path.is_file():
            files.append((path.name, path.read_bytes()))
        else:
            raise click.BadParameter(f"{given} does not exist", param_hint="PATH")
    return files


def format_problem(problem: dict, kind: str = "") -> str:
    """`file:line: element_id: message`, the shape editors and CI logs link to; `kind` ("warning") goes
    before the message, as compilers write it."""
    location = problem.get("file") or "<upload>"
    if problem.get("line"):
        location += f":{problem['line']}"
    element = f" {problem['element_id']}:" if problem.get("element_id") else ""
    return f"{location}:{element} {kind + ': ' if kind else ''}{problem['message']}"


def echo_problems(problems: list[dict], directory: str) -> None:
    """A refused deployment of a folder's files, each problem as directory/file:line: element: message."""
    for problem in problems:
        file = f"{directory}/{problem['file']}" if problem.get("file") else None
        click.echo(format_problem({**problem, "file": file}), err=True)


def echo_warnings(items: list[dict], directory: str | None = None, err: bool = True) -> None:
    """The warnings of deployed definitions (each file's once), as file:line: element: warning: message."""
    seen = set()
    for warning in (w for item in items for w in item.get("warnings", [])):
        key = tuple(sorted((k, str(v)) for k, v in warning.items()))
        if key in seen:
            continue
        seen.add(key)
        file = f"{directory}/{warning['file']}" if directory and warning.get("file") else warning.get("file")
        click.echo(format_problem({**warning, "file": file}, "warning"), err=err)


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """usm-engine: USM workflows as BPMN 2.0, run by SpiffWorkflow behind an HTTP API."""
    from usm_engine.api.settings import SettingsError, settings_from_env

    try:
        ctx.obj = settings_from_env()  # once per command, handed to it (and by `usm serve` to the server)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@main.command(short_help='Migrate, deploy definitions/ and serve the API (with a timer worker).')
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=max(2, os.cpu_count() or 1), show_default="number of CPUs, at least 2",
              type=int, help="server processes")
@click.option("--threads", default=8, show_default=True, type=int,
              help="threads per process, taking turns: one serves at a time, and one whose script runs long "
                   "lets another serve meanwhile (api/serving_gate.py); 1: a runaway script holds the process")
@click.option("--definitions", "definitions_dir", default=str(USM_DEFINITIONS),
              show_default="the USM definitions installed with usm-engine",
              help="directory whose files are deployed at start (skipped if missing)")
@click.option("--worker/--no-worker", "with_worker", default=True, show_default=True,
              help="also run one timer worker (`usm worker`); use --no-worker when workers run elsewhere")
@click.option("--watch", is_flag=True, help="redeploy --definitions whenever a file in it changes, printing "
                                            "problems as file:line: element: message (api/watch.py)")
@click.pass_obj
def serve(settings: Settings, host, port, workers, threads, definitions_dir, with_worker, watch):
    """Migrate the database, deploy definitions/, and serve the API with gunicorn (plus a timer worker)."""
    import atexit
    import tempfile

    # Before anything imports prometheus_client: every process of this server (gunicorn's workers and the
    # timer worker) then writes its metrics to one folder, and /metrics adds them up.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = tempfile.TemporaryDirectory(prefix="usm-metrics-")
        atexit.register(folder.cleanup)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder.name

    from gunicorn.app.base import BaseApplication

    from usm_engine.api import logs
    from usm_engine.api.app import create_app
    from usm_engine.api.connection_counts import ConnectionCounts
    from usm_engine.engine.service import Engine

    logs.configure()
    engine = Engine(settings.engine)
    engine.migrate()
    directory = Path(definitions_dir)
    if directory.is_dir():
        files = collect_files((str(directory),))
        if files:
            try:
                created, items = engine.deploy(files, "system")
            except DefinitionInvalid as exc:
                echo_problems(exc.errors, str(directory))
                raise SystemExit(f"not starting: {definitions_dir} does not deploy") from None
            echo_warnings(items, str(directory))
            click.echo(f"deployed {sum(i['created'] for i in items)} new of {len(items)} definitions "
                       f"from {definitions_dir}", err=True)
    engine.close()
    if watch:
        from usm_engine.api.watch import watch_definitions
        watch_definitions(settings, directory)
    if not settings.admin_token and not settings.tokens_file:
        click.echo("warning: neither USM_ADMIN_TOKEN nor USM_TOKENS_FILE is set, so every API call "
                   "except /healthz will answer 401", err=True)

    worker = TimerWorker() if with_worker else None
    from usm_engine.api.sessions import with_shared_secret
    settings = with_shared_secret(settings)  # before gunicorn forks: one session secret for all its workers

    def stop_worker():
        if worker is not None:
            worker.stop()

    class Server(BaseApplication):
        # Made here, before gunicorn forks: its workers share it to spread kept-alive connections evenly.
        connection_counts = ConnectionCounts()

        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "usm_engine.api.serving_gate.TurnTakingWorker")
            self.cfg.set("accesslog", settings.access_log)
            self.cfg.set("errorlog", "-")
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("on_exit", lambda _arbiter: stop_worker())
            self.cfg.set("child_exit", lambda _arbiter, child: _forget_metrics_of(child.pid))

        def load(self):
            return create_app(settings, migrate=False)

    try:
        Server().run()
    finally:
        stop_worker()


TIMERS_PER_PASS = 100


def timer_loop(engine, stop, interval: float, once: bool = False) -> int:
    """Fire due timers until `stop` is set; returns how many cases moved on. A failure that is not one
    case's (the database away for a while) is logged and tried again after a growing pause, so the worker
    never stops on its own."""
    from usm_engine.engine.database import checkpoint

    pause, fired = interval, 0
    while not stop.is_set():
        try:
            moved = engine.fire_due_timers(limit=TIMERS_PER_PASS)
            checkpoint(engine.db)  # SQLite: keep WAL checkpoints out of the requests' commits
            # More may be due already if the pass was full: go on at once. Else sleep until the next timer
            # falls due rather than a whole interval, so a timer is late by the time it takes to fire, not
            # by up to `interval` (which still bounds how soon a timer of a case started meanwhile by
            # another process is seen).
            wait = 0.0 if moved >= TIMERS_PER_PASS else engine.seconds_to_next_timer(interval)
        except Exception:  # e.g. the database is away: wait and go on
            logging.getLogger("usm.worker").exception("firing timers failed; trying again in %.0f s", pause)
            if once:
                raise SystemExit(1) from None
            stop.wait(pause)
            pause = min(pause * 2, 30)
            continue
        fired, pause = fired + moved, interval
        if once:
            break
        if wait:
            stop.wait(wait)
    return fired


def _forget_metrics_of(pid: int) -> None:
    """A server process ended: its gauges no longer count (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


RESTART_PAUSE_SECONDS = 3


class TimerWorker:
    """The `usm worker` that `usm serve` runs beside gunicorn, started again whenever it exits."""

    def __init__(self):
        import threading

        self.stopping = threading.Event()
        self.process = self._start()
        threading.Thread(target=self._keep, name="timer-worker-keeper", daemon=True).start()

    @staticmethod
    def _start():
        import subprocess

        return subprocess.Popen([sys.executable, "-m", "usm_engine.api.cli", "worker"])

    def _keep(self) -> None:
        while not self.stopping.wait(1):
            # (its exit status is not reliable here: gunicorn's arbiter reaps every child of the master)
            if self.process.poll() is not None and not self.stopping.is_set():
                # A stop of the whole server (a signal to its process group) ends the timer worker at once
                # and the master a moment later: wait that moment rather than start a worker to stop.
                if self.stopping.wait(RESTART_PAUSE_SECONDS):
                    break
                click.echo("the timer worker stopped; starting it again", err=True)
                _forget_metrics_of(self.process.pid)
                self.process = self._start()

    def stop(self) -> None:
        import subprocess

        self.stopping.set()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@main.command(short_help='Fire due timers (any number of workers may run).')
@click.option("--interval", default=1.0, show_default=True, help="seconds between looks for due timers")
@click.option("--once", is_flag=True, help="fire what is due now, then exit")
@click.pass_obj
def worker(settings: Settings, interval, once):
    """Fire due timers. Any number of workers may run against one PostgreSQL database."""
    import signal
    import threading

    from usm_engine.api import logs
    from usm_engine.api.metrics import PrometheusObserver

    logs.configure()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    engine = _engine(settings, PrometheusObserver())
    try:
        fired = timer_loop(engine, stop, interval, once)
        if once:
            click.echo(f"fired timers in {fired} cases")
    finally:
        engine.close()


@main.command(short_help='Check files as a deployment would; print file:line: element: message.')
@click.argument("paths", nargs=-1, required=True)
@click.pass_obj
def validate(settings: Settings, paths):
    """Check BPMN/DMN/form/compliance files as a deployment would; print each problem as
    file:line: element: message. Call activities may only call processes among the files given."""
    import dataclasses
    import tempfile

    from usm_engine.engine.service import Engine

    files = collect_files(paths)
    with tempfile.TemporaryDirectory() as scratch:  # an empty database: nothing is "already deployed"
        engine = Engine(dataclasses.replace(settings.engine, database_url=f"sqlite:///{scratch}/validate.db"))
        engine.migrate()
        try:
            compiled, requirements, _ = engine._compile_upload(files)
        except DefinitionInvalid as exc:
            for problem in exc.errors:
                click.echo(format_problem(problem))
            raise SystemExit(1) from None
        except TooLarge as exc:
            click.echo(f"<upload>: {exc.detail}")
            raise SystemExit(1) from None
        finally:
            engine.close()
    echo_warnings([{"warnings": c.warnings} for c in compiled], err=False)
    click.echo(f"ok: {len(files)} files, {len(compiled)} executable processes, {len(requirements)} compliance "
               f"requirements ({', '.join(c.key for c in compiled)})")


@main.command(short_help='Deploy every .bpmn under a folder, start and drive its cases, report each.')
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "output", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
@click.option("--min-deployed", default=0, show_default=True, help="fail when fewer files deploy")
@click.option("--min-settled", default=0.0, show_default=True,
              help="fail when a smaller percentage of the cases started completes or waits on an event")
@click.option("--no-run", is_flag=True, help="only deploy: start and drive no cases")
def conformance(folder, output, min_deployed, min_settled, no_run):
    """Deploy every .bpmn file under FOLDER on its own (with the DMN and form files and called processes
    beside it) and report each as deployed, refused (with the reasons) or crashed; then start every
    startable definition of each deployed file once and drive it (user tasks with random valid data,
    external tasks by a stub worker, timers by moving the clock), reporting each case as completed,
    waiting on an event, incident, at a limit, stopped or crashed. Exits 1 on a crash (of a deployment
    or a case), an incident of the engine's own, a refusal a person cannot act on, when fewer than
    --min-deployed files deploy, or when fewer than --min-settled percent of the cases complete or wait."""
    from usm_engine.engine.conformance import run
    from usm_engine.engine.conformance_cases import counts

    report = run(Path(folder), drive=not no_run)
    click.echo(json.dumps(report.as_dict(), indent=1) if output == "json" else report.markdown())
    deployed = report.count("deployed")
    settled = counts(report.cases)["completed_or_waiting_percent"] or 0.0 if report.cases else 0.0
    if report.faults or deployed < min_deployed or (not no_run and settled < min_settled):
        click.echo(f"{len(report.faults)} faults, {deployed} deployed (at least {min_deployed} expected), "
                   f"{settled} % of the cases completed or waiting (at least {min_settled} expected)", err=True)
        raise SystemExit(1)


@main.command(short_help='Deploy definition files as one upload (to a server or the database).')
@click.argument("paths", nargs=-1, required=True)
@click.option("--url", default=None, help="a running server (e.g. http://127.0.0.1:8000); default: the "
                                          "database in USM_DATABASE_URL directly")
@click.option("--token", envvar="USM_TOKEN", default=None, help="bearer token for --url "
                                                                 "[env USM_TOKEN, else USM_ADMIN_TOKEN]")
@click.pass_obj
def deploy(settings: Settings, paths, url, token):
    """Deploy definition files, as one upload."""
    files = collect_files(paths)
    if url:
        token = token or settings.admin_token
        if not token:
            raise click.UsageError("deploying to a server needs a token with the designer role: pass --token, or "
                                   "set USM_TOKEN or USM_ADMIN_TOKEN")
        status, body = _post_files(url.rstrip("/") + "/api/v1/definitions", files, token)
        if status >= 400:
            click.echo(body.get("detail", body), err=True)
            for problem in body.get("errors", []):
                click.echo(format_problem(problem), err=True)
            raise SystemExit(1)
        items = body["items"]
    else:
        engine = _engine(settings)
        try:
            _, items = engine.deploy(files, settings.operator)
        except DefinitionInvalid as exc:
            for problem in exc.errors:
                click.echo(format_problem(problem), err=True)
            raise SystemExit(1) from None
        finally:
            engine.close()
    for item in items:
        click.echo(f"{item['key']} v{item['version']} {'deployed' if item['created'] else 'unchanged'}")


def _post_files(url: str, files: list[tuple[str, bytes]], token: str | None) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, content in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", **(
            {"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except urllib.error.URLError as error:
        raise SystemExit(f"cannot reach {url}: {error.reason}") from None


@main.command(short_help='Show what changed between two versions of a deployed definition.')
@click.argument("key")
@click.argument("v1", type=int)
@click.argument("v2", type=int)
@click.option("--json", "as_json", is_flag=True, help="print the differences as JSON")
@click.pass_obj
def diff(settings: Settings, key, v1, v2, as_json):
    """List the elements, sequence flows, forms and conditions (gateway conditions, timers, scripts) that
    were added, removed or changed from version V1 to version V2 of the definition KEY, as stored in
    USM_DATABASE_URL."""
    from usm_engine.engine.definition_diff import as_text
    from usm_engine.engine.errors import DefinitionNotFound

    engine = _engine(settings)
    try:
        result = engine.diff_definition(key, v1, v2)
    except DefinitionNotFound as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        engine.close()
    click.echo(json.dumps(result, indent=1) if as_json else as_text(result))


@main.group(short_help='Manage API tokens.')
def token():
    """Manage API tokens (stored as SHA-256 digests in a TOML file)."""


@token.command("create")
@click.option("--user", required=True, help="user id the token acts as")
@click.option("--role", "roles", multiple=True, required=True,
              help="admin, designer, system, auditor, or a lane role (e.g. service-desk); repeatable")
@click.option("--file", "tokens_file", default=None, type=click.Path(dir_okay=False),
              help="tokens file to append to [default: USM_TOKENS_FILE]")
@click.pass_obj
def token_create(settings: Settings, user, roles, tokens_file):
    """Create a token, append its digest to the tokens file and print the token once."""
    import re

    from usm_engine.api.auth import new_token, token_entry

    tokens_file = tokens_file or settings.tokens_file
    if not tokens_file:
        raise click.UsageError("Missing option '--file' (or set USM_TOKENS_FILE).")

    for value in (user, *roles):
        if not re.fullmatch(r"[A-Za-z0-9._@-]{1,100}", value):
            raise click.BadParameter(f"'{value}' may only use letters, digits and . _ @ -")
    secret = new_token()
    path = Path(tokens_file)
    with path.open("a") as handle:
        handle.write(token_entry(user, list(roles), secret))
    os.chmod(path, 0o600)
    click.echo(secret)


@main.group(short_help='Verify and export the audit trail.')
def audit():
    """Verify and export the audit trail (reads USM_DATABASE_URL directly)."""


def _engine(settings: Settings, observer=None):
    """An engine on the database of the settings, migrated to the newest schema."""
    from usm_engine.engine.service import Engine

    engine = Engine(settings.engine, observer=observer)
    engine.migrate()
    return engine


@audit.command("verify")
@click.pass_obj
def audit_verify(settings: Settings):
    """Recompute every hash chain; print the first broken link and exit 1 if there is one."""
    engine = _engine(settings)
    try:
        result = engine.verify_trails()
    finally:
        engine.close()
    if result["ok"]:
        cases, events = result["cases"], result["events"]
        click.echo(f"ok: every hash chain verifies ({events} event{'s' * (events != 1)} in {cases} "
                   f"case{'s' * (cases != 1)} and the deployments)")
        return
    broken = result["broken"]
    click.echo(f"BROKEN: case {broken.get('case_id')} event {broken.get('seq')}: {broken['reason']}")
    raise SystemExit(1)


@audit.command("export")
@click.option("--since", default=None, help="only events at or after this RFC 3339 time")
@click.option("--case", "case_id", default=None, help="only this case")
@click.option("--business-key", default=None, help="only cases with this business key")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--output", type=click.File("w"), default="-", help="file to write (default: standard output)")
@click.pass_obj
def audit_export(settings: Settings, since, case_id, business_key, fmt, output):
    """Stream events (one JSON object per line, or CSV); memory stays flat whatever the size."""
    from usm_engine.api.routes.audit import write_events_csv
    from usm_engine.engine.clock import parse_rfc3339

    moment = None
    if since:
        try:
            moment = parse_rfc3339(since)
        except ValueError:
            raise click.BadParameter("use an RFC 3339 time such as 2026-11-27T00:00:00Z",
                                     param_hint="--since") from None
    engine = _engine(settings)
    try:
        events = engine.export_events(moment, case_id, business_key)
        if fmt == "csv":
            write_events_csv(events, output)
        else:
            for event in events:
                output.write(json.dumps(event, sort_keys=True) + "\n")
    finally:
        engine.close()


@main.command(short_help='Create or upgrade the database schema.')
@click.pass_obj
def migrate(settings: Settings):
    """Create or upgrade the database schema in USM_DATABASE_URL."""
    _engine(settings).close()
    click.echo("schema is up to date")


from . import cli_cases  # noqa: E402, F401 - registers `usm cases` on main (it imports main from here)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
