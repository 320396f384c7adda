"""The Hugging Face backbone on two tiny local model families: contract, training modes, decoders, errors."""

from __future__ import annotations

import sys

import pytest
import torch

from suite_helpers import TINY, compose_config

from dlm_lightning.build import build, build_module
from dlm_lightning.errors import ConfigError
from dlm_lightning.models.hf import HFBackbone

pytestmark = pytest.mark.long  # real processes or many trainings: scheduled first under xdist


@pytest.fixture(scope="module")
def info():
    return build(compose_config(TINY), "data").data_info()


def family_overrides(models, family: str) -> list[str]:
    if family == "bert":
        return ["model=hf", f"model.name_or_path={models['bert']}"]
    return ["model=hf", f"model.name_or_path={models['remote']}", "model.trust_remote_code=true"]


def module_for(models, info, family: str, *extra: str):
    torch.manual_seed(0)
    return build_module(compose_config([*TINY, *family_overrides(models, family), *extra]), info)


@pytest.mark.parametrize("family", ["bert", "remote"])
def test_backbone_contract(models, info, family):
    module = module_for(models, info, family)
    backbone = module.denoiser.backbone
    tokens = torch.randint(0, info.vocab_size, (2, info.seq_len))
    logits, hidden = backbone(tokens)
    assert logits.shape == (2, info.seq_len, info.vocab_size)  # the remote model's padded vocabulary is cut
    assert hidden.shape == (2, info.seq_len, backbone.d_model) and backbone.d_model == 32
    out = module.denoiser(tokens, torch.ones(2))
    visible = tokens != info.mask_id
    assert torch.all(out.log_probs[visible].argmax(-1) == tokens[visible])  # SUBS copies visible tokens


def test_remote_model_output_size_is_its_padded_vocabulary(models, info):
    backbone = HFBackbone(info.vocab_size, info.seq_len, name_or_path=str(models["remote"]), trust_remote_code=True)
    assert backbone.output_size() == info.vocab_size + 7


def test_shift_logits_moves_outputs_one_position_right(models, info):
    plain = HFBackbone(info.vocab_size, info.seq_len, name_or_path=str(models["bert"]))
    shifted = HFBackbone(info.vocab_size, info.seq_len, name_or_path=str(models["bert"]), shift_logits=True)
    tokens = torch.randint(0, info.vocab_size, (1, 10))
    (a, ha), (b, hb) = plain(tokens), shifted(tokens)
    assert torch.allclose(b[:, 1:], a[:, :-1]) and torch.allclose(b[:, 0], a[:, 0])
    assert torch.allclose(hb[:, 1:], ha[:, :-1])


@pytest.mark.parametrize("family", ["bert", "remote"])
def test_time_conditioning_through_input_embeddings(models, info, family):
    argument = "inputs_embeds" if family == "bert" else "input_embeddings"
    options = {"trust_remote_code": True} if family == "remote" else {}
    timed = HFBackbone(info.vocab_size, info.seq_len, True, name_or_path=str(models[family]),
                       embeds_argument=argument, **options)
    plain = HFBackbone(info.vocab_size, info.seq_len, name_or_path=str(models[family]), **options)
    tokens = torch.randint(0, info.vocab_size, (2, 12))
    # zero-initialised: the pretrained function is unchanged until the time embedding trains
    assert torch.allclose(timed(tokens, torch.tensor([0.1, 0.9]))[0], plain(tokens)[0], atol=1e-5)
    torch.nn.init.normal_(timed.time_mlp[-1].weight)
    early, late = timed(tokens, torch.full((2,), 0.1))[0], timed(tokens, torch.full((2,), 0.9))[0]
    assert not torch.allclose(early, late)


def test_remote_model_without_embeddings_argument_refuses_time(models, info):
    with pytest.raises(ConfigError, match=r"time_conditioning=True .*takes no 'inputs_embeds'"):
        HFBackbone(info.vocab_size, info.seq_len, True, name_or_path=str(models["remote"]), trust_remote_code=True)


def test_info_schedule_builds_on_a_model_that_takes_embeddings(models, info):
    module = module_for(models, info, "bert", "schedule=info")
    assert module.denoiser.needs_time and module.denoiser.backbone.time_mlp is not None


def _fit_one_step(module, info, quiet_trainer):
    from dlm_lightning.build import build as build_group

    data = build_group(compose_config(TINY), "data")
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0, precision="32-true")
    trainer.fit(module, datamodule=data)


def _snapshot(module_part):
    return {n: p.detach().clone() for n, p in module_part.named_parameters()}


def _optimizer_step(module, info):
    """One step of the module's own optimizer on its NELBO and head losses (what training_step sums)."""
    x0 = torch.stack([build(compose_config(TINY), "data").dataset("train")[i]["input_ids"] for i in range(8)])
    draw = module._nelbo(x0, torch.linspace(0.2, 0.9, 8), torch.rand(x0.shape))
    loss = draw.terms.sum() / draw.masked.sum().clamp_min(1)
    if module.dependency_head is not None:
        loss = loss + module.dependency_head.loss(x0, draw.masked, draw.out.hidden, draw.out.log_probs)
    optimizer = module.optimizer_factory(params=[p for p in module.parameters() if p.requires_grad])
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("family", ["bert", "remote"])
def test_full_fine_tuning_step_changes_the_weights(models, info, family):
    module = module_for(models, info, family)
    before = _snapshot(module.denoiser.backbone)
    _optimizer_step(module, info)
    after = _snapshot(module.denoiser.backbone)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(changed) >= len(before) // 2


def test_frozen_backbone_gets_no_gradient_and_the_head_does(models, info, quiet_trainer):
    module = module_for(models, info, "remote", "model.train_mode=frozen", "head=dependency")
    backbone, head = module.denoiser.backbone, module.dependency_head
    assert not any(p.requires_grad for p in backbone.parameters())
    x0 = torch.stack([build(compose_config(TINY), "data").dataset("train")[i]["input_ids"] for i in range(8)])
    draw = module._nelbo(x0, torch.full((8,), 0.6), torch.rand(x0.shape))
    module.dependency_head.loss(x0, draw.masked, draw.out.hidden, draw.out.log_probs).backward()
    assert all(p.grad is None for p in backbone.parameters())
    assert head.out.weight.grad is not None and head.out.weight.grad.abs().sum() > 0
    before_backbone, before_head = _snapshot(backbone), _snapshot(head)
    _fit_one_step(module, info, quiet_trainer)
    assert all(torch.equal(v, _snapshot(backbone)[n]) for n, v in before_backbone.items())
    assert not torch.equal(before_head["out.weight"], head.out.weight)


def test_frozen_backbone_without_a_head_fails_in_one_line(models, info):
    with pytest.raises(ConfigError, match=r"^head=None is invalid: the backbone is frozen .*add head=dependency"):
        module_for(models, info, "bert", "model.train_mode=frozen")


def test_lora_trains_adapters_only_and_they_save_and_reload(models, info, tmp_path):
    module = module_for(models, info, "bert", "model.train_mode=lora", "model.lora.r=4")
    backbone = module.denoiser.backbone
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = _snapshot(backbone)
    _optimizer_step(module, info)
    after = _snapshot(backbone)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and changed <= trainable
    backbone.save_adapter(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    reloaded = module_for(models, info, "bert", "model.train_mode=lora", "model.lora.r=4",
                          f"model.lora.adapter_path={tmp_path / 'adapter'}").denoiser.backbone
    tokens = torch.randint(0, info.vocab_size, (2, info.seq_len))
    backbone.eval(), reloaded.eval()
    assert torch.allclose(backbone(tokens)[0], reloaded(tokens)[0], atol=1e-6)
    fresh = module_for(models, info, "bert", "model.train_mode=lora", "model.lora.r=4").denoiser.backbone
    assert not torch.allclose(fresh(tokens)[0], reloaded(tokens)[0], atol=1e-6)


def test_lora_without_peft_fails_in_one_line(models, info, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft now raises ImportError
    with pytest.raises(ConfigError, match=r"^model.train_mode='lora' is invalid: needs the peft package"):
        module_for(models, info, "bert", "model.train_mode=lora")


def test_causal_lm_as_backbone_fails_in_one_line(models, info):
    with pytest.raises(ConfigError, match=r"^model.name_or_path=.* is a causal \(left-to-right\) language model"):
        build_module(compose_config([*TINY, "model=hf", f"model.name_or_path={models['gpt']}"]), info)


def test_tokenizer_without_mask_token_needs_an_id(models):
    from dlm_lightning.data.model_tokenizer import ModelTokenizer

    with pytest.raises(ConfigError, match=r"^model.mask_id=None is invalid: the tokenizer of .* has no mask token"):
        ModelTokenizer(str(models["remote"])).load()
    tokenizer = ModelTokenizer(str(models["remote"]), mask_id=1).load()
    assert tokenizer.mask_token_id == 1 and tokenizer.convert_ids_to_tokens(1) == "[MASK]"
    assert len(tokenizer) == 41  # the explicit id reuses its token: nothing added


def test_unsupported_gradient_checkpointing_fails_and_bert_enables_it(models, info):
    with pytest.raises(ConfigError, match=r"^gradient_checkpointing=True is invalid: TinyDLMModel does not support"):
        HFBackbone(info.vocab_size, info.seq_len, name_or_path=str(models["remote"]), trust_remote_code=True,
                   gradient_checkpointing=True)
    bert = HFBackbone(info.vocab_size, info.seq_len, name_or_path=str(models["bert"]), gradient_checkpointing=True)
    assert getattr(bert.model, "is_activation_checkpointing", None) or bert.model.is_gradient_checkpointing


DECODERS = ["marginal", "random", "threshold", "ancestral", "joint", "speculative"]


@pytest.fixture(scope="module")
def decoders():
    """Each decoder option at k = 1 where joint and marginal are compared, 8 (5 steps) elsewhere."""
    return {name: build(compose_config([*TINY, f"decoder={name}",
                                        f"decoder.tokens_per_step={1 if name in ('joint', 'marginal') else 8}"]),
                        "decoder")
            for name in DECODERS}


@pytest.mark.parametrize("family, names", [("bert", DECODERS), ("remote", ["marginal", "joint"])])
def test_every_decoder_runs_and_one_token_joint_equals_marginal(models, info, decoders, family, names):
    module = module_for(models, info, family, "head=dependency").eval()
    torch.nn.init.normal_(module.dependency_head.out.weight, std=0.5)  # a head that changes the joint
    prompts = build(compose_config(TINY), "data").dataset("test")[0]["input_ids"][None, : info.prompt_length]
    context = module.decode_context()
    outputs = {}
    for name in names:
        out = decoders[name].decode(context, prompts, info.answer_length, torch.Generator().manual_seed(3))
        assert out.tokens.shape == (1, info.seq_len) and not (out.tokens == info.mask_id).any()
        outputs[name] = out.tokens
    assert torch.equal(outputs["joint"], outputs["marginal"])
