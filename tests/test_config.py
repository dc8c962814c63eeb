"""checkpoints.yaml validation: good files load, bad ones name file, line and field."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import CODEX_STOP, ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent


def family(**overrides) -> dict:
    base = {"target": "b", "checkpoints": [
        {"name": "a", "model": "org/model-a", "params": 1000, "tokens": 2000},
        {"name": "b", "model": "org/model-b", "flops": 1.0e12},
    ]}
    base.update(overrides)
    return base


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "checkpoints.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_compute_from_params_and_tokens(tmp_path):
    config = load_config(write(tmp_path, {"families": {"f": family()}}))
    assert config.family("f").checkpoint("a").compute == 6.0 * 1000 * 2000


def test_defaults_are_codex_stops_and_humaneval(tmp_path):
    fam = load_config(write(tmp_path, {"families": {"f": family()}})).family()
    assert fam.sampling.stop == CODEX_STOP and fam.benchmark == "humaneval"


def test_target_as_compute_value(tmp_path):
    fam = load_config(write(tmp_path, {"families": {"f": family(target={"compute": 5.0e20})}})).family()
    assert fam.target_compute == 5.0e20 and fam.target_name == "target"


def test_shipped_config_is_valid():
    config = load_config(REPO / "checkpoints.yaml", check_paths=False)
    assert config.family().checkpoints


BAD = {
    "missing field": ({"families": {"f": family(checkpoints=[{"name": "a", "flops": 1.0}])}},
                      "checkpoints[0].model", "required field is missing"),
    "wrong type": ({"families": {"f": family(sampling={"n": "many"})}}, "sampling.n", "valid integer"),
    "unknown field": ({"families": {"f": family(sampling={"temprature": 0.2})}},
                      "sampling.temprature", "unknown field"),
    "no compute": ({"families": {"f": family(checkpoints=[{"name": "b", "model": "o/m"}])}},
                   "checkpoints[0]", "flops"),
    "both computes": ({"families": {"f": family(checkpoints=[
        {"name": "b", "model": "o/m", "flops": 1.0, "params": 1, "tokens": 1}])}}, "checkpoints[0]", "not both"),
    "unknown target": ({"families": {"f": family(target="zzz")}}, "families.f", "zzz"),
    "missing model path": ({"families": {"f": family(checkpoints=[
        {"name": "b", "model": "./no/such/dir", "flops": 1.0}])}}, "checkpoints[0].model", "does not exist"),
    "missing benchmark": ({"families": {"f": family(benchmark="nope.jsonl")}}, "benchmark", "nope.jsonl"),
    "negative temperature": ({"families": {"f": family(sampling={"temperature": -1})}},
                             "sampling.temperature", "greater than or equal"),
    "bad default family": ({"default_family": "g", "families": {"f": family()}}, "default_family", "'g'"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_config_names_file_line_and_field(tmp_path, case):
    data, field, words = BAD[case]
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and ", line " in message and field in message and words in message


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, "families:\n  f: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML"):
        load_config(path)


def test_unknown_family_lists_known_ones(tmp_path):
    config = load_config(write(tmp_path, {"families": {"f": family()}}))
    with pytest.raises(ConfigError, match="unknown family 'g'.*defines: f"):
        config.family("g")


@pytest.mark.parametrize("args", [["run", "--family", "nope"], ["generate", "--family", "nope", "--out", "x"]])
def test_cli_bad_config_exits_nonzero_without_traceback(tmp_path, args, capsys, monkeypatch):
    from pipeline.cli import main

    path = write(tmp_path, {"families": {"f": family()}})
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--config", str(path)]) == 2      # in process: a traceback would fail the test itself
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unknown family 'nope'" in err

