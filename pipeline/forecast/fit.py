"""The capability fit's public primitives: options, the P/M-restricted data, one method's fit, its prediction
block, the target's actual and the checkpoints' measured points.

``pipeline.forecast.capability`` assembles these (and the buckets) into the forecast JSON. The target
checkpoint, when its counts are present, is never used in the fit: only to report ``actual``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import MIN_FIT_CHECKPOINTS, fit_exclusion
from pipeline.errors import UserError
from pipeline.records import PassCount

@dataclass
class FitOptions:
    """How to fit: interval level, which checkpoints and method, buckets, bootstrap size, seed."""

    level: float = 0.9
    max_fit_compute_fraction: float | None = None   # use only checkpoints with compute <= fraction * target
    method: str = "default"                          # "default", "aggregate" (the report's), "per-problem"
    buckets: int = 6
    hardest_excluded: int | None = None              # H; None = 15/164 of the problem count
    bootstrap: int = 1000
    seed: int = 0
    alternatives: bool = True                        # also report the other methods' forecasts
    target_n: int | None = None                      # samples per problem the target will be measured with,
                                                     # when its counts are not in the input yet

    # The options `fit` and `backtest` take on the command line (in this order in settings_source).
    ON_COMMAND_LINE = ("level", "max_fit_compute_fraction", "method", "buckets", "hardest_excluded", "bootstrap",
                       "seed", "target_n")

    def check(self) -> "FitOptions":
        """Refuse bad values before any fitting (UserError naming the option); returns the options."""
        if not 0 < self.level < 1:
            raise UserError(f"interval level must be between 0 and 1, got {self.level}")
        if self.buckets < 1:
            raise UserError(f"--buckets must be >= 1, got {self.buckets}")
        if self.hardest_excluded is not None and self.hardest_excluded < 0:
            raise UserError(f"--hardest-excluded must be >= 0, got {self.hardest_excluded}")
        return self

    @staticmethod
    def settings_of(family) -> dict:
        """What a family config (pipeline.config.Family) sets: its ``fit:`` section and, with a fixed n, the
        target's sample budget. The one place a config becomes fit options."""
        f = family.fit
        return {"level": f.level, "max_fit_compute_fraction": f.max_fit_compute_fraction, "method": f.method,
                "buckets": f.buckets, "bootstrap": f.bootstrap,
                "target_n": None if family.sampling.adaptive else family.sampling.n}

    @classmethod
    def from_family(cls, family) -> "FitOptions":
        """The options every fit of a run uses (forecast.json, the registered forecast, the backtest)."""
        return cls.resolve({}, family)[0]

    @classmethod
    def resolve(cls, given: dict, family=None) -> tuple["FitOptions", dict]:
        """Options given on the command line over the run's family settings over the defaults, and the source
        of each (pipeline.arguments.layered)."""
        from pipeline.arguments import layered

        given = {name: given.get(name) for name in cls.ON_COMMAND_LINE}
        values, source = layered(given, cls.settings_of(family) if family is not None else {})
        return cls(**values), source


@dataclass
class FitData:
    """The fit's inputs after choosing target, fit checkpoints and the P/M restriction."""

    table: object            # estimate.CountTable over fit checkpoints (all problems)
    target_name: str | None
    target_compute: float
    target_table: object | None   # the target's own counts, when present
    restriction: object      # estimate.Restriction
    excluded: list[dict]
    all_table: object = None  # every checkpoint in the input (for the report's points)
    warnings: list[str] = None


CUTOFF_MARGIN = 0.10   # warn when a checkpoint's compute is within 10% of the fit's compute cutoff


def prepare(counts: list[PassCount], target_name: str | None, target_compute: float | None,
            options: FitOptions) -> FitData:
    """Choose the target and the fit checkpoints, and apply the report's P/M rule."""
    from pipeline.forecast.estimate import count_table, restrict_solved_by_all
    from pipeline.records import foreign_benchmark, foreign_message

    table = count_table(counts)
    if foreign := foreign_benchmark(counts):
        raise UserError(foreign_message(counts, foreign))
    if target_name is not None and target_name not in table.checkpoints and target_compute is None:
        raise UserError(f"target {target_name!r} is not in the pass counts; give --target-compute for a "
                        f"model without counts (checkpoints: {', '.join(table.checkpoints)})")
    if target_name is None and target_compute is None:
        target_name = table.checkpoints[int(np.argmax(table.compute))]
    if target_name is None:
        same = [c for c, x in zip(table.checkpoints, table.compute) if np.isclose(x, target_compute, rtol=1e-9)]
        target_name = same[0] if same else None
    if target_compute is None:
        target_compute = float(table.compute[table.checkpoints.index(target_name)])
    if not target_compute > 0:
        raise UserError(f"target compute must be positive FLOPs, got {target_compute}")
    excluded, fit_names = [], []
    limit = target_compute * options.max_fit_compute_fraction if options.max_fit_compute_fraction else None
    for name, compute in zip(table.checkpoints, table.compute):
        reason = fit_exclusion(name, compute, target_name, target_compute, options.max_fit_compute_fraction)
        if reason is None:
            fit_names.append(name)
        else:
            excluded.append({"kind": "model", "id": name, "reason": reason})
    if len(fit_names) < MIN_FIT_CHECKPOINTS:
        raise UserError(f"need at least {MIN_FIT_CHECKPOINTS} checkpoints below the target to fit alpha and k; "
                        f"got {len(fit_names)}"
                        f" ({', '.join(fit_names) or 'none'})")
    cutoff = min(target_compute, limit) if limit is not None else target_compute
    warnings = [f"checkpoint {name!r} (compute {compute:.4g}) is within {CUTOFF_MARGIN:.0%} of the fit's compute "
                f"cutoff {cutoff:.4g} and was {'used in' if name in fit_names else 'left out of'} the fit; "
                "check --target-compute / --max-fit-compute-fraction"
                for name, compute in zip(table.checkpoints, table.compute)
                if name != target_name and abs(compute - cutoff) <= CUTOFF_MARGIN * cutoff]
    fit_table = table.select(fit_names)
    greedy = [name for j, name in enumerate(fit_names) if fit_table.n[j].max(initial=0) <= 1]
    if greedy:
        raise UserError(f"checkpoint(s) {', '.join(greedy)} have at most one sample per problem (greedy, n = 1): every "
                        "solved problem then has log pass rate exactly 0 and an unsolved one log 0, so no method here can "
                        "fit a law of the log pass rate; sample n >= 20 per problem at temperature > 0")
    restriction = restrict_solved_by_all(fit_table)
    excluded += restriction.excluded
    if len(restriction.models) < MIN_FIT_CHECKPOINTS:
        raise UserError(f"need at least {MIN_FIT_CHECKPOINTS} checkpoints that solve some problem; "
                        f"got {len(restriction.models)}")
    if not restriction.problems:
        raise UserError("no problem qualifies: none is solved at least once by every fit checkpoint "
                        f"({', '.join(restriction.models)}); draw more samples or drop the smallest checkpoints")
    target_table = table.select([target_name]) if target_name in table.checkpoints else None
    return FitData(fit_table, target_name, float(target_compute), target_table, restriction, excluded, table,
                   warnings)


def run_method(method: str, table, models: list[str], problems: list[str], target_compute: float,
               options: FitOptions, seed_offset: int = 0):
    """Fit one method on the given models x problems; returns a fit_methods.MethodFit."""
    from pipeline.forecast.methods import METHODS

    sub = table.select(models, problems)
    rng = np.random.default_rng([options.seed, seed_offset])
    x = np.log(sub.compute / target_compute)
    try:
        return METHODS[method](x, sub.n.astype(float), sub.passed.astype(float), options.level, options.bootstrap, rng)
    except UserError as exc:   # methods see arrays; name checkpoints for the user
        text = str(exc)
        for j, name in enumerate(sub.checkpoints):
            text = text.replace(f"checkpoint {j + 1} of the fit", f"checkpoint {name!r}")
        raise UserError(text) from None


def restrict_fit(fit, index, level: float):
    """The same fit summarised over a subset of its problems, from the same draws (no refit)."""
    from dataclasses import replace

    from pipeline.forecast.laws import subset_summary

    index = np.asarray(index, dtype=int)
    s = subset_summary(fit.log_p_draws, fit.scale_draws, index, level)
    neg = -s["curve"]
    k = float(-(np.log(max(neg[-1], 1e-300)) - np.log(max(neg[-2], 1e-300))) / (fit.curve_x[-1] - fit.curve_x[-2]))
    return replace(fit, alpha=-s["value"], k=k, prediction=s["value"], interval=s["interval"], curve=s["curve"],
                   curve_lo=s["curve_lo"], curve_hi=s["curve_hi"], details={},
                   target_p_draws=fit.target_p_draws[:, index], log_p_draws=fit.log_p_draws[:, index],
                   alpha_interval=(-s["interval"][1], -s["interval"][0]), k_interval=(k, k))


def prediction_block(fit, data: FitData, problems: list[str], options: FitOptions) -> dict:
    """The forecast (value, forecast interval) and, when the method gives pass-rate draws and the target's sample
    budget is known, what that budget will measure (measurement value and interval: what an actual is judged by).
    Each value lies inside the interval named with it."""
    from pipeline.forecast.methods import measurement_summary

    block = {"value": fit.prediction, "interval": list(fit.interval), "interval_kind": "forecast",
             "level": options.level}
    n = target_sample_counts(data, problems, options)
    if fit.target_p_draws is not None and n is not None:
        summary = measurement_summary(fit.target_p_draws, n, options.level, np.random.default_rng(options.seed + 7919))
        if summary is not None:
            block["measurement_value"], band = summary
            block["measurement_interval"] = list(band)
            block["measurement_n"] = int(n.max()) if n.min() == n.max() else [int(v) for v in n]
    return block


def target_sample_counts(data: FitData, problems: list[str], options: FitOptions) -> np.ndarray | None:
    """Samples per problem at the target: its counts when present, else ``options.target_n``, else None."""
    if data.target_table is not None:
        t = data.target_table
        if all(p in t.task_ids for p in problems):
            n = t.select(task_ids=problems).n[0].astype(float)
            return n if np.all(n > 0) else None
    return np.full(len(problems), float(options.target_n)) if options.target_n else None


def judged_interval(prediction: dict) -> list[float]:
    """The interval an actual value is judged by: the measurement interval when there is one."""
    return list(prediction.get("measurement_interval") or prediction["interval"])


def judged_kind(prediction: dict) -> str:
    """Which interval ``judged_interval`` is: "measurement" or "forecast"."""
    return "measurement" if prediction.get("measurement_interval") else "forecast"


def actual_value(data: FitData, problems: list[str], method: str, fit, options: FitOptions) -> dict | None:
    """The target's measured E_P[log(c/n)]; on the problems it solves, with the forecast redone on those."""
    from pipeline.forecast.estimate import mean_log_pass_rate

    if data.target_table is None:
        return None
    t = data.target_table.select(task_ids=[p for p in problems if p in data.target_table.task_ids])
    solved = [task for task, n, c in zip(t.task_ids, t.n[0], t.passed[0]) if n > 0 and c > 0]
    missing = [p for p in problems if p not in solved]
    if not solved:
        return {"value": None, "n_problems": 0, "unsolved_by_target": missing,
                "note": "the target solves none of the fit problems at its sample budget"}
    s = t.select(task_ids=solved)
    actual = {"value": float(mean_log_pass_rate(s.passed[0], s.n[0])), "n_problems": len(solved),
              "unsolved_by_target": missing,
              "value_bias_corrected": float(mean_log_pass_rate(s.passed[0], s.n[0], bias_correction=True))}
    if missing:
        if getattr(fit, "log_p_draws", None) is not None:   # the same draws, on the problems the target solved
            same = restrict_fit(fit, [problems.index(p) for p in solved], options.level)
        else:
            same = run_method(method, data.table, data.restriction.models, solved, data.target_compute, options)
        actual["prediction_on_same_problems"] = prediction_block(same, data, solved, options)
        actual["note"] = ("the target never solved some fit problems at its sample budget (log 0); value and "
                          "prediction_on_same_problems use only the problems it solved")
    return actual


def checkpoint_points(data: FitData, problems: list[str], options: FitOptions) -> list[dict]:
    """Measured E_P[log(c/n)] over P for every checkpoint in the input (fitted or not), with bootstrap intervals."""
    from pipeline.forecast.estimate import basic_interval, bootstrap_mean_log, mean_log_pass_rate

    rng = np.random.default_rng([options.seed, 99])
    used = set(data.restriction.models)
    tables = [data.all_table if data.all_table is not None else data.table]
    points = []
    for table in tables:
        for j, name in enumerate(table.checkpoints):
            sub = table.select([name], [p for p in problems if p in table.task_ids])
            keep = (sub.n[0] > 0) & (sub.passed[0] > 0)
            point = {"checkpoint": name, "compute": float(table.compute[j]),
                     "normalized_compute": float(table.compute[j] / data.target_compute),
                     "n_problems": int(keep.sum()), "used_in_fit": name in used,
                     "is_target": name == data.target_name}
            if keep.any():
                n, c = sub.n[:, keep].astype(float), sub.passed[:, keep].astype(float)
                point["mean_log_pass_rate"] = float(mean_log_pass_rate(c, n)[0])
                size, value = min(options.bootstrap, 500), point["mean_log_pass_rate"]
                samples = bootstrap_mean_log(n, c, size, rng, over_problems=False)[:, 0]
                both = bootstrap_mean_log(n, c, size, rng)[:, 0]
                point["interval"] = list(basic_interval(value, samples, options.level))   # measurement noise on P
                point["interval_resampling_problems"] = list(basic_interval(value, both, options.level))
            else:
                point["mean_log_pass_rate"] = None
            points.append(point)
    return points
