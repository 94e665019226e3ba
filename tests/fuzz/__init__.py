"""Fuzzing: schemathesis over the OpenAPI document, hypothesis over forms and data merging."""
