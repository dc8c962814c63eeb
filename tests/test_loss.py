"""Loss stage on tiny random Llamas with a locally trained tokenizer: measurement, files, resume, CLI, errors."""
import argparse
import csv
import gzip
import json

import pytest

from pipeline.forecast import loss
from pipeline.errors import UserError
from pipeline.generate.tinyfamily import TinySpec, build_tiny_family
from simulated.runs import write_manifest_for

SPECS = tuple(TinySpec(f"t{i}", hidden_size=16 * (i + 1), layers=1, heads=2, tokens=10 ** (6 + i), seed=i)
              for i in range(4))
TEXTS = ["def add(a, b):\n    return a + b\n", "for i in range(10):\n    print(i * i)\n",
         "class Stack:\n    def __init__(self):\n        self.items = []\n"] * 4


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    entries = build_tiny_family(root / "models", specs=SPECS, texts=TEXTS)
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:3] + ["x = [1, 2, 3]\n" * 40]))
    config = {"families": {"tiny": {"target": "t3", "checkpoints": entries,
                                    "loss": {"corpus": str(corpus)}, "fit": {"bootstrap": 10}}}}
    import yaml
    (root / "checkpoints.yaml").write_text(yaml.safe_dump(config))
    return root


def _model(family_dir, name="t0"):
    return loss.LossModel(name, str(family_dir / "models" / name), 1.0)


def test_mean_loss_matches_transformers_own_loss(family_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    text = TEXTS[0]
    tokens, sums = loss.measure_documents(_model(family_dir), [text], loss.LossOptions(device="cpu"))
    path = family_dir / "models" / "t0"
    tok, lm = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    ids = torch.tensor([[tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        expected = lm(input_ids=ids, labels=ids).loss.item()
    assert tokens[0] == ids.shape[1] - 1
    assert sums[0] / tokens[0] == pytest.approx(expected, rel=1e-5)


def test_windows_and_batches_count_every_token_once(family_dir):
    doc = "x = [1, 2, 3]\n" * 40
    small = loss.measure_documents(_model(family_dir), [doc, TEXTS[1]], loss.LossOptions(window=16, batch_size=3))
    large = loss.measure_documents(_model(family_dir), [doc, TEXTS[1]], loss.LossOptions(window=4096))
    assert small[0] == large[0]  # windows overlap by one token: every token is predicted exactly once
    assert small[1][1] == pytest.approx(large[1][1], rel=1e-5)  # the short document fits one window


def test_stage_writes_measurements_forecast_and_actual(family_dir, tmp_path):
    from pipeline.config import load_config

    family = load_config(family_dir / "checkpoints.yaml").family("tiny")
    result = loss.measure_and_fit_loss(family, tmp_path, loss.LossOptions(
        corpus=str(family_dir / "corpus.jsonl"), bootstrap=5))
    rows = list(csv.DictReader(open(tmp_path / "loss_measurements.csv")))
    assert [r["checkpoint"] for r in rows] == ["t0", "t1", "t2", "t3"]
    assert set(rows[0]) >= {"checkpoint", "compute", "tokens", "mean_loss"}
    assert len({r["tokens"] for r in rows}) == 1  # one tokenizer: the same token count everywhere
    saved = json.loads((tmp_path / "loss.json").read_text())
    assert saved["actual"]["value"] == pytest.approx(float(rows[3]["mean_loss"]))
    assert [p["used_in_fit"] for p in saved["points"]] == [True, True, True, False]
    assert len(saved["prediction"]["interval"]) == 2 and result["fit"]["identifiability"]


def test_rerun_measures_nothing_again(family_dir, tmp_path, monkeypatch):
    models = [_model(family_dir, n) for n in ("t0", "t1", "t2")]
    docs = TEXTS[:2]
    loss.measure_family(models, docs, tmp_path, loss.LossOptions())
    monkeypatch.setattr(loss, "measure_documents", lambda *a: pytest.fail("measured twice"))
    assert set(loss.measure_family(models, docs, tmp_path, loss.LossOptions())) == {"t0", "t1", "t2"}


def test_cli_on_a_config(family_dir, tmp_path):
    parser = argparse.ArgumentParser()
    loss.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["loss", "--config", str(family_dir / "checkpoints.yaml"), "--out", str(tmp_path),
                              "--bootstrap", "0", "--max-documents", "2"])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "loss.json").read_text())["corpus"]["documents"] == 2


def test_corpus_from_a_directory_and_gzip(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "b.py").write_text("b = 2\n")
    (tmp_path / "src" / "a.py").write_text("a = 1\n")
    (tmp_path / "src" / "image.png").write_bytes(b"\x89PNG")
    assert loss.read_corpus(tmp_path / "src") == ["a = 1\n", "b = 2\n"]
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"text": "z = 0\n"}) + "\n")
    assert loss.read_corpus(tmp_path / "c.jsonl.gz") == ["z = 0\n"]


@pytest.mark.parametrize("content,message", [
    ('{"text": "ok"}\n{"txt": "no"}\n', "line 2: field 'text'"),
    ('{"text": 3}\n', "line 1: field 'text'"),
    ("{oops\n", "line 1: not valid JSON"),
    ('{"text": "   "}\n', "no non-empty documents"),
])
def test_bad_corpus_files_name_line_and_field(tmp_path, content, message):
    (tmp_path / "c.jsonl").write_text(content)
    with pytest.raises(UserError, match=message):
        loss.read_corpus(tmp_path / "c.jsonl")


def test_missing_corpus_and_unloadable_model_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="corpus not found"):
        loss.read_corpus(tmp_path / "nope")
    with pytest.raises(UserError, match="cannot load"):
        loss.measure_documents(loss.LossModel("x", str(tmp_path), 1.0), ["a"], loss.LossOptions())


def test_too_few_fit_points_is_a_user_error():
    rows = {n: {"compute": c, "tokens": [10], "loss_sums": [30.0]} for n, c in [("a", 1.0), ("b", 2.0), ("t", 9.0)]}
    with pytest.raises(UserError, match="at least 3 checkpoints below the target"):
        loss.fit_and_forecast(rows, "t", 9.0, loss.LossOptions(bootstrap=0))


@pytest.mark.gpu
def test_cuda_bfloat16_agrees_with_cpu_float32(family_dir):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    docs = TEXTS[:3]
    cpu = loss.measure_documents(_model(family_dir), docs, loss.LossOptions(device="cpu"))
    gpu = loss.measure_documents(_model(family_dir), docs, loss.LossOptions(device="cuda"))
    assert gpu[0] == cpu[0]
    assert sum(gpu[1]) / sum(gpu[0]) == pytest.approx(sum(cpu[1]) / sum(cpu[0]), rel=2e-2)


def test_cli_on_a_run_directory(family_dir, tmp_path):
    from pipeline.config import load_config

    family = load_config(family_dir / "checkpoints.yaml").family("tiny")
    write_manifest_for(tmp_path, family)
    parser = argparse.ArgumentParser()
    loss.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["loss", str(tmp_path), "--bootstrap", "0"])
    assert args.func(args) == 0
    saved = json.loads((tmp_path / "loss.json").read_text())
    assert saved["corpus"]["path"] == str(family_dir / "corpus.jsonl") and "actual" in saved


def test_too_few_checkpoints_fail_before_any_measurement(tmp_path, monkeypatch):
    monkeypatch.setattr(loss, "measure_documents", lambda *a: pytest.fail("measured anyway"))
    models = [loss.LossModel(n, "/nowhere", c) for n, c in [("a", 1.0), ("b", 2.0), ("t", 9.0)]]
    with pytest.raises(UserError, match="at least 3 checkpoints below the target 't'"):
        loss._measure_fit_write(models, "t", 9.0, tmp_path, loss.LossOptions())
