"""The papers: what the study reproduces: the papers' artifacts (tables and figures) with the rows each one
trains, and the numbers the papers report.  Plain data: no torch or pandas at import, so the
runs layer (which plans the runs these rows need) and the pages both build on it."""
