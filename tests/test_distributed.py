"""DDP on CPU with gloo: two ranks make the same update as one process on the same global batch,
and evaluation features gathered from two ranks' shards equal one process's.

The model is a tiny GaitSet, which has no BatchNorm (tests/test_ddp.py checks every model, with
their BatchNorms synchronised, step by step). The triplet loss is batch-all over the *global*
batch on both sides: the ranks all-gather their embeddings (``loss.gather=true``, see
gaitlib.training.trainer), so the comparison is against exactly the single-process loss. With
``loss.gather=false`` each rank only sees triplets within its half of the subjects, and the
parameters must then differ (shown too, so the equality is not vacuous). Optimizer: SGD, whose
update is linear in the gradient, so the comparison tolerance reflects only float summation
order (gradients are all-reduced).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gaitlib.training import load_checkpoint
from gaitlib.training.checkpoint import latest_checkpoint
from tests.conftest import REPO, make_store

CONDITIONS = ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01",
              "cl-02")
OVERRIDES = ["model.options.channels=[2,4,4]", "model.options.hidden_dim=8",
             "model.options.bins=[2,1]",
             "sampling.p=4", "sampling.k=2", "optimizer.name=sgd", "optimizer.lr=0.05",
             "schedule.iterations=3", "schedule.milestones=[]", "checkpoint_every=3",
             "eval.max_subjects=0", "eval.bootstrap=0", "workers=0"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("dstore") / "s",
                      subjects=[f"{i:03d}" for i in range(1, 11)],
                      conditions=CONDITIONS, views=("000", "090"), lengths=(6, 12))


def _train_cmd(store, out: Path, extra=()) -> list[str]:
    return ["train", "--model", "gaitset", "--data", str(store.path), "--profile", "smoke",
            "--out", str(out), "--no-progress", *OVERRIDES, *extra]


def _torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "gaitlib", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)


def _params(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))["model"]


def test_two_gloo_ranks_update_like_one_process_on_the_global_batch(store, tmp_path):
    from gaitlib.cli import main

    done = _torchrun(_train_cmd(store, tmp_path / "ddp"), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("rank-1 accuracy") == 1  # only the main rank prints
    assert main(_train_cmd(store, tmp_path / "one")) == 0
    ddp, one = _params(tmp_path / "ddp"), _params(tmp_path / "one")
    first = load_checkpoint(latest_checkpoint(tmp_path / "one" / "checkpoints"))
    assert first["iteration"] == 3
    for name in one:
        torch.testing.assert_close(ddp[name], one[name], rtol=1e-5, atol=1e-6, msg=name)
    # Evaluation tables (features extracted on rank shards, gathered) agree too.
    ddp_eval = (tmp_path / "ddp" / "eval.csv").read_text()
    assert ddp_eval == (tmp_path / "one" / "eval.csv").read_text()

    # Without gathering, each rank's triplets stay within its shard: a different loss.
    local = _torchrun(_train_cmd(store, tmp_path / "local", ["loss.gather=false"]), tmp_path)
    assert local.returncode == 0, local.stderr[-3000:]
    shard = _params(tmp_path / "local")
    moved = max(float((shard[n] - one[n]).abs().max()) for n in one)
    assert moved > 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _extract_worker(rank: int, world: int, port: int, store_path: str, out: str) -> None:
    """One rank of a gloo group: extract features of the same items as rank 0 and save them."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from gaitlib.data.store import Store
    from gaitlib.evaluation.extract import extract_features
    from gaitlib.models import build
    from gaitlib.training import distributed

    info = distributed.init("cpu")
    try:
        torch.manual_seed(0)
        model = build("gaitset", channels=(2, 4, 4), hidden_dim=8, bins=(2, 1))
        store = Store(store_path)
        items = store.select(subjects=["007", "008", "009"])[:11]  # odd: unequal shards
        feats = extract_features(model, store, items, dist_info=info, sequences_per_batch=3)
        torch.save({"emb": feats.embeddings, "items": torch.from_numpy(feats.items)},
                   f"{out}/rank{rank}.pt")
    finally:
        distributed.shutdown()


def test_features_gathered_from_rank_shards_equal_one_process(store, tmp_path):
    from gaitlib.evaluation.extract import extract_features
    from gaitlib.models import build

    mp.spawn(_extract_worker, args=(2, _free_port(), str(store.path), str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    model = build("gaitset", channels=(2, 4, 4), hidden_dim=8, bins=(2, 1))
    items = store.select(subjects=["007", "008", "009"])[:11]
    single = extract_features(model, store, items, sequences_per_batch=3)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["items"].tolist() == items.tolist()
        torch.testing.assert_close(got["emb"], single.embeddings, rtol=1e-5, atol=1e-6)
