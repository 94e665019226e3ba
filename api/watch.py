"""`usm serve --watch`: redeploy the definitions folder whenever one of its files changes.

For the designer's loop: save in the modeler, and the server either has a new version a second later or
prints why not, as `file:line: element: message`, while it keeps serving the versions it had (a deployment
is all or nothing). The master process polls modification times in a daemon thread: that needs no
dependency and no inotify watches, and behaves the same on bind mounts and network drives, where change
notifications are unreliable. Each redeploy opens an engine of its own and closes it again, so no database
connection stays open in the master for gunicorn to copy into the workers it forks.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import click

from usm_engine.engine.errors import DefinitionInvalid, EngineError, TooLarge
from usm_engine.engine.settings import Settings

from .cli import DEFINITION_SUFFIXES, collect_files, echo_problems, echo_warnings

Snapshot = dict[str, tuple[int, int]]
SETTLE_SECONDS = 0.3  # editors save in steps (truncate, write, rename): wait until the folder stays put


def snapshot(directory: Path) -> Snapshot | None:
    """(modification time, size) of every definition file under the folder; None if it could not be read
    completely this time (a file or folder went away while we looked)."""
    found: Snapshot = {}
    if not directory.is_dir():
        return found
    try:
        for path in directory.rglob("*"):
            if path.suffix.lower() in DEFINITION_SUFFIXES and path.is_file():
                stat = path.stat()
                found[str(path)] = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        return None
    return found


def redeploy(settings: Settings, directory: Path) -> list[str]:
    """Deploy the folder as `usm serve` does at start; print problems or the new versions on stderr and
    return the new versions ("key vN")."""
    from usm_engine.engine.service import Engine

    files = collect_files((str(directory),)) if directory.is_dir() else []
    if not files:
        click.echo(f"watch: {directory} holds no definition files; nothing deployed", err=True)
        return []
    engine = Engine(settings.engine)
    try:
        _, items = engine.deploy(files, "system")
    except DefinitionInvalid as exc:
        echo_problems(exc.errors, str(directory))
        click.echo(f"watch: {directory} does not deploy; the server keeps the versions it had", err=True)
        return []
    except (TooLarge, EngineError) as exc:  # e.g. a deployment from elsewhere finished first
        click.echo(f"watch: {directory} was not deployed: {exc.detail}", err=True)
        return []
    finally:
        engine.close()
    echo_warnings(items, str(directory))
    new = [f"{item['key']} v{item['version']}" for item in items if item["created"]]
    click.echo(f"watch: redeployed {directory}: " + (f"new version of {', '.join(new)}" if new else
                                                     "no definition changed"), err=True)
    return new


class DefinitionsWatcher:
    """Polls the folder every `interval` seconds and redeploys it once it has changed and settled."""

    def __init__(self, settings: Settings, directory: Path, interval: float = 1.0):
        self.settings, self.directory, self.interval = settings, directory, interval
        self.stopping = threading.Event()
        self.seen = snapshot(directory)
        self.thread = threading.Thread(target=self._run, name="definitions-watcher", daemon=True)

    def start(self) -> DefinitionsWatcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()

    def _settled(self) -> Snapshot | None:
        """The folder once it has stopped changing, or None if nothing changed (or we are stopping)."""
        current = snapshot(self.directory)
        if current is None or current == self.seen:
            return None
        while not self.stopping.wait(SETTLE_SECONDS):
            again = snapshot(self.directory)
            if again == current:
                return current
            current = again
        return None

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            settled = self._settled()
            if settled is None:
                continue
            self.seen = settled
            try:
                redeploy(self.settings, self.directory)
            except Exception:  # e.g. the database is away, or a file vanished mid-read: try at the next change
                logging.getLogger("usm.watch").exception("redeploying %s failed; still watching", self.directory)


def watch_definitions(settings: Settings, directory: Path) -> DefinitionsWatcher:
    """Start watching (for `usm serve --watch`)."""
    click.echo(f"watch: redeploying {directory} whenever a .bpmn, .dmn, .json or .toml file in it changes",
               err=True)
    return DefinitionsWatcher(settings, directory).start()
