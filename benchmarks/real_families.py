"""The shared real families and their development / validation split (docs/forecasting.md, fixed before results)."""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "realdata"
OBSSCALING = REAL / "aggregate_humaneval_pass1_obsscaling_dev.csv"
DEV_FILES = ["starcoderbase-astraios-lora_humanevalsynthesize-python_n20.csv",
             "codellama-base_cruxeval-input_T0.2_n10.csv",
             "codellama-python_cruxeval-output_T0.2_n10.csv",
             "codellama-base_lcb-codegen_n10.csv",
             "guanaco-gptq-llama1_humaneval_greedy_n1.csv"]
VALIDATION_FILES = ["starcoderbase-astraios-lora_humanevalexplainsynthesize-python_n20.csv",
                    "starcoderbase-astraios-fft_humanevalsynthesize-python_n20.csv",
                    "codellama-base_cruxeval-output_T0.2_n10.csv",
                    "codellama-python_cruxeval-input_T0.2_n10.csv",
                    "starcoder2_lcb-codegen_n10.csv",
                    "llama1_humaneval_greedy_n1.csv"]
DEV_OBSSCALING = ["Cerebras-GPT", "H2O-Danube", "OLMo", "Pythia", "StableLM", "XGLM"]
VALIDATION_OBSSCALING = ["GPT-Neo/J", "Llama", "OPT", "SmolLM", "StarCoder"]


def obsscaling_families(path: Path = OBSSCALING) -> dict[str, list[tuple[float, float, str]]]:
    """family -> [(compute, pass@1, model)] sorted by compute."""
    out = defaultdict(list)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["family"]].append((float(row["compute"]), float(row["humaneval_pass1"]), row["model"]))
    return {k: sorted(v) for k, v in out.items()}


def per_problem_pass1(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(compute, pass@1 over all problems, problem count) per checkpoint of a pass-counts file."""
    from pipeline.forecast.estimate import count_table
    from pipeline.records import read_pass_counts

    t = count_table(read_pass_counts(path))
    return t.compute, (t.passed / np.maximum(t.n, 1)).mean(axis=1), len(t.task_ids)
