"""The runs layer: which training runs the study needs, where they are cached, and how they are
trained on the devices at hand.

- :mod:`~gaitlib.runs.plan`: artifact -> runs (the skip rule, the seeded rows), the one plan the
  notebooks, the pre-training, the dry run and the evidence pages ask;
- :mod:`~gaitlib.runs.cache`: a run's key and folder, reuse and resume (``ensure_run``);
- :mod:`~gaitlib.runs.budget`: memory per GPU, world size, projected hours and place in the
  schedule of every run (``gaitlib reproduce --plan``); :mod:`~gaitlib.runs.memory` estimates
  a run's peak memory without running it;
- :mod:`~gaitlib.runs.pool`: the devices (one worker per GPU, or CPU workers);
  :mod:`~gaitlib.runs.runner`: a job in a child process (write job, run, read result);
- :mod:`~gaitlib.runs.pretrain`: every planned run trained before the notebooks, longest first,
  wide runs on several GPUs, with live progress (:mod:`~gaitlib.runs.progress`);
- :mod:`~gaitlib.runs.dryrun`: every run at full scale for a few steps (cost and plumbing).

Imports run one way: this package uses the artifact list and the training layer, never the
pages.  Nothing heavy (torch, pandas) is imported here.
"""
