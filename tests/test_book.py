"""A smoke-profile build of the whole book: every notebook runs, Sphinx warnings are errors."""

import json
import shutil

import pytest

from gaitlib.cli import main
from gaitlib.papers.artifacts import ARTIFACT_IDS
from gaitlib.publish.reproduce import REPO, reproduce


@pytest.mark.slow
def test_smoke_book_builds(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns("_build"))
    shutil.copytree(REPO / "_static", root / "_static")
    for nb in (root / "book").glob("*.ipynb"):
        nb.unlink()  # the smoke run must produce every notebook itself
    runs = reproduce(profile="smoke", data_root=tmp_path / "data", root=root,
                     runs_dir=tmp_path / "runs")
    assert [r.status for r in runs] == ["ok"] * len(runs), runs
    assert {r.notebook for r in runs} == {"synthetic-data", "scorecard", *ARTIFACT_IDS}
    html = root / "_build" / "html"
    for page in ("synthetic-data", "scorecard", "reproduction-notes", "fidelity", *ARTIFACT_IDS):
        assert (html / "book" / f"{page}.html").is_file(), page
    # every artifact recorded its table for the scorecard
    for artifact_id in ARTIFACT_IDS:
        assert (root / "book" / "results" / artifact_id / "synthetic-smoke.json").is_file(), artifact_id
    executed = json.loads((root / "book" / "synthetic-data.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert outputs and not any(o["output_type"] == "error" for o in outputs)
    assert "start_time" not in executed["metadata"].get("papermill", {})


def test_bad_names_list_valid_ones(capsys):
    assert main(["reproduce", "--only", "cstl-t9", "--no-build"]) == 2
    assert "valid: synthetic-data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "--profile", "huge"])
    assert "invalid choice" in capsys.readouterr().err
