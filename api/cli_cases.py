"""`usm cases`: commands on cases straight in USM_DATABASE_URL (registered by cli.py).

`usm cases migrate` moves one case, or every unfinished case a filter selects, to another version of its
definition, through the same engine command as POST /api/v1/cases/{id}/migrate and /api/v1/cases/migrate.
"""
from __future__ import annotations

import json

import click

from usm_engine.engine.errors import EngineError
from usm_engine.engine.settings import Settings

from .cli import _engine, main


def _mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        old, equals, new = pair.partition("=")
        if not equals or not old.strip() or not new.strip():
            raise click.BadParameter(f"'{pair}' is not OLD_ID=NEW_ID", param_hint="--map")
        mapping[old.strip()] = new.strip()
    return mapping


def _line(report: dict) -> str:
    where = f"{report['case_id']} {report['definition']} v{report['from_version']} -> v{report['to_version']}"
    if report["result"] != "refused":
        return f"{where}: {report['result'].replace('_', ' ')}"
    return f"{where}: refused: {'; '.join(report['reasons'])}"


@main.group(short_help='Commands on cases (migrate them to another definition version).')
def cases():
    """Commands on cases (reads and writes USM_DATABASE_URL directly)."""


@cases.command("migrate", short_help='Move cases to another version of their definition.')
@click.argument("case_id", required=False)
@click.option("--to-version", type=click.IntRange(min=1), required=True, help="the version to move to")
@click.option("--map", "pairs", multiple=True, metavar="OLD_ID=NEW_ID",
              help="an element of the case's version and its counterpart in the target (repeatable)")
@click.option("--dry-run", is_flag=True, help="only report what would happen")
@click.option("--definition", default=None, help="without CASE_ID: every unfinished case of this definition")
@click.option("--version", "from_version", type=click.IntRange(min=1), default=None, help="only cases on this version")
@click.option("--status", type=click.Choice(["running", "error", "suspended"]), default=None)
@click.option("--waiting-at", default=None, help="only cases with an unfinished step at this element id")
@click.option("--json", "as_json", is_flag=True, help="print each report as a JSON line")
@click.option("--actor", envvar="USER", default="cli", show_default=True, help="who the trail names")
@click.pass_obj
def cases_migrate(settings: Settings, case_id, to_version, pairs, dry_run, definition, from_version, status,
                  waiting_at, as_json, actor):
    """Move CASE_ID, or the cases --definition selects, to --to-version; exits 1 when any is refused."""
    from usm_engine.engine.case_migration import Migration, Selection

    if bool(case_id) == bool(definition):
        raise click.UsageError("name one case (CASE_ID) or a definition (--definition), not both or neither")
    migration = Migration(to_version, _mapping(pairs), dry_run)
    engine = _engine(settings)
    reports: list[dict] = []
    try:
        if case_id:
            reports.append(engine.migrate_cases(case_id, migration, actor))
        else:
            selection, cursor = Selection(definition, from_version, status, waiting_at), None
            while True:
                batch = engine.migrate_cases(selection, migration, actor, cursor=cursor, limit=100)
                reports += batch["items"]
                cursor = batch["next"]
                if cursor is None:
                    break
    except EngineError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        engine.close()
    for report in reports:
        click.echo(json.dumps(report, sort_keys=True) if as_json else _line(report))
    if not reports:
        click.echo("no case matched")
    if any(report["result"] == "refused" for report in reports):
        raise SystemExit(1)
