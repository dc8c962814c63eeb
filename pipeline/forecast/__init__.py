"""Forecast: from pass counts and losses to laws, forecasts with intervals, backtests and registrations.

- ``estimate``: count tables, the report's P/M restriction, log-pass-rate estimators, bootstraps.
- ``problem_laws``: per-problem laws (power law and sigmoid links) fitted hierarchically; ``posterior``:
  exact (importance-reweighted) posterior draws and the shock shared by a checkpoint; ``laws``: the laws
  stacked by leave-future-out and widened by rolling-origin backtests; ``methods``: the fit methods
  (stacked default, aggregate, per-problem, sigmoid) behind one signature.
- ``fit``: the fit's public primitives (options, prepared data, one method's fit, prediction blocks);
  ``buckets``: difficulty buckets from those primitives; ``capability``: the forecast JSON;
  ``commands``: the ``fit`` and ``backtest`` commands (their arguments and settings).
- ``backtest``: hold out the largest checkpoints in turn; ``register``: immutable forecasts and their scores.
- ``loss_law``: L(C) = a*C^b + c fitted, bootstrapped, backtested; ``loss_forecast``: the forecast with its
  prediction interval and warnings; ``loss``: the held-out loss stage and command; ``loss_table``: the
  command's ``--measurements`` mode (a table of losses).
- the one model (issue 23, not yet the default): ``problem_model`` (every count, NumPyro), ``samplers`` (which
  library), ``pymc_model`` (the PyMC/nutpie twin), ``shapes`` (links weighed by stacking), ``summaries`` (pass@k,
  measurement intervals, the one verdict), ``one_model`` (a family's forecast), ``score_law`` (leaderboard scores).

May import: plumbing, ``generate`` (the loss stage loads models) and ``counts``. Nothing from sampling,
report or run.
"""
