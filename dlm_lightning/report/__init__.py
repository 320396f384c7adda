"""Aggregated reports of Hydra sweeps (``python -m experiments.report sweep_dir=<sweep dir>``)."""
