"""Multi-process launching that stays correct under Hydra sweeps (``-m``), torchrun and SLURM."""
