"""Loss stage (GPT-4 report §3.1): each checkpoint's mean loss per token on a held-out code corpus,
the law L(C) = a * C**b + c fitted on the smaller checkpoints, and the target's loss forecast.

Writes ``loss_documents.jsonl`` (per checkpoint: tokens and summed loss per document; append-only, so
a rerun measures only missing checkpoints), ``loss_measurements.csv`` (checkpoint, compute, tokens,
mean_loss) and ``loss.json``. Loss per token compares checkpoints only when they share a tokenizer;
``bytes`` and ``nats_per_byte`` are written beside it for families that do not. With ``--measurements
FILE.csv`` (checkpoint,compute,loss) it fits a table of losses measured elsewhere instead (``loss_table``).
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import MIN_FIT_CHECKPOINTS, fit_exclusion
from pipeline.errors import UserError
from pipeline.arguments import RUN_DIRECTORY, fraction, layered, non_negative_int, positive_int
from pipeline.records import BadInput, JsonlAppender, atomic_write_text, read_jsonl
from pipeline.rundir import RunDir
from pipeline.rundir.results import write_loss

DEFAULT_CORPUS_DIR = Path(__file__).resolve().parent.parent / "reference" / "data"
SOURCE_SUFFIXES = {".py", ".c", ".h", ".cc", ".cpp", ".java", ".js", ".ts", ".go", ".rs", ".rb", ".sh", ".txt"}


@dataclass
class LossOptions:
    """Where the corpus is, how to run the models, and how to fit."""

    corpus: str | None = None            # directory of source files or JSONL(.gz) with "text"; None: default
    max_documents: int | None = None
    window: int = 1024                    # tokens per forward pass (longer documents are split)
    batch_size: int = 8
    device: str = "auto"                  # auto: CUDA in bfloat16 when present, else CPU float32
    bootstrap: int = 200
    level: float = 0.9
    max_fit_compute_fraction: float | None = None
    seed: int = 0
    settings_source: dict | None = None   # per option: "command line", "run directory (manifest.json)" or "default"

    @staticmethod
    def settings_of(family) -> dict:
        """What a family config sets: its held-out corpus (resolved against the config's folder), the number of
        documents, and the fit's compute limit. The one place a config becomes loss options."""
        corpus = family.loss.corpus
        return {"corpus": str(family.resolve_path(corpus)) if corpus else None,
                "max_documents": family.loss.max_documents,
                "max_fit_compute_fraction": family.fit.max_fit_compute_fraction}

    @classmethod
    def from_family(cls, family) -> "LossOptions":
        return cls.resolve({}, family)

    @classmethod
    def resolve(cls, given: dict, family=None, stored_label: str = RUN_DIRECTORY) -> "LossOptions":
        """Options given on the command line over the family's settings over the defaults (``settings_source``
        says which came from where; pipeline.arguments.layered)."""
        values, source = layered(given, cls.settings_of(family) if family is not None else {}, stored_label)
        return cls(**values, settings_source=source if given else None)


@dataclass
class LossModel:
    """A checkpoint to measure: its name, where the weights are, and its training compute."""

    name: str
    location: str
    compute: float
    revision: str | None = None


NO_CORPUS = ("no held-out corpus: set loss.corpus in checkpoints.yaml (a directory of source files or a JSONL "
             "with a 'text' field, held out from the family's training data) or pass --corpus; without one there "
             "is no loss law (another family's corpus would not measure this family's loss)")


def read_corpus(path: str | Path, max_documents: int | None = None) -> list[str]:
    """Documents of a source directory (files in path order) or of a JSONL/JSONL.GZ 'text' field."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES)
        docs = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    elif path.is_file():
        docs = []
        for number, row in read_jsonl(path, allow_torn_tail=False):
            if not isinstance(row.get("text"), str):
                raise BadInput(f"{path}, line {number}: field 'text' is missing or not a string")
            docs.append(row["text"])
    else:
        raise UserError(f"{path}: corpus not found (a directory of source files or a JSONL with 'text')")
    docs = [d for d in docs if d.strip()][:max_documents]
    if not docs:
        raise UserError(f"{path}: the corpus has no non-empty documents")
    return docs


def corpus_digest(docs: list[str]) -> str:
    h = hashlib.sha256()
    for doc in docs:
        h.update(hashlib.sha256(doc.encode()).digest())
    return h.hexdigest()


def measure_documents(model: LossModel, docs: list[str], options: LossOptions) -> tuple[list[int], list[float]]:
    """(predicted tokens, summed natural-log loss) per document under one checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = options.device == "cuda" or (options.device == "auto" and torch.cuda.is_available())
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    try:
        tok = AutoTokenizer.from_pretrained(model.location, revision=model.revision)
        lm = AutoModelForCausalLM.from_pretrained(model.location, revision=model.revision, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise UserError(f"checkpoint {model.name}: cannot load {model.location} ({exc})") from None
    lm.to(device).eval()
    window = min(options.window, getattr(lm.config, "max_position_embeddings", options.window) or options.window)
    pieces = []  # (document, token ids of one window)
    for d, text in enumerate(docs):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if tok.bos_token_id is not None:
            ids = [tok.bos_token_id] + ids
        for s in range(0, max(len(ids) - 1, 1), window - 1):
            chunk = ids[s:s + window]
            if len(chunk) >= 2:
                pieces.append((d, chunk))
    tokens, sums = [0] * len(docs), [0.0] * len(docs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    from pipeline.progress import progress

    bar = progress(total=len(pieces), desc=f"loss {model.name}", unit="window")
    with torch.inference_mode(), bar:
        for b in range(0, len(pieces), options.batch_size):
            batch = pieces[b:b + options.batch_size]
            width = max(len(c) for _, c in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (_, chunk) in enumerate(batch):
                ids[i, :len(chunk)] = torch.tensor(chunk)
                mask[i, :len(chunk)] = 1
            logits = lm(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:].to(device),
                                                    reduction="none")
            nll = (nll * mask[:, 1:].to(device)).sum(dim=1).cpu().tolist()
            for (d, chunk), value in zip(batch, nll):
                tokens[d] += len(chunk) - 1
                sums[d] += value
            bar.update(len(batch))
    return tokens, sums


def measure_family(models: list[LossModel], docs: list[str], out_dir: Path, options: LossOptions) -> dict:
    """Measure every checkpoint not yet in out_dir/loss_documents.jsonl for this corpus; return all rows."""
    from pipeline.progress import progress

    digest = corpus_digest(docs)
    path = RunDir(out_dir).loss_documents
    done = {row["checkpoint"]: row for _, row in read_jsonl(path)
            if row.get("corpus_digest") == digest} if path.exists() else {}
    todo = [m for m in models if m.name not in done]
    if todo:
        with JsonlAppender(path) as out:
            for model in progress(todo, desc="loss", unit="checkpoint"):
                tokens, sums = measure_documents(model, docs, options)
                row = {"checkpoint": model.name, "compute": model.compute, "corpus_digest": digest,
                       "tokens": tokens, "loss_sums": sums, "bytes": [len(d.encode()) for d in docs]}
                out.write(row)
                done[model.name] = row
    return {m.name: done[m.name] for m in models}


def write_measurements(path: Path, rows: dict) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["checkpoint", "compute", "tokens", "mean_loss", "bytes", "nats_per_byte"])
    for name, row in sorted(rows.items(), key=lambda kv: kv[1]["compute"]):
        tokens, total = sum(row["tokens"]), sum(row["loss_sums"])
        writer.writerow([name, row["compute"], tokens, total / max(tokens, 1), sum(row["bytes"]),
                         total / max(sum(row["bytes"]), 1)])
    atomic_write_text(path, buf.getvalue())


def fit_and_forecast(rows: dict, target: str | None, target_compute: float, options: LossOptions) -> dict:
    """The loss.json object: law with bootstrap intervals, forecast at the target, actual beside it."""
    from pipeline.forecast.loss_forecast import LossFitSettings, loss_forecast_json

    points = [{"checkpoint": name, "compute": row["compute"], "tokens": sum(row["tokens"]),
               "mean_loss": sum(row["loss_sums"]) / max(sum(row["tokens"]), 1)} for name, row in rows.items()]
    settings = LossFitSettings(options.bootstrap, options.level, options.seed, options.max_fit_compute_fraction)
    documents = {name: (row["tokens"], row["loss_sums"]) for name, row in rows.items()}
    return loss_forecast_json(points, target, target_compute, settings, documents if options.bootstrap else None)


def measure_and_fit_loss(family, run_dir: str | Path, options: LossOptions | None = None) -> dict:
    """Measure every checkpoint of a config Family into run_dir, fit the law, write loss.json; return it."""
    options = options or LossOptions.from_family(family)
    models = [LossModel(c.name, family.model_location(c), c.compute, c.revision) for c in family.checkpoints]
    return _measure_fit_write(models, family.target_name, family.target_compute, Path(run_dir), options)


def _measure_fit_write(models: list[LossModel], target, target_compute, out_dir: Path, options: LossOptions) -> dict:
    usable = [m.name for m in models
              if fit_exclusion(m.name, m.compute, target, target_compute, options.max_fit_compute_fraction) is None]
    if len(usable) < MIN_FIT_CHECKPOINTS:  # say so before spending any model time
        raise UserError(f"the loss law needs at least {MIN_FIT_CHECKPOINTS} checkpoints below the target {target!r} "
                        f"(and within the compute limit); usable: {', '.join(usable) or 'none'}")
    if not options.corpus:
        raise UserError(NO_CORPUS)
    corpus = Path(options.corpus)
    docs = read_corpus(corpus, options.max_documents)
    rows = measure_family(models, docs, out_dir, options)
    write_measurements(RunDir(out_dir).loss_measurements, rows)
    result = fit_and_forecast(rows, target, target_compute, options)
    result["corpus"] = {"path": str(corpus), "documents": len(docs), "digest": corpus_digest(docs)}
    result["options"] = {"max_fit_compute_fraction": options.max_fit_compute_fraction, "bootstrap": options.bootstrap,
                         "max_documents": options.max_documents, "level": options.level}
    if options.settings_source:
        result["settings_source"] = options.settings_source
    write_loss(RunDir(out_dir).loss, result)
    return result


def register(subparsers) -> None:
    parser = subparsers.add_parser("loss", help="measure held-out loss per checkpoint and forecast the target's",
                                   description=__doc__)
    parser.add_argument("run_dir", nargs="?", type=Path, help="run directory (models and target from manifest.json)")
    parser.add_argument("--measurements", type=Path, default=None,
                        help="CSV with checkpoint,compute,loss (raw FLOPs): fit these instead of measuring models")
    parser.add_argument("--config", type=Path, default=None, help="checkpoints.yaml (instead of a run directory)")
    parser.add_argument("--family", default=None, help="family name in the config")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: the run directory); with --measurements, the JSON file")
    parser.add_argument("--corpus", default=None, help="directory of source files or JSONL with a 'text' field")
    parser.add_argument("--max-documents", type=positive_int, default=None,
                        help="use only the first N documents (default: the run's loss.max_documents, else all)")
    parser.add_argument("--bootstrap", type=non_negative_int, default=None,
                        help="bootstrap replicates (residuals, and documents when measured); 0: no interval "
                             f"(default {LossOptions.bootstrap})")
    parser.add_argument("--max-fit-compute-fraction", type=fraction, default=None,
                        help="fit only checkpoints with compute <= this fraction of the target's "
                             "(default: the run's fit.max_fit_compute_fraction, else no limit)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                        help="auto: CUDA in bfloat16 when present, else CPU float32 (default auto)")
    parser.add_argument("--target-compute", type=float, default=None,
                        help="with --measurements: the target's FLOPs (default: the largest run's)")
    parser.add_argument("--frontier", action="store_true",
                        help="with --measurements: fit only runs whose loss is below every run with less compute")
    parser.add_argument("--level", type=float, default=None, help="prediction interval level (default 0.9)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the bootstrap (default 0)")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    from pipeline.forecast.loss_table import main_measurements, print_summary

    if args.measurements is not None or args.frontier or args.target_compute is not None:
        return main_measurements(args)
    given = {"corpus": args.corpus, "max_documents": args.max_documents,
             "max_fit_compute_fraction": args.max_fit_compute_fraction, "bootstrap": args.bootstrap,
             "device": args.device, "level": args.level, "seed": args.seed}
    if args.run_dir is not None:
        manifest = RunDir(args.run_dir).read_manifest()
        options = LossOptions.resolve(given, manifest.run_family())
        models = [LossModel(c.name, c.model, c.compute, c.revision) for c in manifest.checkpoints]
        result = _measure_fit_write(models, manifest.target.name, manifest.target.compute,
                                    args.out or args.run_dir, options)
    else:
        from pipeline.config import DEFAULT_CONFIG, load_config

        family = load_config(args.config or Path(DEFAULT_CONFIG)).family(args.family)
        if args.out is None:
            raise UserError("--out DIR is required without a run directory")
        args.out.mkdir(parents=True, exist_ok=True)
        result = measure_and_fit_loss(family, args.out, LossOptions.resolve(given, family, "config"))
    print_summary(result)
    return 0
