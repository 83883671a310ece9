"""The protocol under each main table: what this edition and the paper did, side by side, and the
known gaps a reader meets there.

A rank-1 number means little without its protocol: how many subjects trained (73 or 74 on
CASIA-B), which silhouettes (OpenGait's grey-edged frames or a binarized copy), which checkpoint
was scored (the final one, or the best on the test set), and on OU-MVLP whether probes without
a gallery sequence count as misses.  :func:`protocol_note` says it from the runs and from the
facts below, each checked against its source.  :data:`MODEL_ZOO` holds OpenGait's own numbers
for the baselines, which the main tables show beside the papers' quoted ones.
"""

from __future__ import annotations

from gaitlib.papers.artifacts import artifact
from gaitlib.runs.cache import Run

# OpenGait's model zoo (docs/1.model_zoo.md): rank-1 excluding identical views, and mAP under
# its cross-view gallery protocol (gaitlib.evaluation.mean_ap); OpenGait trains on 74 CASIA-B
# subjects.  (rank-1, mAP) per condition; OU-MVLP's rank-1 counts probes without a gallery
# sequence as misses.
MODEL_ZOO = {
    "casia-b": {"GaitSet": {"NM": (95.8, 85.9), "BG": (90.0, 81.4), "CL": (75.4, 77.0)},
                "GaitPart": {"NM": (96.1, 84.8), "BG": (90.7, 81.1), "CL": (78.7, 75.5)},
                "GaitGL": {"NM": (97.4, 86.2), "BG": (94.5, 84.4), "CL": (83.8, 79.8)}},
    "oumvlp": {"GaitSet": {"miss": (87.2, 92.2)}, "GaitPart": {"miss": (88.6, 93.3)},
               "GaitGL": {"miss": (89.9, 93.3)}},
}
MODEL_ZOO_SOURCE = "OpenGait's model zoo (docs/1.model_zoo.md in github.com/ShiqiYu/OpenGait)"

# What each paper's main table rests on, and what a reader should know there.  Sources: the
# papers; the 3D Local authors' solvers/local.py and configs (test_interval 1000 / 10000, the best
# test accuracy kept); GaitMM's authors' earlier code, GaitFM (config/gaitfm_OUMVLP.yaml:
# total_iter 160000, restore_hint 120000); CSTL's README (Note), CSTL issue #3, OpenGait issue #77.
PAPER_PROTOCOL = {
    "gaitmm": "GaitMM's paper trains on the 74 subjects of the LT split; its OU-MVLP model comes "
              "from its authors' earlier code (GaitFM), whose OU-MVLP config trains 160k "
              "iterations and evaluates the 120k checkpoint.",
    "local3d": "The 3D Local authors' code trains on 73 subjects (005 dropped), tests every 1,000 "
               "iterations (10,000 on OU-MVLP) and keeps the best test accuracy: the paper's "
               "numbers are a selection on the test set, which gaitlib never makes.",
    "cstl": "CSTL's paper trains on the 74 subjects of the LT split, its code on 73 (005 "
            "dropped).",
}
KNOWN_GAPS = {
    "cstl-t1": "Known gaps: a CSTL re-implemented in OpenGait reached 74 where the paper reports "
               "87.0 (its CL mean at 128x88; [OpenGait issue #77]"
               "(https://github.com/ShiqiYu/OpenGait/issues/77), 2022, whose maintainers could "
               "not reach the authors); and the authors' "
               "[README](https://github.com/OliverHxh/CSTL#note) warns that 64x44 results "
               "oscillate from run to run and recommends 128x88.",
    "cstl-t2": "Known gap: the paper's 90.2 counts probes without a gallery sequence as misses. "
               "Asked for the number without them ([CSTL issue #3]"
               "(https://github.com/OliverHxh/CSTL/issues/3)), the authors pointed to their "
               "journal version ([arXiv:2204.03270](https://arxiv.org/abs/2204.03270), later "
               "renamed MCAT), which reports 97.5 on "
               "OU-MVLP under that convention, for an extended model: not the ICCV model's "
               "number under the other convention.",
}
OUMVLP_VARIANT = {
    "miss": "probes whose subject has no gallery sequence at the gallery view count as misses "
            "(OpenGait's convention)",
    "discard": "probes whose subject has no gallery sequence at the gallery view are left out "
               "(the convention behind this paper's table)",
}

__all__ = ["KNOWN_GAPS", "MODEL_ZOO", "PAPER_PROTOCOL", "protocol_note", "zoo"]


def zoo(method: str, condition: str, dataset: str = "casia-b") -> tuple[float, float] | None:
    """OpenGait's model-zoo (rank-1, mAP) of a baseline in a condition, or None."""
    return MODEL_ZOO.get(dataset, {}).get(method, {}).get(condition)


def _subjects(run: Run) -> int:
    from gaitlib.data.store import Store
    from gaitlib.training.trainer import resolve_subjects

    return len(resolve_subjects(run.config, Store(run.config.data.store))[0])


def protocol_note(artifact_id: str, runs: dict[str, Run]) -> str:
    """Markdown under a main table: this edition's protocol (training subjects per row, the
    silhouettes, the checkpoint scored, the OU-MVLP variant, how mAP is computed), the paper's,
    and the known gaps of the artifact."""
    from gaitlib.data.store import is_binarized

    art = artifact(artifact_id)
    rows = [r for r in art.rows if r.key() in runs]
    if not rows:
        return ""
    counts = {r.label: _subjects(runs[r.key()]) for r in rows}
    usual = max(set(counts.values()), key=list(counts.values()).count)
    odd = ", ".join(f"{label} {n}" for label, n in counts.items() if n != usual)
    store = runs[rows[0].key()].config.data.store
    from gaitlib.data.store import Store

    dataset = Store(store).dataset
    if dataset.startswith("synthetic"):
        silhouettes = "the synthetic walker's silhouettes"
    elif is_binarized(store):
        silhouettes = "binarized silhouettes (grey edge pixels thresholded at 128)"
    else:
        silhouettes = "the imported silhouettes as they are"
    text = (f"**Protocol.** This edition trains on {usual} subjects"
            f"{f' ({odd}, as its source code)' if odd else ''}, uses {silhouettes}, and scores the "
            "final checkpoint of every run (it never selects a checkpoint on the test set); "
            "rank-1 excludes the identical view. ")
    shapes = {r.shape for r in rows}
    if "oumvlp" in shapes:
        variants = sorted({r.setting for r in rows if r.shape == "oumvlp"})
        text += "OU-MVLP: " + "; ".join(OUMVLP_VARIANT[v] for v in variants if v in OUMVLP_VARIANT) + ". "
    text += ("mAP follows OpenGait's cross-view evaluation, as its model zoo reports it: probes "
             + ("nm-01, bg-01, cl-01 against a gallery of nm-02, bg-02, cl-02 at every view"
                if "oumvlp" not in shapes else "00 against the gallery 01 at every view")
             + ", a probe's own subject at its own view left out. The papers' numbers come from "
               "OpenGait's grey-edged silhouettes. " + PAPER_PROTOCOL.get(art.paper, ""))
    if artifact_id in KNOWN_GAPS:
        text += "\n\n" + KNOWN_GAPS[artifact_id]
    from gaitlib.papers.reported import load_reported

    if set(load_reported(artifact_id)["method"]) & set(MODEL_ZOO["casia-b"]):
        text += (f"\n\nThe 'OpenGait' columns give {MODEL_ZOO_SOURCE} for the baselines it "
                 "trains (GaitSet, GaitPart, GaitGL): rank-1 beside the number the paper quotes, "
                 "and mAP.")
    return text
