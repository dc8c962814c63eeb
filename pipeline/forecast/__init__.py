"""Forecast: from pass counts and losses to laws, forecasts with intervals, backtests and registrations.

- ``estimate``: count tables, the report's P/M restriction, log-pass-rate estimators, bootstraps.
- ``problem_laws``: the per-problem power law fitted hierarchically; ``methods``: the fit methods
  (default, aggregate, per-problem) behind one signature.
- ``fit``: the fit's public primitives (options, prepared data, one method's fit, prediction blocks);
  ``buckets``: difficulty buckets from those primitives; ``capability``: the forecast JSON and the
  ``fit`` command.
- ``backtest``: hold out the largest checkpoints in turn; ``register``: immutable forecasts and their scores.
- ``loss_law``: L(C) = a*C^b + c fitted, bootstrapped, backtested; ``loss_forecast``: the forecast with its
  prediction interval and warnings; ``loss``: the held-out loss stage and command; ``loss_table``: the
  command's ``--measurements`` mode (a table of losses).
- ``simulate``: families with a known truth, for tests and benchmarks.

May import: plumbing, ``generate`` (the loss stage loads models) and ``counts``. Nothing from sampling,
report or run.
"""
