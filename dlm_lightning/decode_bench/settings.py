"""The decoder settings a decoding benchmark compares, each built from ``configs/decoder/<name>.yaml``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from dlm_lightning.build import build, config_group
from dlm_lightning.cli import CONFIG_DIR, register_resolvers
from dlm_lightning.decoders.cache import CACHE_MODES
from dlm_lightning.errors import require


@dataclass(frozen=True)
class Setting:
    decoder: str  # a configs/decoder option
    tokens_per_step: int
    cache: str
    refresh_every: int | None = None

    @property
    def label(self) -> str:
        refresh = f" refresh {self.refresh_every}" if self.refresh_every else ""
        return f"{self.decoder} k={self.tokens_per_step} {self.cache}{refresh}"

    @property
    def uncached(self) -> "Setting":
        """The same decoder without a cache: the reference its tokens are compared with."""
        return Setting(self.decoder, self.tokens_per_step, "none")

    def as_dict(self) -> dict:
        return asdict(self)


# block decoders a benchmark row can use without a trained head (joint and speculative need one)
ROW_DECODERS = ("marginal", "random")


def grid(ks: list[int], caches: list[str], threshold_k: int | None, refresh: list[int],
         refresh_k: int, block_decoder: str = "marginal") -> list[Setting]:
    """``block_decoder`` at every k and cache; threshold (at most ``threshold_k`` per step) at every cache;
    ``block_decoder`` with a dual cache and each ``refresh`` period at ``refresh_k``. Uncached references are
    added where missing."""
    require(block_decoder in ROW_DECODERS, "block_decoder", block_decoder, f"one of {', '.join(ROW_DECODERS)}")
    require(all(c in CACHE_MODES for c in caches), "caches", caches, f"each one of {', '.join(CACHE_MODES)}")
    require(len(ks) > 0 and all(k >= 1 for k in ks), "ks", ks, "one or more tokens-per-step values, each >= 1")
    require(all(r >= 1 for r in refresh), "refresh", refresh, "periods >= 1 (steps between cache refills)")
    settings = [Setting(block_decoder, k, cache) for k in ks for cache in caches]
    if threshold_k is not None:
        settings += [Setting("threshold", threshold_k, cache) for cache in caches]
    settings += [Setting(block_decoder, refresh_k, "dual", r) for r in refresh]
    for setting in list(settings):
        if setting.uncached not in settings:
            settings.insert(0, setting.uncached)
    return list(dict.fromkeys(settings))


# what each row sets itself: an override of these would silently change what the row's label says
GRID_KEYS = ("tokens_per_step", "cache", "refresh_every", "block_length")


def check_decoder_overrides(overrides: list[str]) -> None:
    for item in overrides:
        key = item.partition("=")[0]
        require(key.startswith("decoder.") and "=" in item and key.removeprefix("decoder.") not in GRID_KEYS,
                "decoder_overrides", item, "decoder.KEY=VALUE items, KEY not one the rows set themselves "
                f"({', '.join(GRID_KEYS)})")


def build_decoders(settings: list[Setting], block_length: int, answer_length: int, denoiser,
                   decoder_overrides: list[str] = ()) -> dict:
    """Setting -> decoder, each with ``decoder_overrides`` (e.g. ``decoder.sample_length=true``) on top;
    settings this answer length or model cannot use fail here, naming the key."""
    check_decoder_overrides(list(decoder_overrides))
    register_resolvers()
    GlobalHydra.instance().clear()
    built = {}
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for s in settings:
            cfg = compose("config", overrides=[
                f"decoder={s.decoder}", f"decoder.tokens_per_step={s.tokens_per_step}", f"decoder.cache={s.cache}",
                f"decoder.refresh_every={'null' if s.refresh_every is None else s.refresh_every}",
                f"decoder.block_length={block_length}", *decoder_overrides])
            decoder = build(cfg, "decoder")
            with config_group("decoder", cfg.decoder):
                decoder.check(answer_length)
                decoder.check_denoiser(denoiser)
            built[s] = decoder
    return built
