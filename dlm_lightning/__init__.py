"""dlm-lightning: masked diffusion language models with pluggable noise schedules and decoders."""
