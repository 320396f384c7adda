"""The marginal-trap experiment: validity versus tokens per step, token-marginal versus joint decoding."""
