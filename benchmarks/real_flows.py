"""How problems move between consecutive sizes of each shared real family (the data alone, no model).

For each pair of consecutive sizes: the problems the smaller one leaves at 0, solves in every sample, or solves
partly, and their mean pass rate at the larger size; the correlation of per-problem pass rates. The development
half by default (docs/forecasting.md); ``--half validation`` only once a design is frozen.

    python benchmarks/real_flows.py [--half dev|validation]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.real_families import DEV_FILES, REAL, VALIDATION_FILES  # noqa: E402


def flows(rates: np.ndarray) -> list[dict]:
    """Per consecutive pair of sizes (rows of ``rates`` [size, problem]): each group's size and mean rate after."""
    out = []
    for before, after in zip(rates[:-1], rates[1:]):
        groups = {"never": before == 0, "always": before == 1, "partly": (before > 0) & (before < 1)}
        row = {name: (int(g.sum()), float(before[g].mean()) if g.any() else None,
                      float(after[g].mean()) if g.any() else None) for name, g in groups.items()}
        row["still_never"] = float(np.mean(after[groups["never"]] == 0)) if groups["never"].any() else None
        row["correlation"] = float(np.corrcoef(before, after)[0, 1])
        out.append(row)
    return out


def main() -> None:
    from pipeline.forecast.estimate import count_table
    from pipeline.records import read_pass_counts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", default="dev", choices=["dev", "validation"])
    files = DEV_FILES if parser.parse_args().half == "dev" else VALIDATION_FILES
    for f in files:
        t = count_table(read_pass_counts(REAL / f))
        print(f"{f}  (n = {int(t.n.max())}, {len(t.task_ids)} problems)")
        for i, row in enumerate(flows(t.passed / np.maximum(t.n, 1))):
            parts = [f"{name} {k} ({b if b is None else round(b, 3)} -> {a if a is None else round(a, 3)})"
                     for name, (k, b, a) in ((n, row[n]) for n in ("never", "always", "partly"))]
            print(f"  {t.checkpoints[i]} -> {t.checkpoints[i + 1]}: " + "; ".join(parts)
                  + f"; still 0: {row['still_never']:.2f}; correlation {row['correlation']:.2f}")


if __name__ == "__main__":
    main()
