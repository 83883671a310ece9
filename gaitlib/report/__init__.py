"""The pages: what an artifact notebook calls to get its runs, compare them with the paper, show
them and record them (:mod:`~gaitlib.report.study`, :mod:`~gaitlib.report.compare`,
:mod:`~gaitlib.report.display`, :mod:`~gaitlib.report.evidence`, :mod:`~gaitlib.report.records`).
The judgements come from :mod:`gaitlib.analysis`; publishing is :mod:`gaitlib.publish`."""
