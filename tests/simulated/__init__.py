"""Simulated families with a known truth, for tests and benchmarks (not part of the capforecast package).

- ``family``: per-problem power-law families, their pass counts and Bernoulli draws.
- ``scenarios``: the nine validation scenarios on which no single law is exact.
- ``runs``: run-directory fixtures (a valid manifest.json) around a simulated family.

Tests import it as ``simulated`` (pytest puts tests/ on the path); benchmarks add tests/ to ``sys.path``.
"""
