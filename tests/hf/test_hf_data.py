"""Prompt -> answer fine-tuning data read with a pretrained model's tokenizer, and chat-templated prompts."""

from __future__ import annotations

import json

import torch
from suite_helpers import compose_config

from dlm_lightning.build import build, build_module

PAIRS = [{"prompt": "[BOS] where does he live ? [SEP]", "answer": "he lives in rome ."},
         {"prompt": "[BOS] do we like golf ? [SEP]", "answer": "yes . we like golf ."}] * 10


def test_sft_json_uses_the_model_tokenizer_and_never_masks_the_prompt(models, tmp_path):
    data_file = tmp_path / "pairs.jsonl"
    data_file.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    cfg = compose_config(["model=hf", f"model.name_or_path={models['bert']}", "data=sft_json",
                          f"data.source.data_files.train={data_file}", "data.layout.prompt_length=8",
                          "data.layout.answer_length=8", f"data.cache_dir={tmp_path / 'cache'}", "data.batch_size=4",
                          "data.test_size=1", "callbacks.progress=null"])
    info = build(cfg, "data").data_info()
    from transformers import AutoTokenizer

    own = AutoTokenizer.from_pretrained(str(models["bert"]))
    assert info.mask_id == own.mask_token_id and info.vocab_size == len(own)  # the model's ids, nothing added
    datamodule = build(cfg, "data")
    row = datamodule.dataset("train")[0]["input_ids"]
    words = own.convert_ids_to_tokens(row.tolist())
    laid_out = [["[PAD]"] * (8 - len(p["prompt"].split())) + p["prompt"].split() for p in PAIRS[:2]]
    assert words[:8] in laid_out  # the prompt, left-padded to prompt_length
    torch.manual_seed(0)
    module = build_module(cfg, info)
    x0 = torch.stack([datamodule.dataset("train")[i]["input_ids"] for i in range(4)])
    draw = module._nelbo(x0, torch.full((4,), 0.999), torch.rand(x0.shape))
    assert not draw.masked[:, :8].any() and draw.masked[:, 8:].float().mean() > 0.9


def test_generate_wraps_prompts_in_the_chat_template_when_there_is_one(models):
    from dlm_lightning.generate import Generator
    from dlm_lightning.data.model_tokenizer import ModelTokenizer
    from dlm_lightning.data.info import DataInfo

    tokenizer = ModelTokenizer(str(models["bert"])).load()
    tokenizer.chat_template = "{% for m in messages %}[BOS] {{ m['content'] }} [SEP]{% endfor %}"
    info = DataInfo(vocab_size=len(tokenizer), mask_id=tokenizer.mask_token_id, pad_id=tokenizer.pad_token_id,
                    eos_id=tokenizer.eos_token_id, prompt_length=0, seq_len=16, special_ids=(),
                    token_counts=torch.zeros(len(tokenizer)), tokenizer=tokenizer)
    generator = Generator(None, info, "bert", 8, layout_prompts=False)
    wrapped = tokenizer.convert_ids_to_tokens(generator.encode("he likes golf"))
    assert wrapped == ["[BOS]", "he", "likes", "golf", "[SEP]"]
    plain = tokenizer.convert_ids_to_tokens(generator.encode("he likes golf", chat_template=False))
    assert plain == ["he", "likes", "golf"]
