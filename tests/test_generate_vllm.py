"""vLLM backend: lazily imported; on a GPU with vllm installed, same key -> same completion."""
import importlib.util

import pytest

from pipeline.backends import Request, SamplingOptions


def _why_no_vllm() -> str | None:
    try:
        import torch
        if not torch.cuda.is_available():
            return "no CUDA GPU on this machine (vLLM needs one); scripts/gpu_check.sh runs it on a GPU host"
    except ImportError:
        return "torch is not installed"
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install 'capforecast[vllm]')"
    return None


def test_vllm_module_is_only_imported_when_chosen():
    import subprocess
    import sys

    code = ("import sys; from pipeline.backends import BACKENDS; import pipeline.generate; "
            "print('pipeline.backends.vllm' in sys.modules, 'vllm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.gpu
@pytest.mark.skipif(_why_no_vllm() is not None, reason=str(_why_no_vllm()))
def test_vllm_same_key_same_completion_across_batches(tmp_path):
    from pipeline.backends import load_backend
    from test_generate import PROMPTS, write_tiny_setup

    config = write_tiny_setup(tmp_path / "fam")
    options = SamplingOptions(1.0, 0.95, 16, ("\n#",), 8)
    backend = load_backend("vllm", str(config.parent / "small"), options)
    requests = [Request(f"T/{i}", j, p, 1_000_003 * i + 7919 * j + 17) for i, p in enumerate(PROMPTS) for j in range(4)]
    together = {(r.task_id, r.sample_index): c.text for batch in backend.generate(requests) for r, c in batch}
    alone = {(r.task_id, r.sample_index): c.text for req in requests[::-3] for batch in backend.generate([req])
             for r, c in batch}
    assert all(alone[k] == together[k] for k in alone)
