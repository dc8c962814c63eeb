"""The reference recipe: deterministic, and its cards record exactly what was trained."""
import json

import pytest

from pipeline.reference import cli
from pipeline.reference.train import TINY, count_params


@pytest.mark.slow
def test_tiny_recipe_reproduces_its_cards(tmp_path):
    cards = []
    for run, jobs in (("a", "1"), ("b", "2")):   # one process, then two: the cards must not depend on it
        assert cli.main(["train", "--tiny", "--jobs", jobs, "--out", str(tmp_path / run)]) == 0
        cards.append({m.name: json.loads((tmp_path / run / m.name / "card.json").read_text()) for m in TINY.members})
    for member in TINY.members:
        a, b = cards[0][member.name], cards[1][member.name]
        params = count_params(member, TINY)
        assert a["params"] == b["params"] == params
        assert a["flops"] == b["flops"] == 6 * params * TINY.tokens(member)
        assert a["final_train_loss"] == pytest.approx(b["final_train_loss"], abs=1e-3)
        weights = [(tmp_path / run / member.name / "model.safetensors").read_bytes() for run in ("a", "b")]
        assert weights[0] == weights[1]


@pytest.mark.slow
def test_tiny_checkpoint_loads_with_auto_classes(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert cli.main(["train", "--tiny", "--only", "tiny-a", "--out", str(tmp_path)]) == 0
    tok = AutoTokenizer.from_pretrained(tmp_path / "tiny-a")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-a")
    assert model.num_parameters() == count_params(TINY.members[0], TINY)
    assert tok.decode(tok("def f(n):\n    return n\n")["input_ids"]) == "def f(n):\n    return n\n"


def test_unknown_member_is_a_user_error(tmp_path):
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="unknown member"):
        cli.main(["train", "--tiny", "--only", "nope", "--out", str(tmp_path)])
