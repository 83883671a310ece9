"""Training: typed configs and per-model recipes, the trainer, checkpoints, DDP plumbing.

    from gaitlib.training import recipe, apply_overrides, train
    config = recipe("gaitgl", "cpu")
    config.data.store = "data/synthetic"
    apply_overrides(config, ["optimizer.lr=3e-4", "sampling.p=4"])
    train(config, "runs/gaitgl-cpu")
"""

from gaitlib.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gaitlib.training.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    flat_keys,
    from_dict,
    set_value,
)
from gaitlib.training.recipes import PROFILES, recipe
from gaitlib.training.rundir import RunDirError, RunLockedError, UnfinishedRunError
from gaitlib.training.trainer import NonFiniteLossError, RunResult, evaluate_run, train

__all__ = ["PROFILES", "CheckpointError", "ConfigError", "NonFiniteLossError", "RunDirError",
           "RunLockedError", "RunResult", "TrainConfig", "UnfinishedRunError",
           "apply_overrides", "evaluate_run", "flat_keys", "from_dict", "load_checkpoint",
           "recipe", "save_checkpoint", "set_value", "train"]
