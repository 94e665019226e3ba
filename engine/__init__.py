"""usm-engine's runtime: definitions, cases and tasks on SpiffWorkflow, persisted with SQLAlchemy.

Plain Python in, plain Python out: nothing here knows about HTTP (the `api` package does).
"""
