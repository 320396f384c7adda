"""The Hugging Face path, offline: tiny random BERT masked LMs and word-level tokenizers saved with
save_pretrained, loaded through exactly the code a hub name uses (from_pretrained(name))."""

import json

import pytest

from suite_helpers import compose_config
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

from dlm_lightning.errors import ConfigError, UserError
from dlm_lightning.probe.compute import run_probe
from dlm_lightning.probe.hf_model import HFModel
from dlm_lightning.probe.main import open_model, probe

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[EOS]", "<user>", "</user>", "<assistant>"]
WORDS = "can brain cells move ? yes the a . cells migrate rain is wet".split()
CHAT_TEMPLATE = ("{% for m in messages %}<user> {{ m['content'] }} </user>{% endfor %}"
                 "{% if add_generation_prompt %} <assistant>{% endif %}")


def save_model(folder, mask=True, chat=False, max_positions=64):
    vocab = {w: i for i, w in enumerate(dict.fromkeys(SPECIALS + WORDS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # as BERT's tokenizer does: [CLS] text [SEP] unless add_special_tokens=False
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    specials = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", eos_token="[EOS]")
    if mask:
        specials["mask_token"] = "[MASK]"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **specials)
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=max_positions)
    BertForMaskedLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"plain": save_model(root / "plain"), "chat": save_model(root / "chat", chat=True),
            "nomask": save_model(root / "nomask", mask=False)}


def probe_config(overrides):
    return compose_config(overrides, config_name="probe")


def test_hf_probe_end_to_end_through_the_config(models_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"q": q}) + "\n" for q in ["can brain cells move ?", "rain is wet", "yes"]))
    (tmp_path / "corpus.txt").write_text("the cells . the rain .\nthe a yes\n")
    cfg = probe_config([f"hf_model={models_dir['plain']}", "prompts=file", f"prompts.path={prompts}",
                        "prompts.field=q", "n_masks=12", "batch_size=2", f"unigram.path={tmp_path / 'corpus.txt'}"])
    out = tmp_path / "probe"
    report = probe(cfg, out)
    assert {p.name for p in out.iterdir()} >= {"probe.json", "probe_topk.csv", "probe.md", "probe.png", "tensorboard"}
    saved = json.loads((out / "probe.json").read_text())
    assert saved["source"] == "hf" and saved["n_masks"] == 12 and saved["n_prompts"] == 3
    assert saved["collapse"]["kl_first_quarter"] == report["collapse"]["kl_first_quarter"]
    assert len(saved["prompts"][0]["positions"]) == 12 and len(saved["per_position"]["kl"]["mean"]) == 12
    assert "[EOS]" not in [t for t, _, _ in saved["prompts"][1]["positions"][0]["topk_no_special"]]
    rows = (out / "probe_topk.csv").read_text().splitlines()
    assert rows[0] == "prompt,position,rank,token,token_id,probability,special_excluded"
    assert len(rows) == 1 + 3 * 12 * 3 * 2  # prompts x positions x k x (all, no special)
    text = (out / "probe.md").read_text()
    assert "| position | top-k | top-k without special tokens | entropy | P(EOS) |" in text
    assert "corpus.txt (2 texts" in text and "no chat template" in text
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # saved probes side by side (here the same one twice, under two labels)
    probe(probe_config([f"compare=[{out},{out}]", "compare_labels=[first,second]"]), tmp_path / "cmp")
    table = (tmp_path / "cmp" / "compare.md").read_text()
    q = saved["quarters"]["kl"]
    for label in ("first", "second"):
        assert f"| KL to unigram (nats) | {label} | {q[0]:.3g} | {q[1]:.3g} |" in table
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0


def test_padded_batch_equals_one_prompt_at_a_time(models_dir):
    model = HFModel(models_dir["plain"])
    short, long = model.encode("yes"), model.encode("can brain cells move ? yes")
    assert short == [2, model.tokenizer.convert_tokens_to_ids("yes"), 3]  # [CLS] yes [SEP]
    batched = model.mask_log_probs([short, long], 5)
    alone = torch.cat([model.mask_log_probs([short], 5), model.mask_log_probs([long], 5)])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    assert batched.shape == (2, 5, model.vocab_size)
    assert torch.isinf(batched[..., model.mask_id]).all()  # [MASK] is never a prediction
    assert torch.allclose(batched.exp().sum(-1), torch.ones(2, 5))


def test_shift_logits_reads_the_previous_output(models_dir):
    ids = [HFModel(models_dir["plain"]).encode("rain is wet")]
    plain = HFModel(models_dir["plain"]).mask_log_probs(ids, 4)
    shifted = HFModel(models_dir["plain"], shift_logits=True).mask_log_probs(ids, 4)
    torch.testing.assert_close(shifted[:, 1:], plain[:, :-1])


def test_chat_template_is_applied_when_present(models_dir):
    model = HFModel(models_dir["chat"])
    tokens = model.tokenizer.convert_ids_to_tokens(model.encode("rain is wet"))
    assert tokens == ["<user>", "rain", "is", "wet", "</user>", "<assistant>"]
    assert not any("chat template" in note for note in model.notes)
    plain = HFModel(models_dir["chat"], chat_template=False, add_special_tokens=False)
    assert plain.tokenizer.convert_ids_to_tokens(plain.encode("rain is wet")) == ["rain", "is", "wet"]


def test_no_mask_token_needs_an_override(models_dir):
    with pytest.raises(ConfigError) as error:
        open_model(probe_config([f"hf_model={models_dir['nomask']}"]))
    assert str(error.value).startswith("hf.mask_id=None is invalid: the tokenizer of ")
    assert "has no mask token; pass hf.mask_id=<token id>" in str(error.value)
    model = open_model(probe_config([f"hf_model={models_dir['nomask']}", "hf.mask_id=4"]))
    assert model.mask_id == 4 and 4 in model.special_ids


def test_bad_model_options_fail_in_one_line(models_dir, tmp_path):
    with pytest.raises(ConfigError, match="dtype='fp8' is invalid: one of float32, bfloat16, float16"):
        HFModel(models_dir["plain"], dtype="fp8")
    with pytest.raises(ConfigError, match="run/hf_model=None is invalid: give exactly one"):
        open_model(probe_config([]))
    with pytest.raises(ConfigError, match="device='gpu' is invalid: a torch device"):
        open_model(probe_config([f"hf_model={models_dir['plain']}", "device=gpu"]))
    with pytest.raises(ConfigError, match="hf.auto_class='causal' is invalid: one of masked_lm, model, auto"):
        open_model(probe_config([f"hf_model={models_dir['plain']}", "hf.auto_class=causal"]))
    with pytest.raises(UserError, match=r"hf_model=.*missing: cannot load its tokenizer"):
        HFModel(str(tmp_path / "missing"))


def test_mask_count_is_capped_by_the_position_table_and_kl_skipped_without_unigram(models_dir):
    model = HFModel(models_dir["plain"])  # max_position_embeddings = 64
    result = run_probe(model, ["rain is wet"], n_masks=128, top_k=3)
    assert result.n_masks == 64 - 5  # [CLS] rain is wet [SEP]
    assert any("capped at 59" in note for note in result.notes)
    assert "kl" not in result.stats and "rank" not in result.stats
    assert any("no corpus unigram" in note for note in result.notes)


def test_a_causal_lm_is_refused_even_with_a_mask_id(models_dir, tmp_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=64)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(models_dir["plain"]).save_pretrained(folder)
    with pytest.raises(ConfigError, match=r"^hf_model='.*gpt2' is invalid: is a causal \(left-to-right\) language model"):
        HFModel(str(folder), mask_id=3)
