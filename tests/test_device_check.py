"""bench/device_check.py's sections that size the study for a GPU box run on the CPU (--cpu-dry):
the plumbing, so the one GPU run a task may get does not fail on a typo."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

SECTIONS = ("levers", "ddp_one_gpu", "gaitmm_oumvlp", "local3d_shards")


def test_the_runs_sections_run_dry_on_the_cpu(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, "bench/device_check.py", "--cpu-dry", "--budget", "400",
                           "--skip", "env,tests,steps,oumvlp_eval,gaitgl_casia", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    sections = json.loads(out.read_text())["sections"]
    for name in SECTIONS:
        assert sections[name]["ok"], (name, sections[name].get("error"))
    levers = sections["levers"]["variants"]
    assert set(levers) == {"recipe_fp32", "cudnn_benchmark", "compile", "bf16"}
    assert all(v["step_ms"] > 0 for v in levers.values())
    assert sections["ddp_one_gpu"]["ddp_ms"] > 0
    shards = [r for r in sections["local3d_shards"]["rows"] if "step_s" in r]
    assert {r["run"] for r in shards} == {"casia-b 128x88", "oumvlp"}
