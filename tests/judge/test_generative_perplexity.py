"""Generative perplexity under a judge: exact values on tiny local GPT-2s, and one-line refusals."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from judge_fixtures import PROBS, WORDS, save_random_judge, save_table_judge, word_tokenizer  # noqa: E402

from dlm_lightning.errors import ConfigError  # noqa: E402
from dlm_lightning.judge.base import JudgeError  # noqa: E402
from dlm_lightning.judge.hf import HFJudge  # noqa: E402
from dlm_lightning.judge.load import load_judge  # noqa: E402
from dlm_lightning.judge.scoring import sample_texts, score_answers, token_nll, windows  # noqa: E402

ID = {w: i for i, w in enumerate(WORDS)}
EOS = ID["</s>"]


@pytest.fixture(scope="module")
def table_judge(tmp_path_factory):
    return HFJudge(str(save_table_judge(tmp_path_factory.mktemp("table"))), batch_size=2)


def test_answers_are_cut_at_the_first_eos_and_scored_up_to_and_including_it(table_judge):
    # suite-token answers: the first ends at its first EOS (what follows is not scored), the second never ends
    answers = [[ID["the"], ID["cat"], ID["sat"], EOS, ID["on"], ID["mat"]], [ID["on"], ID["mat"]]]
    texts, ended = sample_texts(word_tokenizer(), EOS, answers)
    assert texts == ["the cat sat", "on mat"] and ended == [True, False]
    scores = score_answers(table_judge, word_tokenizer(), EOS, answers)
    # scored from the start token <s>: the, cat, sat, </s> | on, mat
    scored = [PROBS[ID[w]] for w in ("the", "cat", "sat", "</s>", "on", "mat")]
    expected = -sum(math.log(p) for p in scored) / 6
    assert scores["gen_tokens"] == 6
    assert scores["gen_nll"] == pytest.approx(expected, rel=1e-6)
    assert scores["gen_ppl"] == pytest.approx(math.exp(expected), rel=1e-6)


def test_a_sample_longer_than_the_judge_context_scores_every_token_once(table_judge):
    words = ["the", "cat", "sat", "on", "the", "mat"] * 3  # 18 words + EOS > context 8
    nll, count = token_nll(table_judge, [[ID[w] for w in words] + [EOS]])
    assert count.item() == 19
    assert nll.item() == pytest.approx(-sum(math.log(PROBS[ID[w]]) for w in words + ["</s>"]), rel=1e-6)
    pieces = windows(list(range(10, 29)), 1, 8)
    assert [len(p) for p in pieces] == [9, 9, 4] and pieces[1][0] == pieces[0][-1]  # overlap of one token


def test_batched_right_padded_scoring_equals_one_forward_per_sample(tmp_path):
    judge = HFJudge(str(save_random_judge(tmp_path / "random")), batch_size=4)
    samples = [[3, 4, 5, 2], [6, 7], [3, 3, 4, 5, 6, 7, 2]]
    nll, count = token_nll(judge, samples)
    for n, ids in enumerate(samples):
        inputs = torch.tensor([[1] + ids[:-1]])
        log_probs = judge.model(input_ids=inputs).logits.double().log_softmax(-1)[0]
        assert nll[n].item() == pytest.approx(-log_probs.gather(1, torch.tensor(ids)[:, None]).sum().item(), rel=1e-5)
        assert count[n].item() == len(ids)


def test_a_judge_whose_tokenizer_cannot_encode_the_samples_fails_in_one_line(table_judge):
    with pytest.raises(JudgeError) as error:
        table_judge.encode(["the dog sat"], [True])
    message = str(error.value)
    assert "cannot encode the samples (1 of 1" in message and "'the dog sat'" in message and "\n" not in message


def test_a_model_that_is_not_a_causal_lm_fails_in_one_line(tmp_path):
    from transformers import BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertModel

    distil = tmp_path / "distil"
    DistilBertModel(DistilBertConfig(vocab_size=len(WORDS), dim=8, n_layers=1, n_heads=2, hidden_dim=16)
                    ).save_pretrained(distil)
    word_tokenizer().save_pretrained(distil)
    with pytest.raises(JudgeError, match=r"^judge .*distil is not a causal language model") as error:
        load_judge(str(distil))
    assert "\n" not in str(error.value)
    # BERT loads as a "causal LM" head, but its attention is bidirectional: caught by the causality probe
    bert = tmp_path / "bert"
    BertForMaskedLM(BertConfig(vocab_size=len(WORDS), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=16)).save_pretrained(bert)
    word_tokenizer().save_pretrained(bert)
    with pytest.raises(JudgeError, match="is not a causal language model .its predictions read later tokens"):
        load_judge(str(bert))


def test_missing_judge_and_mauve_without_its_package_fail_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^judge.name='.*nowhere' is invalid: cannot be loaded"):
        load_judge(str(tmp_path / "nowhere"))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mauve" else real(name, *a))
    with pytest.raises(ConfigError, match=r"^judge.mauve=True is invalid: needs the mauve-text package"):
        load_judge(str(tmp_path / "nowhere"), mauve=True)
