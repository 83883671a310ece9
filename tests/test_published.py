"""The published book matches these sources, so a fresh clone's ``make book`` rewrites nothing.

``make book`` reruns the synthetic edition.  Its records name the code version that made them
(:func:`gaitlib.runs.cache.code_version`: the sources that decide a run's numbers) and the run
folders they read, whose names carry that version too.  A landing that changes the code version
therefore republishes the synthetic edition (``make book``, then commit ``book/``); this test
fails until it has.  ``make book`` keeps a record with more seeds than it runs (``make evidence``
made them) and never reruns the real-data records, so those keep the version they were made with
(a page says so when it differs from its own).  The numbers of a rerun are those of the recorded
runs on a machine whose processor picks the same fp32 kernels (see the reproduction notes).
"""

from __future__ import annotations

import json
from pathlib import Path

from gaitlib.runs.cache import code_version

ROOT = Path(__file__).resolve().parents[1]


def stale_records(results: Path, version: str) -> list[str]:
    """The synthetic-edition records under ``results`` that ``make book`` would rewrite because
    another code version than ``version`` made them (or they predate records naming theirs);
    records of several seeds are left out, since ``make book`` keeps them."""
    stale = []
    for path in sorted(results.glob("*/synthetic-*.json")):
        record = json.loads(path.read_text())
        if len(record.get("seeds", [0])) <= 1 and record.get("code_version") != version:
            stale.append(str(path.relative_to(results)))
    return stale


def test_the_synthetic_edition_was_made_by_this_code_version():
    results = ROOT / "book" / "results"
    assert list(results.glob("*/synthetic-*.json")), "no synthetic record: is book/results there?"
    stale = stale_records(results, code_version())
    assert stale == [], (f"{len(stale)} record(s) of the synthetic edition come from another code "
                         f"version than this checkout's ({code_version()}), e.g. {stale[:3]}: a "
                         "fresh clone's `make book` would rewrite them; run `make book` and "
                         "commit book/")


def test_a_record_of_another_code_version_is_found(tmp_path):
    for name, version, seeds in (("a", "v1", None), ("b", "v2", None), ("c", None, None),
                                 ("d", "v0", [0, 1, 2])):
        (tmp_path / name).mkdir()
        payload = {"artifact": name} | ({"code_version": version} if version else {}) | \
            ({"seeds": seeds} if seeds else {})
        (tmp_path / name / "synthetic-cpu.json").write_text(json.dumps(payload))
    (tmp_path / "a" / "casia-b-cpu.json").write_text(json.dumps({"code_version": "old"}))
    assert stale_records(tmp_path, "v1") == ["b/synthetic-cpu.json", "c/synthetic-cpu.json"]
