"""Fast training: precision and memory format as configuration, the GPU-resident batches (equal
to the DataLoader's), syncs only on log steps. Tests marked ``cuda`` run on a GPU machine
(bench/device_check.sh) and skip elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gaitlib.data.sampling import DeviceBatches, FrameSampling, train_loader
from gaitlib.data.store import Store
from gaitlib.training import ConfigError, apply_overrides, from_dict, recipe, train
from gaitlib.training.config import LossConfig, TrainConfig, validate
from gaitlib.training.distributed import DistInfo
from gaitlib.training.precision import autocast, to_channels_last
from gaitlib.training.trainer import LossComposer, build_model, log_values
from tests.conftest import blob_silhouettes, make_store

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CONDITIONS = ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01",
              "cl-02")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return make_store(tmp_path_factory.mktemp("store") / "s",
                      subjects=[f"{i:03d}" for i in range(1, 7)],
                      conditions=CONDITIONS, views=("000", "090"), lengths=(6, 14))


def tiny(store: Store, model: str = "gaitgl", extra=()) -> TrainConfig:
    config = recipe(model, "smoke", "synthetic")
    config.data.store = str(store.path)
    return apply_overrides(config, ["model.options.channels=[2,4,4]", "schedule.iterations=4",
                                    "schedule.milestones=[3]", "checkpoint_every=2",
                                    "eval.enabled=false", "workers=0", *extra])


# -- configuration ------------------------------------------------------------------------------

def test_old_config_with_amp_loads_as_what_it_computed():
    old = TrainConfig().to_dict()
    del old["precision"]
    cpu = from_dict({**old, "amp": True, "device": "auto"})
    cuda = from_dict({**old, "amp": True, "device": "cuda"})
    off = from_dict({**old, "amp": False, "device": "cuda"})
    assert (cpu.precision, cuda.precision, off.precision) == ("fp32", "bf16", "fp32")
    with pytest.raises(ConfigError, match="both"):
        from_dict({**TrainConfig().to_dict(), "amp": True})


def test_fp16_with_a_gradient_scaler_trains_on_the_cpu(store, tmp_path):
    config = tiny(store, model="gaitset", extra=["precision=fp16", "log_every=1",
                                                  "model.options.bins=[2,1]"])
    assert train(config, tmp_path / "run", progress=False).finished
    state = torch.load(tmp_path / "run" / "checkpoints" / "ckpt-00000004.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0  # the scaler's state is checkpointed for resuming


@pytest.mark.parametrize("item", ["precision=fp8", "eval.precision=half", "compile=fast"])
def test_unknown_precision_or_compile_mode_is_an_error(item):
    with pytest.raises(ConfigError, match=item.split("=")[0]):
        validate(apply_overrides(TrainConfig(), [item]))


# -- no wasted syncs -----------------------------------------------------------------------------

def test_loss_composer_logs_tensors_read_once():
    torch.manual_seed(0)
    emb, logits = torch.randn(8, 4, 3, requires_grad=True), torch.randn(8, 5, 3)
    labels = torch.arange(4).repeat_interleave(2)
    loss, logs = LossComposer(LossConfig(ce_weight=1.0), DistInfo())(
        {"embedding": emb, "logits": logits}, labels)
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in logs.values())
    values = log_values(logs)
    assert set(values) == {"triplet", "nonzero", "dist", "ce", "acc", "loss"}
    assert values["loss"] == pytest.approx(loss.item())
    assert all(isinstance(v, float) for v in values.values())


# -- precision and memory format ----------------------------------------------------------------

@pytest.mark.parametrize("model", ["gaitset", "gaitgl"])  # 2-D and 3-D convolutions
def test_channels_last_computes_the_same_function(model):
    config = recipe(model, "smoke", "synthetic")
    torch.manual_seed(0)
    net = build_model(config, num_classes=5).eval()
    x = blob_silhouettes(2, 6, 32, 22)
    with torch.no_grad():
        ref = net(x)["embedding"]
        to_channels_last(net)
        formats = {p.dim(): p.is_contiguous(memory_format=torch.channels_last if p.dim() == 4
                                            else torch.channels_last_3d)
                   for p in net.parameters() if p.dim() in (4, 5)}
        out = net(x)["embedding"]
    assert formats and all(formats.values())
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_on_cpu_is_close_to_fp32():
    config = recipe("gaitpart", "smoke", "synthetic")
    torch.manual_seed(0)
    net = build_model(config, num_classes=5).eval()
    x = blob_silhouettes(2, 6, 32, 22)
    with torch.no_grad():
        ref = net(x)["embedding"]
        with autocast("cpu", "bf16"):
            low = net(x)["embedding"]
    assert low.dtype in (torch.bfloat16, torch.float32)
    err = (low.float() - ref).norm() / ref.norm()
    assert 0 < err < 3e-2  # bf16 rounding shows, but the function is the same


def test_bf16_channels_last_training_resumes_bit_identically(store, tmp_path):
    # oneDNN's bf16 kernels on CPUs with AVX512-BF16 are not run-to-run deterministic (two
    # uninterrupted runs differ from the first iteration), so the check of resume runs on
    # PyTorch's own kernels; bf16 is a GPU setting, the cpu profile stays fp32.
    config = tiny(store, extra=["precision=bf16", "channels_last=true", "log_every=1"])
    with torch.backends.mkldnn.flags(enabled=False):
        whole = train(config, tmp_path / "whole", progress=False)
        train(config, tmp_path / "part", stop_after=2, progress=False)
        train(config, tmp_path / "part", progress=False)
    assert whole.finished
    logs = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("whole", "part")]
    assert [r["loss"] for r in logs[0]] == [r["loss"] for r in logs[1]]
    assert all(np.isfinite(r["loss"]) for r in logs[0])


# -- batches drawn on the device ----------------------------------------------------------------

@pytest.mark.parametrize("mode, flip", [("ordered", False), ("ordered_window", True),
                                        ("unordered", False)])
def test_device_batches_equal_the_dataloader_batches(store, mode, flip, monkeypatch):
    monkeypatch.setattr(DeviceBatches, "CHUNK_BYTES", 50_000)  # several copies while loading
    subjects = ["001", "002", "003", "004"]
    sampling = FrameSampling(mode, 5, (5, 9))
    kwargs = dict(seed=3, start_iteration=7, flip=flip)
    loader = iter(train_loader(store, subjects, 3, 2, sampling, workers=0, **kwargs))
    device = iter(DeviceBatches(store, subjects, 3, 2, sampling, device="cpu", **kwargs))
    flipped = 0
    for _ in range(6):
        a, b = next(loader), next(device)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        flipped += int((a["frames"] != a["frames"].flip(-1)).any())
    assert flipped  # the comparison covered mirrored clips (random content is never symmetric)


def test_on_device_training_equals_the_dataloader_run(store, tmp_path):
    runs = {}
    for on_device in (False, True):
        config = tiny(store, extra=[f"data.on_device={on_device}", "log_every=1"])
        train(config, tmp_path / str(on_device), progress=False)
        runs[on_device] = [json.loads(line)["loss"] for line in
                           (tmp_path / str(on_device) / "metrics.jsonl").read_text().splitlines()]
    assert runs[False] == runs[True]


# -- CUDA (bench/device_check.sh) ---------------------------------------------------------------

@pytest.mark.cuda
@CUDA
def test_cuda_device_batches_equal_the_cpu_batches(store):
    subjects = ["001", "002", "003", "004"]
    sampling = FrameSampling("ordered_window", 5, (5, 9))
    cpu = iter(train_loader(store, subjects, 3, 2, sampling, workers=0, seed=1, flip=True))
    gpu = iter(DeviceBatches(store, subjects, 3, 2, sampling, seed=1, flip=True, device="cuda"))
    for _ in range(4):
        a, b = next(cpu), next(gpu)
        assert b["frames"].is_cuda
        assert all(torch.equal(a[k], b[k].cpu()) for k in a)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_low_precision_training_is_finite(store, tmp_path, precision):
    config = tiny(store, extra=[f"precision={precision}", "channels_last=true", "device=cuda",
                                "data.on_device=true", "log_every=1"])
    assert train(config, tmp_path / "run", progress=False).finished
    losses = [json.loads(line)["loss"] for line in
              (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(np.isfinite(losses))


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("model", ["gaitset", "gaitgl", "cstl"])
def test_cuda_fp32_features_equal_cpu_features(store, model):
    from gaitlib.evaluation.extract import extract_features

    config = recipe(model, "smoke", "synthetic")
    torch.manual_seed(0)
    net = build_model(config, num_classes=3)
    items = store.select(subjects=["004", "005"])
    cpu = extract_features(net, store, items, "cpu", height=32).embeddings
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:  # fp32 means fp32 here (TF32 convolutions would be a ~1e-3 error)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        gpu = extract_features(net.cuda(), store, items, "cuda", height=32).embeddings
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert torch.allclose(gpu, cpu, rtol=1e-3, atol=1e-4)
