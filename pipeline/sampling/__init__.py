"""Sampling: where to spend samples, beyond a fixed n per problem.

- ``passuntil``: sampling until success and its exactly unbiased log-p estimates (PassUntil).
- ``adaptive``: the allocation rule that spends samples where they cut the forecast's variance most.
- ``plan``: the ``plan`` and ``passuntil`` commands over a run directory; ``rounds``: adaptive rounds
  inside ``capforecast run`` (the lead passes its own sample-and-judge step in).

May import: plumbing, generate, execute/counts and forecast. Nothing from report or run.
"""
