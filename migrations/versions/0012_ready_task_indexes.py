"""The ready tasks of a case, of a lane and of a lane's holders, each read from a partial index of open tasks in
the order it is paged.

Every command reads its case's ready tasks (`case_id = ? AND state = 'ready' ORDER BY created_at, id`), and so
do the fetch of a worklist client (GET /api/v1/tasks?case=ID) and every case the API hands out. SQLite keeps no
statistics here (the engine runs no ANALYZE), so for that query it weighed ix_tasks_case (case_id) against
ix_tasks_state_created (state, created_at, id), one equal column each, and took the one that also gives the
order: a walk of every ready task in the store, 50 ms at 100 000 open tasks, on every command (bench/flat.py,
docs/flat-query-plans.md). The lane filter (GET /api/v1/tasks?lane=NAME) had no index: a lane with few or no
ready tasks walked all of them on both databases; the lane holders' index (lane_role, state) lacked the order.

The new indexes hold only ready tasks (`WHERE state = 'ready'`), so a finished case's tasks cost them nothing;
the queries name the state as a literal so that both databases match them (engine/schema.py READY_STATE).

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

READY_ONLY = sa.text("state = 'ready'")


def upgrade() -> None:
    op.drop_index("ix_tasks_lane_role", "tasks")
    for name, column in (("ix_tasks_ready_case", "case_id"), ("ix_tasks_ready_lane", "lane"),
                         ("ix_tasks_ready_lane_role", "lane_role")):
        op.create_index(name, "tasks", [column, "created_at", "id"], sqlite_where=READY_ONLY,
                        postgresql_where=READY_ONLY)


def downgrade() -> None:
    for name in ("ix_tasks_ready_case", "ix_tasks_ready_lane", "ix_tasks_ready_lane_role"):
        op.drop_index(name, "tasks")
    op.create_index("ix_tasks_lane_role", "tasks", ["lane_role", "state"])
