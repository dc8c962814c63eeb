"""The GPU check script itself, run on the CPU with its tiny preset (the real run needs a GPU host)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow   # a whole benchmark script in a subprocess (tens of seconds); CI runs it
def test_gpu_check_tiny_preset_writes_a_summary_per_backend_order(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--preset", "tiny",
                    "--backends", "vllm,transformers", "--skip-baseline"], env=env, check=True,
                   capture_output=True, text=True, timeout=300)
    summary = json.loads((tmp_path / "gpu_check-vllm-transformers.json").read_text())
    assert summary["timings"][0]["backend"] == "transformers" and summary["timings"][0]["samples"] == 18
    assert [i["dtype"] for i in summary["identity"]] == ["auto", "float32"]
    assert all(i["identical"] == i["checked"] for i in summary["identity"])  # float32 on a CPU: exact
    assert "vllm_timing" in summary or summary["vllm"].startswith("skipped")
