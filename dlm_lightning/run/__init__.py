"""A run of the suite: one directory that holds a job's config, checkpoints, logs, metrics and samples.

- ``layout``: the file names inside a run directory (the one place they are defined);
- ``experiment``: train, evaluate and sample into a new run directory (validate, claim, fit, test);
- ``job``: one Hydra job in a process that may run many (``-m``): isolation and what a job records;
- ``load``: load a finished run (config, data info, module) for analysis, and find its checkpoints;
- ``checkpoint``: checkpoint signatures (refuse one made for other data or another model);
- ``reuse``: reuse the training of a finished sibling job (``reuse_training=true``);
- ``evaluate``: evaluate a run's checkpoint again in one process;
- ``lock``, ``provenance``, ``console_log``: the run directory's lock, provenance.json and run.log.
"""
