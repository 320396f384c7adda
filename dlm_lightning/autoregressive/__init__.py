"""The autoregressive baseline: the same backbone with causal attention, trained on next-token loss."""
