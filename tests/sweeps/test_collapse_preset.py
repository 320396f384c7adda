"""experiment=collapse: the grid it sweeps, and that a decoder's block length never forces a retraining."""

from omegaconf import OmegaConf

from dlm_lightning.run.reuse import training_fingerprint
from suite_helpers import compose_config


def _job(*overrides):
    cfg = OmegaConf.create(OmegaConf.to_container(compose_config(["experiment=collapse", *overrides])))
    cfg.choices = {"schedule": "uniform", "decoder": "marginal"}  # as experiment.new_run saves it
    return cfg


def test_the_collapse_grid_is_fixes_blocks_and_seeds():
    hydra = compose_config(["experiment=collapse"], hydra=True).hydra
    grid = {key: str(value).split(",") for key, value in OmegaConf.to_container(hydra.sweeper.params).items()}
    assert grid == {"collapse_fix": ["none", "rainbow", "excluded", "cart", "adaptive", "info"],
                    "decoder.block_length": ["40", "8"], "seed": ["0", "1", "2"]}
    # two jobs at a time, the block length first: every training is launched before a job that reuses it
    assert hydra.launcher._target_.endswith("JoblibLauncher") and hydra.launcher.n_jobs == 2
    assert list(grid)[0] == "decoder.block_length"
    cfg = compose_config(["experiment=collapse"])
    assert cfg.reuse_training is True and cfg.decoder.tokens_per_step == 1 and cfg.model.d_model == 64
    assert cfg.trainer.max_epochs * cfg.data.train_size // cfg.data.batch_size == 720


def test_each_fix_changes_only_what_it_names():
    base = OmegaConf.to_container(_job(), resolve=True)

    def changed(fix):
        cfg = OmegaConf.to_container(_job(f"collapse_fix={fix}"), resolve=True)
        return {f"{group}.{key}" for group in base if isinstance(base[group], dict)
                for key in set(base[group]) | set(cfg[group]) if base[group].get(key) != cfg[group].get(key)}
    assert changed("none") == set()
    assert changed("rainbow") == {"data.padding"} and changed("excluded") == {"data.padding"}
    assert changed("cart") == {"module.cart"}
    assert "schedule._target_" in changed("adaptive") and "schedule._target_" in changed("info")


def test_block_length_jobs_share_their_training_and_padding_jobs_do_not():
    one_block = training_fingerprint(_job("decoder.block_length=40"))
    assert training_fingerprint(_job("decoder.block_length=8")) == one_block
    assert training_fingerprint(_job("decoder.block_length=40", "data.padding=rainbow")) != one_block
