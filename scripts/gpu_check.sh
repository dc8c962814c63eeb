#!/usr/bin/env bash
# On a GPU machine, from anywhere: run both generation backends on one random ~1.1B Llama and print
# tokens/s and the sample-identity check (same key -> same completion across batch sizes and orders).
# Usage: scripts/gpu_check.sh [--problems-file HumanEval.jsonl.gz] [--preset gpu|tiny] [--skip-baseline] [--backends transformers,vllm]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, transformers; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| transformers', transformers.__version__)"
"$PY" -c "import vllm; print('vllm', vllm.__version__)" 2>/dev/null || echo "vllm: not installed here (pip install 'capforecast[vllm]'); its part will be skipped"
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false
exec "$PY" benchmarks/gpu_check.py "$@"
