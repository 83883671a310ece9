"""Training: typed configs and per-model recipes, the trainer, checkpoints, DDP plumbing.

    from gaitlib.training import recipe, apply_overrides, train
    config = recipe("gaitgl", "cpu")
    config.data.store = "data/synthetic"
    apply_overrides(config, ["optimizer.lr=3e-4", "sampling.p=4"])
    train(config, "runs/gaitgl-cpu")
"""

from gaitlib._lazy import lazy_module_attributes
from gaitlib.training.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    flat_keys,
    from_dict,
    set_value,
)
from gaitlib.training.recipes import PROFILES, recipe

# The trainer and checkpoints need torch: imported on first use, so that importing the configs
# and recipes (the command line's start-up, `gaitlib --help`) stays fast.
_LAZY = {"CheckpointError": "checkpoint", "load_checkpoint": "checkpoint",
         "save_checkpoint": "checkpoint", "RunResult": "trainer", "evaluate_run": "trainer",
         "train": "trainer", "NonFiniteLossError": "trainer", "RunDirError": "rundir",
         "RunLockedError": "rundir", "UnfinishedRunError": "rundir"}

__all__ = ["PROFILES", "CheckpointError", "ConfigError", "NonFiniteLossError", "RunDirError",
           "RunLockedError", "RunResult", "TrainConfig", "UnfinishedRunError",
           "apply_overrides", "evaluate_run", "flat_keys", "from_dict", "load_checkpoint",
           "recipe", "save_checkpoint", "set_value", "train"]


__getattr__, __dir__ = lazy_module_attributes(__name__, globals(), _LAZY, __all__)
