"""A run directory from a reference checkpoint (``gaitlib checkpoint import``).

The converted weights (:mod:`gaitlib.models.convert`) are written as the final checkpoint of a
gaitlib run directory whose ``config.json`` names the model and the options the checkpoint
implies (variant, widths, class count, input resolution), so ``gaitlib eval RUN_DIR`` scores
the reference model under gaitlib's protocol exactly as it scores a run it trained.  The run is
marked as imported (``imported.json``: source, file, SHA-256, tensor mapping) and carries no
optimizer state: it can be evaluated, not resumed.
"""

from __future__ import annotations

import os
from pathlib import Path

from gaitlib.data.store import sha256_file
from gaitlib.models.convert import SOURCES, Conversion, ConversionError, convert_file
from gaitlib.training import checkpoint as ckpt
from gaitlib.training import rundir
from gaitlib.training.config import TrainConfig, flat_keys, set_value

IMPORTED = "imported.json"


def imported_config(conversion: Conversion, store: str = "") -> TrainConfig:
    """The config of an imported run: the model's paper recipe with the checkpoint's options."""
    from gaitlib.training.recipes import recipe

    config = recipe(conversion.model, "paper")
    config.model.options = dict(conversion.options)
    config.data.store = store
    if store:
        from gaitlib.data.store import Store

        if Store(store).dataset.startswith("synthetic"):
            config.data.split = ""  # the recipe's split names real subjects; a synthetic store has its own
    # Reference weights are fp32; extract test features in fp32 too.
    for key, value in (("amp", "false"), ("precision", "fp32")):
        if key in flat_keys():
            set_value(config, key, value)
    config.schedule.iterations = max(conversion.iteration, 1)
    config.workers = min(config.workers, os.cpu_count() or 1)
    return config


def import_checkpoint(source: str, src: str | os.PathLike, model: str, out: str | os.PathLike,
                      store: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Convert ``src`` (a ``source`` checkpoint of ``model``) into the run directory ``out``.

    ``store``: the dataset store ``gaitlib eval`` is to use (recorded in ``config.json``; it can
    be edited there later).  Raises ``FileExistsError`` if ``out`` holds something (without
    ``force``), :class:`~gaitlib.models.convert.ConversionError` if the checkpoint does not fit.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown checkpoint source {source!r}; valid: {', '.join(SOURCES)}")
    src, out = Path(src), Path(out)
    ckpt.check_regular_file(src, "checkpoint", ConversionError)
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a run directory; choose another --out")
    try:
        conversion = convert_file(source, model, src)
    except ConversionError as err:
        load = err.__cause__
        if load is not None and "weights-only" in str(err):  # torch.load's error, without its
            raise ConversionError(                            # advice to load the file unsafely
                f"{src} cannot be read as a weights-only torch checkpoint "
                f"({ckpt.describe_load_error(load)})") from load
        raise ConversionError(f"{src}: {err}") from err  # a checkpoint of another network
    conversion.build()  # strict load into the real model: fails here, not at eval time
    config = imported_config(conversion, str(Path(store).resolve()) if store else "")
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} is not empty; pass --force to replace it")
    rundir.prepare(out, config, force=True)
    ckpt.save_checkpoint(ckpt.checkpoint_path(out / rundir.CHECKPOINTS, conversion.iteration), {
        "iteration": conversion.iteration, "model": conversion.state, "optimizer": {},
        "scheduler": {}, "rng": {}, "config": config.to_dict()})
    rundir.write_json(out / IMPORTED, {
        "source": source, "file": str(src.resolve()), "sha256": sha256_file(src),
        "model": model, "variant": conversion.variant, "options": conversion.options,
        "iteration": conversion.iteration,
        "mapping": [{"reference": list(keys), "gaitlib": dest}
                    for keys, dest in conversion.mapping]})
    return out
