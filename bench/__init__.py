"""Benchmarks for SPEC §6: each target is a figure measured in one run beside its ceiling (a bare
FastAPI app doing one asyncpg query per request) or its peer (fastapi-users), never a timed test.

Run `make bench` (or `.venv/bin/python -m bench --help`); results go to bench/results/.
"""
