"""Analysis: numbers to judgements, as pure functions (no file I/O, no plots).

- :mod:`~gaitlib.analysis.tables`: reproduced against reported accuracies, and their display
  form (CIs written as text only here);
- :mod:`~gaitlib.analysis.ablation`: an ablation as numbers (:class:`AblationResult`), with each
  row's paired delta against the reference row;
- :mod:`~gaitlib.analysis.ordering`: whether a table's rows order as the paper's (one statistic);
- :mod:`~gaitlib.analysis.claims`: what an ablation's deltas say about the paper's claims;
- :mod:`~gaitlib.analysis.hours`: device-hours of the paper-scale runs, from the dry run's lines.

The pages (:mod:`gaitlib.report`) read the records and show what these return.
"""
