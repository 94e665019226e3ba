"""Benchmarks, run by hand (not by the tests): see BENCHMARKS.md at the repository root."""
