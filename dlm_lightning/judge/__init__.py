"""Judges: fixed causal language models that score decoded samples (generative perplexity, MAUVE)."""
