"""decoder=time_grid follows each schedule's own reverse process: with the exact denoiser of a small
enumerable distribution, the law of its samples approaches the data law as the grid is refined, for
uniform, adaptive and info (token-dependent) masking."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "schedules"))
from exact_diffusion import LENGTH, MASK, SEQUENCES, SYMBOLS, VOCAB, ExactDenoiser, toy_info, toy_probs  # noqa: E402

from dlm_lightning.decoders.base import DecodeContext  # noqa: E402
from dlm_lightning.decoders.time_grid import TimeGridDecoder  # noqa: E402
from dlm_lightning.errors import ConfigError  # noqa: E402
from dlm_lightning.masked_diffusion import answer_distance  # noqa: E402
from dlm_lightning.schedules.adaptive import AdaptiveSchedule  # noqa: E402
from dlm_lightning.schedules.info import InfoSchedule  # noqa: E402
from dlm_lightning.schedules.uniform import UniformSchedule  # noqa: E402

SCHEDULES = {"uniform": UniformSchedule, "adaptive": lambda: AdaptiveSchedule(w_near=3.0, w_far=0.4),
             "info": lambda: InfoSchedule(beta=1.0)}
GRIDS = (1, 2, 4, 16, 64)


def context(name):
    schedule = SCHEDULES[name]()
    schedule.setup(toy_info())
    return DecodeContext(ExactDenoiser(schedule, toy_probs()), schedule, MASK, eos_id=0)


def exact_sample_law(decoder: TimeGridDecoder, ctx: DecodeContext, steps: int) -> torch.Tensor:
    """The decoder's output law over SEQUENCES, by enumerating its Markov chain over partial states."""
    distance = answer_distance(LENGTH, 0)
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    states = {(MASK,) * LENGTH: 1.0}
    for n in range(steps):
        keys = list(states)
        z = torch.tensor(keys)
        t, s = grid[n].expand(len(keys), 1), grid[n + 1].expand(len(keys), 1)
        log_probs = ctx.denoiser(z, t[:, 0].float()).log_probs
        weights = decoder.step_weights(ctx, log_probs, t, s, distance)  # [S, L, V + 1]
        following: dict[tuple, float] = {}
        for row, key in enumerate(keys):
            options = [[(v, 1.0)] if v != MASK else
                       [(o if o < VOCAB else MASK, float(weights[row, i, o])) for o in range(VOCAB + 1)]
                       for i, v in enumerate(key)]
            for combo in _product(options):
                state, mass = tuple(v for v, _ in combo), states[key]
                for _, w in combo:
                    mass *= w
                if mass > 0:
                    following[state] = following.get(state, 0.0) + mass
        states = following
    law = torch.zeros(len(SEQUENCES), dtype=torch.float64)
    for state, mass in states.items():
        assert MASK not in state  # the last step reveals everything
        law[int(sum(v * SYMBOLS ** (LENGTH - 1 - i) for i, v in enumerate(state)))] += mass
    return law


def _product(options):
    if not options:
        yield ()
        return
    for head in options[0]:
        for rest in _product(options[1:]):
            yield (head, *rest)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_sample_law_approaches_the_data_law_as_the_grid_is_refined(name):
    ctx, p = context(name), toy_probs()
    tv = []
    for steps in GRIDS:
        law = exact_sample_law(TimeGridDecoder(steps=steps), ctx, steps)
        assert float(law.sum()) == pytest.approx(1.0)
        tv.append(0.5 * float((law - p).abs().sum()))
    assert all(later <= earlier + 1e-9 for earlier, later in zip(tv, tv[1:])), tv
    assert tv[0] > 0.1 and tv[-1] < 0.02, tv


def test_decoder_samples_follow_the_enumerated_law():
    ctx = context("info")
    decoder = TimeGridDecoder(steps=16)
    law = exact_sample_law(decoder, ctx, 16)
    out = decoder.decode(ctx, torch.zeros(4000, 0, dtype=torch.long), LENGTH, torch.Generator().manual_seed(0))
    codes = (out.tokens * SYMBOLS ** torch.arange(LENGTH - 1, -1, -1)).sum(dim=1)
    empirical = torch.bincount(codes, minlength=len(SEQUENCES)).double() / len(codes)
    assert 0.5 * float((empirical - law).abs().sum()) < 0.05
    assert (out.commit_step >= 0).all() and out.nfe == 16  # info needs t: one call per step
    # any number of reveals per step: some rows commit two or three positions in one step
    same_step = (out.commit_step[:, :, None] == out.commit_step[:, None, :]).sum(dim=(1, 2)) - LENGTH
    assert (same_step > 0).any() and (same_step == 0).any()


def test_unchanged_states_reuse_the_prediction_for_time_blind_schedules():
    ctx = context("uniform")
    out = TimeGridDecoder(steps=64).decode(ctx, torch.zeros(1, 0, dtype=torch.long), LENGTH,
                                           torch.Generator().manual_seed(0))
    assert out.nfe <= LENGTH  # one call per step that revealed something, at most one per position


def test_grid_steps_below_one_fail_naming_the_key():
    with pytest.raises(ConfigError, match="steps"):
        TimeGridDecoder(steps=0)
