"""What the artifact notebooks call: get an artifact's runs, compare them with the paper, record.

A notebook is a few lines over these functions::

    runs = study.runs_for("cstl-t3", profile, data, data_root, runs_dir, device, seed)
    table = study.ablation("cstl-t3", runs)
    study.record("cstl-t3", table, runs, results_dir, profile, data)
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from gaitlib.report.artifacts import Artifact, Row, artifact
from gaitlib.report.runs import Run, RunSpec, ensure_run

PROFILE_NOTES = {
    "smoke": "the smoke profile (a few iterations on a tiny synthetic set): plumbing only, the "
             "numbers mean nothing",
    "cpu": "the cpu profile: half resolution (32x22 for the papers' 64x44, 64x44 for 128x88), "
           "half channel widths, (4, 4) batches of 8 frames, a short schedule with Adam at 1e-3, "
           "tested on the first test subjects and frames (see the reproduction notes)",
    "paper": "the papers' recipes (iterations, batches, resolutions)",
}
DATA_NOTES = {
    "synthetic": "the synthetic CASIA-B-shaped walker data (OU-MVLP-shaped for the OU-MVLP "
                 "tables), not the real datasets",
    "casia-b": "CASIA-B (the binarized copy unless you imported your own)",
    "oumvlp": "OU-MVLP",
}


def spec_for(row: Row, data: str, profile: str, seed: int) -> RunSpec:
    return RunSpec.of(row.model, data=data, profile=profile, seed=seed, shape=row.shape,
                      **row.options)


def needs_oumvlp(art: Artifact) -> bool:
    return any(r.shape == "oumvlp" for r in art.rows)


def runs_for(artifact_id: str, profile: str = "cpu", data: str = "synthetic",
             data_root: str | os.PathLike = "data", runs_dir: str | os.PathLike = "runs",
             device: str = "auto", seed: int = 0, progress: bool = True) -> dict[str, Run]:
    """Every run the artifact needs, keyed by row (``Row.key()``): reused, resumed or trained.

    The OU-MVLP tables run on OU-MVLP-shaped data: the synthetic OU-MVLP store for
    ``data='synthetic'``, the imported OU-MVLP store for ``data='oumvlp'``; CASIA-B-only data
    cannot produce them (a ValueError says so).
    """
    art = artifact(artifact_id)
    if needs_oumvlp(art) and data == "casia-b":
        raise ValueError(f"{artifact_id} is an OU-MVLP table; run it with data='oumvlp' "
                         f"(or 'synthetic')")
    if data == "oumvlp" and not needs_oumvlp(art):
        raise ValueError(f"{artifact_id} is a CASIA-B artifact; run it with data='casia-b' "
                         f"(or 'synthetic')")
    runs: dict[str, Run] = {}
    for row in art.rows:
        spec = spec_for(row, data, profile, seed)
        print(f"{row.key()}: {row.model} {row.options or ''}", flush=True)
        runs[row.key()] = ensure_run(spec, runs_dir, data_root, device, progress=progress)
        run = runs[row.key()]
        # Reused or trained now, and how long it took, differ between builds: not printed into
        # the page (the status table of `gaitlib reproduce` has the times).
        print(f"  {run.run_dir} (trained on {', '.join(run.devices()) or 'an unrecorded device'})",
              flush=True)
    return runs


def reported(artifact_id: str) -> pd.DataFrame:
    from gaitlib.report.reported import load_reported

    return load_reported(artifact_id)


def main_table(artifact_id: str, runs: dict[str, Run]) -> pd.DataFrame:
    """Every method of a main table: reproduced Mean per condition with its 95% CI next to the
    paper's, and the delta; methods gaitlib does not implement show the paper's numbers only."""
    from gaitlib.report.tables import compare_with_reported

    art, paper = artifact(artifact_id), reported(artifact_id)
    lines = []
    done = set()
    for row in art.rows:
        if row.key() not in runs:
            continue
        result = runs[row.key()].result()
        rows = result.table.index
        if row.shape == "oumvlp":  # one reported variant per row: compare that one
            result.table = result.table.loc[[row.setting]]
            rows = [row.setting]
        cmp = compare_with_reported(result, _as_conditions(paper, row), row.label, row.setting or None)
        for cond in rows:
            c = cmp.loc[cond]
            lines.append({"method": row.label, "setting": row.setting, "condition": cond,
                          "reproduced": c["reproduced"], "95% CI": _ci(c["ci_low"], c["ci_high"]),
                          "reported": c["reported"], "delta": c["delta"]})
        done.add((row.label.lower(), row.setting))
    for (method, setting), group in paper.groupby(["method", "setting"], sort=False):
        if (method.lower(), setting) in done:
            continue
        for _, line in group.iterrows():
            cond = setting if line["condition"] == "rank1" else line["condition"]
            lines.append({"method": method, "setting": setting, "condition": cond,
                          "reproduced": np.nan, "95% CI": "", "reported": line["Mean"],
                          "delta": np.nan})
    return pd.DataFrame(lines).set_index(["method", "setting", "condition"])


def _as_conditions(paper: pd.DataFrame, row: Row) -> pd.DataFrame:
    """OU-MVLP tables name the condition 'rank1' and the variant in ``setting``: rename the
    condition to the variant so it lines up with the protocol's rows (miss/discard)."""
    if row.shape != "oumvlp":
        return paper
    paper = paper.copy()
    rank1 = paper["condition"] == "rank1"
    paper.loc[rank1, "condition"] = paper.loc[rank1, "setting"]
    return paper


def _ci(low: float, high: float) -> str:
    return "" if np.isnan(low) else f"[{low:.1f}, {high:.1f}]"


def per_view(runs: dict[str, Run], key: str) -> pd.DataFrame:
    """The reproduced per-view table (rows x probe views + Mean) of one run."""
    return runs[key].result().table


def seed_runs(artifact_id: str, seeds, profile: str = "cpu", data: str = "synthetic",
              data_root: str | os.PathLike = "data", runs_dir: str | os.PathLike = "runs",
              device: str = "auto", progress: bool = True) -> dict[str, list[Run]]:
    """Extra seeds of an ablation's reference row and full model (the rows whose difference is
    the table's claim): row key -> runs, one per seed, for :func:`ablation`'s ``seed_runs``."""
    art = artifact(artifact_id)
    out: dict[str, list[Run]] = {}
    for row in {r.key(): r for r in (art.reference_row(), art.rows[-1])}.values():
        out[row.key()] = []
        for seed in seeds:
            spec = spec_for(row, data, profile, int(seed))
            print(f"{row.key()} seed {seed}", flush=True)
            out[row.key()].append(ensure_run(spec, runs_dir, data_root, device, progress=progress))
    return out


PAPERS = {"gaitmm": "GaitMM", "local3d": "3D Local CNN", "cstl": "CSTL"}


def per_view_comparison(artifact_id: str, result) -> pd.DataFrame:
    """The paper's model per probe view, reproduced and reported side by side: rows
    ``(condition, source)`` with source 'here' (this run) then 'paper' (reported), columns the
    probe views and Mean.  The caption, saying which is which, is in ``attrs['caption']``."""
    row = ours(artifact_id)
    paper = _as_conditions(reported(artifact_id), row)
    paper = paper[paper["method"].str.casefold() == row.label.casefold()]
    if row.setting and "setting" in paper.columns:
        paper = paper[paper["setting"].str.casefold() == row.setting.casefold()]
    paper = paper.set_index("condition")
    here = result.table
    lines, index = [], []
    for cond in here.index:
        lines.append(here.loc[cond])
        index.append((cond, "here"))
        if cond in paper.index:
            lines.append(paper.loc[cond].reindex(here.columns).astype(float))
            index.append((cond, "paper"))
    out = pd.DataFrame(lines, columns=here.columns)
    out.index = pd.MultiIndex.from_tuples(index, names=["condition", "source"])
    out.attrs["caption"] = (f"Rank-1 (%) per probe view of {row.key()}: 'here' is this page's run, "
                            f"'paper' the number {PAPERS[artifact(artifact_id).paper]} reports "
                            f"({artifact(artifact_id).title.rsplit('(', 1)[-1].rstrip(')')}).")
    return out


def ablation(artifact_id: str, runs: dict[str, Run],
             seed_runs: dict[str, list[Run]] | None = None, bootstrap: int = 1000) -> pd.DataFrame:
    """One line per ablation row: reproduced and reported means per condition, CIs, deltas
    against the paper, and the paired delta against the artifact's reference row
    (:meth:`~gaitlib.report.artifacts.Artifact.reference_row`) with its 95% paired-bootstrap CI
    and the paper's own delta.  ``seed_runs``: further seeds of some rows (:func:`seed_runs`);
    the shown numbers stay those of ``runs`` (the first seed), the seeds add ``seed SD``."""
    from gaitlib.report.tables import ablation_table

    art = artifact(artifact_id)
    results: dict[str, object] = {}
    for row in art.rows:
        first = runs[row.key()]
        others = [r for r in (seed_runs or {}).get(row.key(), []) if r.run_dir != first.run_dir]
        results[row.key()] = [first.result(), *(r.result() for r in others)] if others \
            else first.result()
    keys = {row.key(): (row.setting or row.label) for row in art.rows}
    seed = runs[art.rows[0].key()].spec.seed
    table = ablation_table(results, reported(artifact_id), keys=keys,
                           reference=art.reference_row().key(), bootstrap=bootstrap, seed=seed)
    seeds = {seed} | {r.spec.seed for rows in (seed_runs or {}).values() for r in rows}
    if len(seeds) > 1:
        table.attrs["seeds"] = sorted(seeds)
    return table


def record(artifact_id: str, table: pd.DataFrame, runs: dict[str, Run],
           results_dir: str | os.PathLike, profile: str, data: str) -> Path | None:
    """Save the artifact's headline table and where it came from, for the scorecard and for
    readers without the data: ``<results_dir>/<id>/<data>-<profile>.json``.

    Only when ``gaitlib reproduce`` publishes (:func:`gaitlib.report.results.publishing`):
    running the notebook by hand records nothing.  An unchanged record is left as it is, and so
    is a record of the same data and profile with more seeds.  Returns the path, or None when
    nothing was recorded.
    """
    from gaitlib.report.results import PUBLISH_ENV, git_commit, publishing, write_record

    if not publishing():
        print(f"not recorded: only `gaitlib reproduce` records results ({PUBLISH_ENV}=1)")
        return None
    out = Path(results_dir) / artifact_id / f"{data}-{profile}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    stores = {r.config.data.store for r in runs.values()}
    payload = {
        "artifact": artifact_id, "data": data, "profile": profile,
        # real data: whether the store holds only 0/255 (the shared CASIA-B copy is binarized)
        **({"binarized": all(is_binarized(st) for st in sorted(stores))}
           if data != "synthetic" and stores else {}),
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"), "git_commit": git_commit(),
        "runs": {k: {"dir": r.run_dir.name, "model": r.spec.model, "options": r.spec.option_dict,
                     "iterations": r.config.schedule.iterations, "devices": r.devices()}
                 for k, r in runs.items()},
        "table": json.loads(table.reset_index().to_json(orient="records")),
    }
    if "paired" in table.attrs:  # ablations: per row and condition delta, delta_ci, seed_sd
        payload["paired"] = table.attrs["paired"]
    if "seeds" in table.attrs:  # the seeds behind seed_sd
        payload["seeds"] = table.attrs["seeds"]
    if out.is_file() and len(json.loads(out.read_text()).get("seeds", [0])) > len(payload.get("seeds", [0])):
        print(f"not recorded: {out} holds a record with more seeds (a rebuild without "
              "--extra-seeds keeps it)")
        return None
    write_record(out, payload)
    return out


FAITHFULNESS = {"data": {"casia-b": 2, "oumvlp": 2, "synthetic": 0},
                "profile": {"paper": 2, "cpu": 1, "smoke": 0}}


def recorded(results_dir: str | os.PathLike, artifact_id: str) -> list[dict]:
    """Every recorded result of an artifact, most faithful first (real data over synthetic,
    then paper over cpu over smoke)."""
    folder = Path(results_dir) / artifact_id
    found = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(found, key=lambda r: (-FAITHFULNESS["data"].get(r["data"], 0),
                                        -FAITHFULNESS["profile"].get(r["profile"], 0)))


def headline(entry: dict) -> dict:
    """The headline of a recorded result: the paper's own model (first row of a main table, last
    row of an ablation), its reproduced and reported mean over conditions, and how many rows
    were reproduced."""
    aid = entry["artifact"]
    row = ours(aid)
    table = pd.DataFrame(entry["table"])
    if "label" in table.columns:  # ablation: one line per row
        line = table.set_index("label").loc[row.key()]
        return {"rows": len(table), "model": row.key(),
                "reproduced": float(line["Mean reproduced"]), "reported": float(line["Mean reported"])}
    done = table[table["reproduced"].notna()]
    mine = done[(done["method"] == row.label) & (done["setting"] == row.setting)]
    return {"rows": int(done.groupby(["method", "setting"]).ngroups), "model": row.key(),
            "reproduced": float(mine["reproduced"].mean()),
            "reported": float(mine["reported"].astype(float).mean())}


PAPER_NAMES = {"gaitmm": "GaitMM", "local3d": "3D Local CNN", "cstl": "CSTL"}
# The OU-MVLP evaluation variants (see gaitlib.evaluation.protocols), in words.
# A probe "without a gallery" has no gallery sequence of its subject at the gallery view.
SETTING_WORDS = {"discard": "OU-MVLP, probes without a gallery dropped",
                 "miss": "OU-MVLP, probes without a gallery as misses"}


def model_label(artifact_id: str) -> str:
    """What the scorecard's headline number is, in words: the paper's model and its setting
    (resolution, OU-MVLP evaluation variant), or which ablation row is the full model."""
    art, row = artifact(artifact_id), ours(artifact_id)
    name = PAPER_NAMES.get(art.paper, art.paper)
    if art.kind == "ablation":
        label = row.label if len(row.label) <= 24 else ""
        setting = f"setting {row.setting}" if row.setting else ""
        inside = ", ".join(x for x in (label, setting) if x and x != name)
        return f"{name}, full model" + (f" ({inside})" if inside else "")
    setting = SETTING_WORDS.get(row.setting, f"at {row.setting}" if row.setting else "")
    return name + (f" ({setting})" if setting else "")


def scorecard(results_dir: str | os.PathLike) -> pd.DataFrame:
    """Every artifact by evidence level (see :mod:`gaitlib.report.evidence`): the data and profile
    of the result its page shows, rows run, how the reproduced rows order against the paper's
    (with their uncertainty), the full model's numbers here and in the paper, and the paper-scale
    runs still pending with the device-hours they need."""
    from gaitlib.report.evidence import card

    out = card(results_dir)
    out.insert(1, "paper's model", [model_label(aid) for aid in out.index])
    return out


def test_features(run: Run, n_subjects: int = 10, max_frames: int | None = None,
                  conditions: tuple[str, ...] | None = None, device: str = "cpu"):
    """Embeddings of the first ``n_subjects`` test subjects' sequences with a run's model
    (for t-SNE and similar); frames shrunk as in the run's profile."""
    from gaitlib.evaluation.extract import extract_features

    store, _, test = run.subjects()
    items = store.select(subjects=test[:n_subjects], conditions=conditions)
    frames = run.config.eval.max_frames if max_frames is None else max_frames
    return extract_features(run.load_model(device), store, items, device, max_frames=frames,
                            sequences_per_batch=16, height=run.config.data.resolution)


def test_sequence(run: Run, index: int = 0, max_frames: int = 30):
    """One test sequence as the run's model sees it: ``(frames (T, h, w) float, label)``."""
    import torch

    from gaitlib.data.pretreatment import crop_width
    from gaitlib.data.sampling import to_model_input

    store, _, test = run.subjects()
    item = int(store.select(subjects=test[:1])[index])
    frames = crop_width(store.frames_of(item))[:max_frames]
    sils = to_model_input(torch.from_numpy(np.ascontiguousarray(frames)), "cpu",
                          run.config.data.resolution)
    label = f"{store.subjects[item]}/{store.conditions[item]}/{store.views[item]}"
    return sils, label


# --- notebook helpers -------------------------------------------------------------------------

def setup() -> None:
    """Notebook preamble: work from the repository root (so relative paths mean the same in
    JupyterLab, opened in ``notebooks/``, and under papermill), quiet warnings, plot defaults."""
    import warnings

    import matplotlib

    here = Path.cwd()
    for candidate in (here, *here.parents):
        if (candidate / "_toc.yml").is_file() and (candidate / "gaitlib").is_dir():
            os.chdir(candidate)
            break
    warnings.filterwarnings("ignore", category=UserWarning)
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight"})
    pd.set_option("display.precision", 1)


def scope(profile: str, data: str, data_root: str | os.PathLike | None = None) -> str:
    """One sentence saying which data and profile produced the numbers on a page (for real data
    with ``data_root``: whether the store is binarized, as the shared CASIA-B copy is)."""
    what = DATA_NOTES.get(data, data)
    if data != "synthetic" and data_root is not None:
        what = f"{data.upper() if data == 'oumvlp' else 'CASIA-B'}" + (
            " (a binarized copy: grey edge pixels thresholded, so numbers may differ slightly from "
            "the original silhouettes)" if is_binarized(Path(data_root) / data) else "")
    return (f"Reproduced on {what}, with {PROFILE_NOTES.get(profile, profile)}. "
            "The 95% CIs are bootstrap intervals over the test subjects.")


def is_binarized(store_path: str | os.PathLike, sample: int = 200) -> bool:
    """True when the store's frames (a sample of sequences) hold only 0 and 255."""
    from gaitlib.data.store import Store

    store = Store(store_path)
    picks = np.linspace(0, len(store) - 1, min(sample, len(store))).astype(int)
    return all(np.isin(np.unique(store.frames_of(int(i))), (0, 255)).all() for i in picks)


def trained_on(runs: dict[str, Run]) -> str:
    """Markdown: the device(s) the page's runs actually trained on (from their environment
    records), which need not be the ``device`` the notebook was asked for."""
    devices: dict[str, int] = {}
    for run in runs.values():
        for device in run.devices():
            devices[device] = devices.get(device, 0) + 1
    if not devices:
        return ""
    n = len(runs)
    what = "its run" if n == 1 else f"its {n} runs"
    listing = ", ".join(f"`{d}`" + (f" ({c} of {n})" if len(devices) > 1 else "")
                        for d, c in sorted(devices.items()))
    return f"This page's numbers come from {what}, trained on {listing}."


def other_results(artifact_id: str, results_dir: str | os.PathLike, profile: str, data: str) -> str:
    """Markdown: the other recorded results of this artifact (other data or profiles) made by the
    same code version as this page, each with its date and commit.  Results of other code
    versions are only counted: a page kept from an earlier build would otherwise quote numbers
    that have since been replaced (the scorecard, rebuilt every time, lists the current ones)."""
    from gaitlib.report.evidence import data_label, ordering
    from gaitlib.report.results import git_commit

    here = _base_commit(git_commit())
    entries = [e for e in recorded(results_dir, artifact_id)
               if (e["data"], e["profile"]) != (data, profile)]
    same = [e for e in entries if _base_commit(e.get("git_commit", "")) == here]
    if not entries:
        return "No other recorded result of this artifact."
    lines = [f"Other recorded results of this artifact made by the same code version "
             f"({here[:7]}):", ""] if same else []
    for e in same:
        head = headline(e) if artifact(artifact_id).kind != "figure" else None
        what = "" if head is None else (f": the paper's model {head['reproduced']:.1f} % "
                                        f"(paper {head['reported']:.1f} %), "
                                        f"{ordering(pd.DataFrame(e['table'])).summary()}")
        lines.append(f"- {data_label(e)} data, {e['profile']} profile{what}; recorded "
                     f"{e['recorded'][:10]} at commit {str(e['git_commit'])[:12]}")
    older = len(entries) - len(same)
    if older:
        lines += ["", f"{older} other recorded result{'s' if older != 1 else ''} of this artifact "
                      f"{'come' if older != 1 else 'comes'} from other code versions; the scorecard "
                      "lists the current ones."]
    return "\n".join(lines).strip()


def _base_commit(commit: str) -> str:
    """A commit without its '+dirty' mark."""
    return str(commit).split("+")[0]


CAPTIONS = {
    "main": "Mean rank-1 (%) per condition: 'reproduced' is this page's run with its 95% CI, "
            "'reported' the paper's number, delta = reproduced - reported; methods gaitlib does "
            "not implement have the paper's numbers only.",
    "ablation": "Mean rank-1 (%) per condition and ablation row: this page's run with its 95% CI, "
                "then the paper's number ('paper') and the difference ('delta').",
}


def caption_for(table: pd.DataFrame) -> str:
    """The default caption of a table :func:`show` displays (its ``attrs['caption']`` first)."""
    if table.attrs.get("caption"):
        return str(table.attrs["caption"])
    if "Mean reproduced" in table.columns:
        return CAPTIONS["ablation"]
    if {"reproduced", "reported"} <= set(table.columns):
        return CAPTIONS["main"]
    return ""


def show(table: pd.DataFrame, caption: str | None = None):
    """A comparison, ablation or per-view table styled for the book (one decimal, signed
    deltas), with a caption saying what is reproduced and what is reported (``caption``, else
    :func:`caption_for`).  An ablation table is shown compactly: per condition the reproduced
    mean with its CI in one cell, then the paper's number and the delta."""
    from gaitlib.report.tables import style_comparison

    caption = caption_for(table) if caption is None else caption
    if "Mean reproduced" in table.columns:
        table = compact_ablation(table)
    styled = style_comparison(table)
    words = [c for c in table.columns if c in ("what", "paper's model", "page shows",
                                                "ordering against the paper", "paper scale")]
    if hasattr(styled, "set_properties"):
        if words:  # text columns read better left-aligned
            styled = styled.set_properties(subset=words, **{"text-align": "left"})
        if caption:
            styled = styled.set_caption(caption)
        if "source" in (table.index.names or []):  # per-view: the paper's rows in grey italics
            paper = [i for i, key in enumerate(table.index) if key[-1] == "paper"]
            styled = styled.apply(lambda col: ["color: #555; font-style: italic"
                                               if i in paper else "" for i in range(len(col))])
    return styled


def compact_ablation(table: pd.DataFrame) -> pd.DataFrame:
    """``<c> reproduced`` and ``<c> 95% CI`` merged into one text column ``<c>``; ``<c> paper``
    and ``<c> delta`` kept numeric."""
    out = pd.DataFrame(index=table.index)
    conditions = [c[: -len(" reproduced")] for c in table.columns if c.endswith(" reproduced")]
    for c in conditions:
        ci = table.get(f"{c} 95% CI")
        out[c] = [f"{v:.1f} {t}" if _parse_ci(t) else ("" if v != v else f"{v:.1f}")
                  for v, t in zip(table[f"{c} reproduced"],
                                  ci if ci is not None else [None] * len(table), strict=True)]
        out[f"{c} paper"] = table[f"{c} reported"]
        out[f"{c} delta"] = table[f"{c} delta"]
    out.attrs.update(table.attrs)
    return out


def ours(artifact_id: str) -> Row:
    """The row of the paper's own full model: first in main tables, last in ablations."""
    art = artifact(artifact_id)
    return art.rows[0] if art.kind == "main" else art.rows[-1]


def ordering_note(table: pd.DataFrame) -> str:
    """Markdown: does the reproduced ablation order the rows as the paper does?  Kendall's tau
    between the reproduced and the reported means, with a one-sided permutation p-value."""
    from gaitlib.report.tables import kendall_permutation

    both = table[["Mean reproduced", "Mean reported"]].dropna()
    if len(both) < 3:
        return "Too few rows with reported means to compare orderings."
    tau, p = kendall_permutation(both["Mean reproduced"], both["Mean reported"])
    best_paper = both["Mean reported"].idxmax()
    best_ours = both["Mean reproduced"].idxmax()
    widths = [_ci_width(table.loc[i]) for i in both.index]
    return (f"Rank agreement (Kendall's tau) between the reproduced and the reported means over "
            f"the {len(both)} rows: **{tau:.2f}**, permutation p = {p:.2g} (the share of all "
            f"orderings of the rows that agree with the paper's at least as well; small p: the "
            f"agreement is unlikely by chance). The paper's best row is *{best_paper}*; here it "
            f"is *{best_ours}*. The typical 95% CI of a reproduced condition mean is about "
            f"±{np.nanmedian(widths) / 2:.1f} points; the paired deltas below are the sharper "
            f"test of each row against the reference.")


def show_paired(table: pd.DataFrame):
    """The paired deltas of an ablation table (see :func:`gaitlib.report.tables.paired_cells`),
    styled for the book, with a caption naming the reference row."""
    from gaitlib.report.tables import paired_cells

    cells = paired_cells(table)
    info = table.attrs["paired"]
    try:
        styled = cells.style
    except ImportError:
        return cells
    caption = (f"Paired delta against \"{info['reference']}\" (reproduced, 95% bootstrap CI over "
               f"the shared test subjects; * = CI excludes 0) and the paper's delta")
    return styled.set_caption(caption).set_table_styles(
        [{"selector": "td", "props": "text-align: right;"}])


def paired_note(table: pd.DataFrame) -> str:
    """Markdown: which rows' paired deltas against the reference are resolved (CI excludes 0)
    and whether they point the paper's way; with extra seeds, the verdict on each claimed delta
    (:mod:`gaitlib.report.claims`: the paper's sign, CI excluding 0 and beyond two seed SDs)."""
    from gaitlib.report import claims

    info = table.attrs.get("paired")
    if not info:
        return ""
    found = claims.of_table("", table)
    mean = found[found["condition"] == "Mean"] if not found.empty else found
    rows = len([r for r in info["rows"] if r != info["reference"]])
    same_sign = (mean["delta"] > 0) == (mean["paper delta"] > 0)
    agree = int((mean["ci excludes 0"] & same_sign).sum()) if len(mean) else 0
    contra = int((mean["ci excludes 0"] & ~same_sign).sum()) if len(mean) else 0
    text = (f"Against the reference row *{info['reference']}*, on the mean over conditions: {agree} "
            f"row(s) differ in the paper's direction with a 95% paired CI that excludes 0, {contra} "
            f"differ in the opposite direction, {rows - agree - contra} are not resolved by this "
            f"run. The pairing resamples the test subjects once for both rows, so shared "
            f"difficulty cancels; it does not cover seed-to-seed variation of training.")
    seeds = len(table.attrs.get("seeds", [0]))
    if seeds == 1:
        return text + (" No extra seeds ran for this page, so training noise is unknown and no "
                       "claim is settled here (`gaitlib reproduce --extra-seeds 1,2,3,4`).")
    counts = mean["verdict"].value_counts()
    full = mean.iloc[-1:]  # the full model is an ablation's last row
    verdicts = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in claims.VERDICTS)
    text += (f"\n\nWith {seeds} seeds of the reference row and the full model, the seed SD of a "
             f"delta joins the CI. The paper's claimed deltas (mean over conditions): {verdicts} "
             f"(supported: the paper's sign, a CI that excludes 0 and more than two seed SDs).")
    if len(full):
        line = full.iloc[0]
        text += (f" The full model's delta, {line['delta']:+.1f} against the paper's "
                 f"{line['paper delta']:+.1f} with two seed SDs of {2 * line['seed SD of delta']:.1f},"
                 f" is **{line['verdict']}**.")
    return text


def _parse_ci(text) -> tuple[float, float] | None:
    """``(low, high)`` of a CI cell written as ``'[low, high]'`` (gaitlib.report.tables), else None."""
    if not isinstance(text, str) or not text.startswith("["):
        return None
    low, high = (float(x) for x in text.strip("[]").split(","))
    return low, high


def _ci_width(line: pd.Series) -> float:
    cis = [_parse_ci(text) for col, text in line.items() if str(col).endswith("95% CI")]
    widths = [high - low for low, high in filter(None, cis)]
    return float(np.mean(widths)) if widths else np.nan


def plot_ablation(table: pd.DataFrame, title: str = ""):
    """Grouped bars of the reproduced means per condition (with 95% CIs) and the paper's means
    as black markers, one group per ablation row."""
    import matplotlib.pyplot as plt

    conditions = [c[: -len(" reproduced")] for c in table.columns
                  if c.endswith(" reproduced") and not c.startswith("Mean")]
    n, m = len(table), len(conditions)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * n + 2), 3.6))
    width = 0.8 / max(m, 1)
    x = np.arange(n)
    for j, cond in enumerate(conditions):
        pos = x - 0.4 + width * (j + 0.5)
        vals = table[f"{cond} reproduced"].to_numpy(float)
        errs = np.array([_err(t, v) for t, v in zip(table[f"{cond} 95% CI"], vals, strict=True)]).T
        ax.bar(pos, vals, width, label=f"{cond} reproduced", yerr=errs, capsize=2, alpha=0.85)
        rep = table[f"{cond} reported"].to_numpy(float)
        ax.scatter(pos, rep, marker="_", s=200, color="black", zorder=3,
                   label="reported" if j == 0 else None)
    ax.set_xticks(x, [str(i) for i in table.index], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("rank-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=m + 1, loc="lower right")
    fig.tight_layout()
    return fig


def _err(text, value: float) -> tuple[float, float]:
    ci = _parse_ci(text)
    if ci is None:
        return (0.0, 0.0)
    return (max(value - ci[0], 0.0), max(ci[1] - value, 0.0))


def parameter_table(runs: dict[str, Run]) -> pd.DataFrame:
    """Fig. 2's data: each model's parameters at the paper's scale (CASIA-B, 74 classes) and in
    the run, with the run's reproduced mean rank-1 over NM/BG/CL."""
    from gaitlib.models import build, count_parameters

    lines = []
    for key, run in runs.items():
        paper_model = build(run.spec.model, **run.spec.option_dict)
        lines.append({"method": key, "params": count_parameters(paper_model),
                      "params in this run": run.parameters(),
                      "accuracy": run.result().mean_over_rows(), "source": "reproduced"})
    return pd.DataFrame(lines)


def with_reported_means(table: pd.DataFrame, artifact_id: str = "gaitmm-f2") -> pd.DataFrame:
    """:func:`parameter_table` plus one 'reported' line per method the paper gives a Table 1
    mean for (mean over NM/BG/CL), placed at gaitlib's parameter count of that method: the
    paper's figure prints no counts, so only its accuracies can stand beside ours."""
    paper = reported(artifact_id).dropna(subset=["Mean"])
    means = paper.groupby("method", sort=False)["Mean"].mean()
    keyed = {m.casefold(): v for m, v in means.items()}
    extra = [{"method": line["method"], "params": line["params"], "params in this run": np.nan,
              "accuracy": keyed[line["method"].casefold()], "source": "reported"}
             for _, line in table.iterrows() if line["method"].casefold() in keyed]
    return pd.concat([table, pd.DataFrame(extra)], ignore_index=True)
