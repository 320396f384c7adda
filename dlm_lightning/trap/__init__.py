"""The marginal-trap experiment: sample quality versus tokens per step, token-marginal versus joint decoding."""
