"""Rank the trials of the current grid."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_MISSING, STATUS_OK, TrialResult
from topic_pipeline.domain.trials import GRID_KEYS, TrialParams, complete_params, n_gram_max_changes_labels
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.scoring.holdout import ALL_PREFIX, HELDOUT_PREFIX, part_names
from topic_pipeline.scoring.metrics import METRIC_NAMES, REPORTED_NAMES
from topic_pipeline.storage.files import read_json, write_json

if TYPE_CHECKING:
    from topic_pipeline.storage.paths import DataPaths


@dataclasses.dataclass(frozen=True)
class TrialOutcomes:
    """How a leaderboard's trials ended: the counts, and the error most of the failed ones share."""

    scored: int
    failed: int
    missing: int
    common_error: str  # first line of the most frequent error ("" when none failed)
    sharing: int  # how many failed trials ended with it

    @property
    def all_failed(self) -> bool:
        return self.failed > 0 and self.scored == 0

    def failure_line(self) -> str:
        """One line saying why nothing is ranked, for a sweep in which every trial that ran failed."""
        return (
            f"all {self.failed} trials that ran failed; {self.sharing} of them with: {self.common_error}"
            if self.failed
            else "no trial has a result yet"
        )


def first_line(text: object, limit: int = 300) -> str:
    """An error's first line, short enough to read in a message."""
    lines = str(text).strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def trial_outcomes(frame: pd.DataFrame) -> TrialOutcomes:
    counts = frame["status"].value_counts()
    errors = frame.loc[frame["status"] == STATUS_FAILED, "error"].dropna().map(first_line).value_counts()
    return TrialOutcomes(
        scored=int(counts.get(STATUS_OK, 0)),
        failed=int(counts.get(STATUS_FAILED, 0)),
        missing=int(counts.get(STATUS_MISSING, 0)),
        common_error=str(errors.index[0]) if len(errors) else "",
        sharing=int(errors.iloc[0]) if len(errors) else 0,
    )


def tie_break_order(primary: str) -> list[str]:
    if primary not in METRIC_NAMES:
        raise ValueError(f"unknown ranking metric '{primary}'; choose one of {', '.join(METRIC_NAMES)}")
    return [primary] + [name for name in METRIC_NAMES if name != primary]


# Every metric a row carries: the selection part's (which rank), then the held-out part's and all labelled documents'.
PART_COLUMNS = REPORTED_NAMES + part_names(HELDOUT_PREFIX) + part_names(ALL_PREFIX)

# Spread of the main metric across UMAP seeds above which a configuration is flagged unstable.
UNSTABLE_STD = 0.05
# The value a row is ranked by: its configuration's seed mean (mean minus one std when ranking by
# stability) for a seed-averaged configuration, the trial's own score otherwise.
RANKING_VALUE = "ranking_value"


def build_leaderboard(
    trials: Mapping[str, Mapping[str, Any]],
    results: Mapping[str, TrialResult | None],
    rank_by: str = "ari",
    rounds: Mapping[str, int] | None = None,
    rank_by_stability: bool = False,
) -> pd.DataFrame:
    """One row per trial of the grid: scored trials ranked first, then failed, then missing.

    ``trials`` maps every key of the current grid to its params; ``results`` holds the current
    result per key (None when the trial has not run on these inputs); ``rounds`` the search round
    that proposed each key, if a search did.

    Trials that replicate one configuration with other UMAP seeds share a ``configuration``; each of
    its rows carries the seeds' count, mean and standard deviation of ``rank_by`` and the
    stability-aware score mean minus one standard deviation, and is flagged ``seed_averaged``.

    Seed-averaged configurations rank first, by their seeds' mean (with ``rank_by_stability``, mean
    minus one std), each configuration's trials together, best first: a configuration is not chosen
    for one lucky seed, and the first row (what an export takes by default) is the recommended
    configuration's best trial. Single-seed configurations follow, ranked by their score: the search
    re-runs its best configurations with more seeds, so a single-seed one scored below them at the
    base seed, and its score carries the luck the seeds' mean averages out. Without seed-averaged
    configurations the ranking is by score alone. Only the selection part's metrics (the plain
    names) are read: never ``heldout_`` or ``all_`` ones.
    """
    order = tie_break_order(rank_by)
    rows = []
    for key, params in trials.items():
        result = results.get(key)
        row: dict[str, Any] = {
            "trial": key,
            "configuration": TrialParams.from_dict(params).configuration.key,
            "round": (rounds or {}).get(key),
            "status": result.status if result else STATUS_MISSING,
        }
        row.update({name: (result.metrics.get(name) if result else None) for name in PART_COLUMNS})
        row["error"] = result.error if result else None
        row["mlflow_run_id"] = result.tags.get("mlflow_run_id") if result else None
        # Every grid key, those a stored trial omits at their defaults (outlier reduction) included.
        full = complete_params(params)
        row.update({name: full[name] for name in GRID_KEYS})
        row["seed_replicate"] = params.get("seed_replicate", 0)
        rows.append(row)
    stability = [
        f"{rank_by}_seeds",
        f"{rank_by}_mean",
        f"{rank_by}_std",
        f"{rank_by}_stable",
        "unstable",
        "seed_averaged",
    ]
    columns = [
        "rank",
        "trial",
        "status",
        RANKING_VALUE,
        *REPORTED_NAMES,
        *stability,
        "configuration",
        "round",
        "seed_replicate",
        *GRID_KEYS,
        *PART_COLUMNS[len(REPORTED_NAMES) :],
        "error",
        "mlflow_run_id",
    ]
    frame = pd.DataFrame(rows, columns=[c for c in columns if c not in ("rank", *stability)])
    frame["round"] = frame["round"].astype("Int64")
    frame["seed_replicate"] = frame["seed_replicate"].fillna(0).astype(int)
    seeds = frame[frame["status"] == STATUS_OK].groupby("configuration")[rank_by].agg(["count", "mean", "std"])
    frame[f"{rank_by}_seeds"] = frame["configuration"].map(seeds["count"]).fillna(0).astype(int)
    frame[f"{rank_by}_mean"] = frame["configuration"].map(seeds["mean"])
    # One seed tells nothing about the spread: std (and the stable score) stay empty.
    frame[f"{rank_by}_std"] = frame["configuration"].map(seeds["std"])
    frame[f"{rank_by}_stable"] = frame[f"{rank_by}_mean"] - frame[f"{rank_by}_std"]
    frame["unstable"] = frame[f"{rank_by}_std"] > UNSTABLE_STD
    frame["seed_averaged"] = frame[f"{rank_by}_seeds"] > 1
    averaged = f"{rank_by}_stable" if rank_by_stability else f"{rank_by}_mean"
    frame[RANKING_VALUE] = frame[averaged].where(frame["seed_averaged"], frame[rank_by]).astype(float)
    frame = frame[[c for c in columns if c != "rank"]]
    sort_keys = ["seed_averaged", averaged] + order
    scored = frame[frame["status"] == STATUS_OK].sort_values(
        sort_keys + ["trial"], ascending=[False] * len(sort_keys) + [True], kind="mergesort", na_position="last"
    )
    unscored = frame[frame["status"] != STATUS_OK].sort_values(["status", "trial"], kind="mergesort")
    ranked = pd.concat([scored, unscored], ignore_index=True)
    ranked.insert(0, "rank", [i + 1 for i in range(len(scored))] + [None] * len(unscored))
    ranked["rank"] = ranked["rank"].astype("Int64")
    return ranked


def configurations(frame: pd.DataFrame, rank_by: str) -> pd.DataFrame:
    """The scored part of ``frame`` (as ``build_leaderboard`` ranks it) folded to one row per configuration,
    in rank order: its place (``rank``), the trial that represents it (its best seed, the row an export
    takes), what it is ranked by, its seeds' count, mean, spread and range of ``rank_by``, the means of the
    other reported metrics, and the held-out estimate with its interval where ``add_intervals`` gave one.

    A configuration run with five UMAP seeds is one row here, not five: the ranking is of configurations.
    """
    scored = frame[frame["status"] == STATUS_OK]
    # A CSV written by hand or by an earlier version may lack columns: each trial is then its own configuration.
    if "configuration" not in scored:
        scored = scored.assign(configuration=scored["trial"])
    if RANKING_VALUE not in scored:
        scored = scored.assign(**{RANKING_VALUE: scored[rank_by]})
    metrics = [name for name in REPORTED_NAMES if name in scored]
    extra = [c for c in ("estimate", "ci_low", "ci_high", "versus_recommended") if c in scored]
    kept = [name for name in (f"heldout_{rank_by}", *GRID_KEYS) if name in scored]
    if scored.empty:
        return pd.DataFrame(columns=["rank", "configuration", "trial", RANKING_VALUE, "seeds", *metrics, "std", *extra])
    grouped = scored.groupby("configuration", sort=False)
    folded = grouped[metrics].mean()
    spread = grouped[rank_by].agg(["count", "std", "min", "max"])
    first = grouped.first()
    table = pd.DataFrame(
        {
            "configuration": folded.index,
            "trial": first["trial"].to_numpy(),
            RANKING_VALUE: first[RANKING_VALUE].to_numpy(),
            "seeds": spread["count"].astype(int).to_numpy(),
            **{name: folded[name].to_numpy() for name in metrics},
            "std": spread["std"].to_numpy(),
            "min": spread["min"].to_numpy(),
            "max": spread["max"].to_numpy(),
            # The held-out score is a mean over the seeds like the others; the rest is the configuration's own.
            **{
                name: (grouped[name].mean() if name.startswith("heldout_") else first[name]).to_numpy() for name in kept
            },
            **{name: first[name].to_numpy() for name in extra},
            "unstable": (spread["std"] > UNSTABLE_STD).to_numpy(),
        }
    )
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def _cell(value: Any, digits: int = 3) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def to_markdown(
    frame: pd.DataFrame,
    rank_by: str = "ari",
    limit: int = 20,
    metrics: Iterable[str] = ("ami", "nmi", "f1_macro"),
    link: Callable[[str], str] | None = None,
) -> str:
    """The leaderboard in Markdown, one row per configuration (``configurations``): the top ``limit``, each
    with what it is ranked by, its seeds' mean, spread and range of ``rank_by``, the held-out estimate and
    interval where there is one, and the means of ``metrics``; then the failed and missing trials.

    ``link`` maps a trial key to a URL: each configuration's trial is then a link (to its partition in
    the Dagster UI, say). Shown on the sweep's MLflow run (which has no table view) and in the UI summary.
    """
    table = configurations(frame, rank_by)
    others = [name for name in metrics if name != rank_by]
    with_round = "round" in frame and frame["round"].notna().any()
    rounds = frame.drop_duplicates("configuration").set_index("configuration")["round"] if with_round else None
    heldout = f"heldout_{rank_by}" in frame and frame[f"heldout_{rank_by}"].notna().any()
    header = [
        "rank",
        "configuration (best seed)",
        *(["round"] if with_round else []),
        "ranked by",
        "seeds",
        f"{rank_by} mean",
        "std",
        "min - max",
        # Without a held-out part the leaderboard's estimate is over all labelled documents: in-sample.
        f"{'held-out' if heldout else 'in-sample'} estimate [95 % CI]",
        *others,
        "outlier_fraction",
        "topic_count",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.head(limit).iterrows():
        trial = str(row["trial"])
        name = f"[`{trial}`]({link(trial)})" if link else f"`{trial}`"
        estimate = (
            f"{_cell(row['estimate'])} [{_cell(row['ci_low'])}, {_cell(row['ci_high'])}]"
            if "estimate" in row and pd.notna(row["estimate"])
            else ""
        )
        spread = f"{_cell(row['min'])} - {_cell(row['max'])}" if row["seeds"] > 1 else ""
        flag = " **unstable**" if row["unstable"] else ""
        cells = [
            str(row["rank"]),
            name,
            *(
                [str(rounds[row["configuration"]]) if pd.notna(rounds[row["configuration"]]) else ""]
                if with_round
                else []
            ),
            _cell(row[RANKING_VALUE]),
            str(row["seeds"]),
            _cell(row[rank_by]),
            _cell(row["std"]) + flag,
            spread,
            estimate,
            *(_cell(row[name]) for name in others),
            _cell(row["outlier_fraction"]),
            "" if pd.isna(row["topic_count"]) else f"{row['topic_count']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    hidden = len(table) - min(limit, len(table))
    if hidden > 0:
        lines.append(f"\n{hidden} more configuration(s) in the CSV.")
    unscored = frame[frame["status"] != STATUS_OK]
    if not unscored.empty:
        lines += ["", "| trial | status | error |", "|---|---|---|"]
        for _, row in unscored.iterrows():
            error = first_line(row["error"], 120).replace("|", "\\|") if isinstance(row["error"], str) else ""
            lines.append(f"| `{row['trial']}` | {row['status']} | {error} |")
    return "\n".join(lines)


# --- what is wrong with the top of a leaderboard ----------------------------------------------------
#
# A leaderboard always has a first row; these say when that row is not a winner to trust. Two kinds:
# the trial itself is degenerate (no topic, or no labelled document in any topic), or the labelled
# sample cannot separate trials. The second has two exact causes: no class holds two documents (the
# pair-counting and information metrics then only reward keeping labelled documents apart), or every
# scored trial gets the same ranking score. A tie among only the leaders is normal (trials that
# cluster the labelled documents identically score identically) and is not reported.

WARNINGS_FILE = "warnings.json"
# Different trials give bit-identical scores when they split the labelled documents alike; this only
# absorbs float noise from computing the same value along another path.
TIE_TOLERANCE = 1e-12
_FEWER_OUTLIERS = "lower hdbscan_min_cluster_size or hdbscan_min_samples in the grid and rerun the sweep"


def _number(metrics: Mapping[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None or pd.isna(value) else float(value)


def has_no_topic(metrics: Mapping[str, Any]) -> bool:
    """HDBSCAN left every document of the corpus an outlier: nothing to show or export."""
    return _number(metrics, "topic_count") == 0


def trial_problem(metrics: Mapping[str, Any], rank_by: str) -> str | None:
    """What makes one trial's result degenerate, as the end of a sentence that starts with its key."""
    if has_no_topic(metrics):
        return (
            f"found no topic: HDBSCAN left every document an outlier (-1), so its {rank_by} measures no "
            f"clustering and a model of it has no topics; {_FEWER_OUTLIERS}"
        )
    if _number(metrics, "outlier_fraction") == 1.0:
        return (
            f"left every labelled document an outlier (-1): none of its topics holds a labelled document, so its "
            f"{rank_by} says nothing about how it groups them; {_FEWER_OUTLIERS}, or label documents from its topics"
        )
    return None


def best_sound_trial(frame: pd.DataFrame, rank_by: str) -> tuple[str, int] | None:
    """The best-ranked scored trial without a degenerate result: (key, rank), or None."""
    scored = frame[frame["status"] == STATUS_OK]
    for _, row in scored.iterrows():
        if trial_problem(row, rank_by) is None:
            return str(row["trial"]), int(row["rank"])
    return None


def sample_warnings(
    frame: pd.DataFrame, rank_by: str, labels: GroundTruth, where: str = "the ground truth", trial: str | None = None
) -> list[str]:
    """Why the labelled sample cannot rank the scored trials of ``frame``, naming ``trial`` (default: the first)."""
    scored = frame[frame["status"] == STATUS_OK]
    if scored.empty:
        return []
    trial = trial or str(scored.iloc[0]["trial"])
    sizes = Counter(labels.cluster_of.values())
    if max(sizes.values()) < 2:
        return [
            f"{where} cannot rank trials: each of its {len(sizes)} classes holds one document, so no two labelled "
            f"documents belong together and {rank_by} only measures whether a trial keeps them apart, not whether it "
            f"groups documents that belong together; the score of trial '{trial}' says nothing about its topics. "
            f"Label at least two documents per class, better several, and rerun the sweep"
        ]
    values = scored[rank_by].astype(float)
    # Trials differing only in what changes topic words share one clustering: their tie says nothing.
    clusterings = scored[[*GRID_KEYS, "seed_replicate"]].astype(str)
    clusterings["n_gram_max"] = clusterings["n_gram_max"].where(
        scored["outlier_reduction"].map(n_gram_max_changes_labels), ""
    )
    if len(clusterings.drop_duplicates()) > 1 and values.max() - values.min() <= TIE_TOLERANCE:
        return [
            f"all {len(scored)} scored trials score {rank_by} {values.iloc[0]:.3f}, trial '{trial}' among them: the "
            f"labelled sample in {where} does not tell them apart, so their order comes only from the tie-breaking "
            f"metrics. Label more documents, several per class, from the topics these settings split differently, "
            f"and rerun the sweep"
        ]
    return []


def leaderboard_warnings(
    frame: pd.DataFrame, rank_by: str, labels: GroundTruth, where: str = "the ground truth"
) -> list[str]:
    """What is wrong with the top of ``frame`` (as built by ``build_leaderboard``), in words a user acts on.

    Empty when the first trial is a winner to trust. ``where`` names the labelled sample's file.
    """
    scored = frame[frame["status"] == STATUS_OK]
    if scored.empty:
        return []
    first = scored.iloc[0]
    warnings = []
    problem = trial_problem(first, rank_by)
    if problem:
        message = f"trial '{first['trial']}' ranks first but {problem}"
        sound = best_sound_trial(frame, rank_by)
        if sound:
            message += (
                f". The best trial whose topics hold labelled documents is '{sound[0]}' (rank {sound[1]}): "
                f"export it with --trial {sound[0]}"
            )
        warnings.append(message)
    return warnings + sample_warnings(frame, rank_by, labels, where)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_leaderboard_warnings(paths: DataPaths, warnings: list[str], trust: Mapping[str, Any] | None = None) -> None:
    """Store ``warnings`` and the trust summary (``confidence.trust_summary``) beside the leaderboard CSV
    (written first), tied to that CSV's content."""
    csv_path = paths.leaderboard / "leaderboard.csv"
    write_json(
        paths.leaderboard / WARNINGS_FILE,
        {
            "leaderboard_sha256": _file_digest(csv_path),
            "warnings": list(warnings),
            "trust": dict(trust) if trust else None,
        },
    )


def read_leaderboard_trust(paths: DataPaths) -> dict[str, Any] | None:
    """The trust summary of the current leaderboard CSV, or None (none recorded for this CSV)."""
    stored = _read_current(paths)
    trust = stored.get("trust") if stored else None
    return trust if isinstance(trust, dict) else None


def _read_current(paths: DataPaths) -> dict[str, Any] | None:
    try:
        stored = read_json(paths.leaderboard / WARNINGS_FILE)
        current = _file_digest(paths.leaderboard / "leaderboard.csv")
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("leaderboard_sha256") != current:
        return None
    return stored


def read_leaderboard_warnings(paths: DataPaths) -> list[str]:
    """The warnings of the current leaderboard CSV; empty when there are none or none recorded for this CSV.

    Warnings stored for another version of the CSV (a write interrupted between the two files) are
    not shown: they would describe another leaderboard.
    """
    stored = _read_current(paths)
    if stored is None or not isinstance(stored.get("warnings"), list):
        return []
    return [str(warning) for warning in stored["warnings"]]
