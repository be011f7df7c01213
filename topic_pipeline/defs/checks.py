"""Asset checks: what a user must see as not green, shown beside the asset it concerns.

The ground truth's check reads the asset's stored value, so the UI can run it again on its own. The
leaderboard's checks are evaluated by the leaderboard asset itself (``leaderboard_check_specs``), from
the frame it has just built: as a step of their own they would load it again and, in a command line's
sweep, pay a process of their own. A job that selects an asset runs its checks too, so the command
line's runs and the UI's evaluate them alike. None of these blocks: a weak labelled sample or some
failed trials still leave a leaderboard worth reading; the checks say how far to trust it. (The
embeddings' check, in ``assets/embeddings.py``, blocks.)
"""

from collections import Counter

import dagster as dg
import pandas as pd

from topic_pipeline.defs.assets.inputs import ground_truth
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.domain.results import STATUS_OK
from topic_pipeline.errors import listing
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.scoring.leaderboard import leaderboard_warnings, trial_outcomes

# Below this, every labelled document takes part in so large a share of the pairs that each score
# counts that one document's label can reorder the leaders.
MIN_LABELLED_DOCUMENTS = 20
# A few failed trials are combinations this corpus cannot run; past this share the failures probably
# have a common cause (memory, the installation), and the ranking has holes where the best trial may be.
FAILED_SHARE_WARN = 0.1


@dg.asset_check(
    asset=ground_truth,
    description=(
        "Whether the labelled sample can rank trials at all. Fails (error) when no two labelled documents "
        "share a class: every score then only measures whether a trial keeps documents apart. Warns when "
        f"some classes hold a single labelled document, or when fewer than {MIN_LABELLED_DOCUMENTS} "
        "documents are labelled: the order of the leaders then rests on very few labels."
    ),
)
def labels_can_rank_trials(ground_truth: dict) -> dg.AssetCheckResult:
    labels = GroundTruth.from_mapping(ground_truth)
    sizes = Counter(labels.cluster_of.values())
    single = sorted(name for name, size in sizes.items() if size == 1)
    labelled = len(labels.cluster_of)
    metadata = {
        "labelled_documents": labelled,
        "classes": len(sizes),
        "smallest_class": min(sizes.values()),
        "single_document_classes": len(single),
    }
    if max(sizes.values()) < 2:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description=(
                f"Each of the {len(sizes)} classes holds one labelled document: no two documents belong together, "
                "so every score only measures whether a trial keeps them apart, not whether it groups what "
                "belongs together. Label at least two documents per class, better several, and rerun the sweep."
            ),
        )
    problems = []
    if single:
        problems.append(
            f"{len(single)} of {len(sizes)} classes hold a single labelled document ({listing(single)}): a trial "
            "can only keep such a document apart, never group it with the documents it belongs with. Label more "
            "documents of these classes."
        )
    if labelled < MIN_LABELLED_DOCUMENTS:
        problems.append(
            f"Only {labelled} documents are labelled (fewer than {MIN_LABELLED_DOCUMENTS}): one label can decide "
            "the order of the leading trials. Label more documents."
        )
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=" ".join(problems) or f"{labelled} labelled documents in {len(sizes)} classes of two or more.",
    )


def _trials_succeeded(frame: pd.DataFrame) -> dg.AssetCheckResult:
    outcomes = trial_outcomes(frame)
    scored, failed, missing, common = outcomes.scored, outcomes.failed, outcomes.missing, outcomes.common_error
    ran = scored + failed
    share = failed / ran if ran else 0.0
    metadata = {
        "trials": len(frame),
        "scored": scored,
        "failed": failed,
        "missing": missing,
        "failed_share": round(share, 4),
    }
    if common:
        metadata["most_common_error"] = dg.MetadataValue.text(common)
    if not scored:
        return dg.AssetCheckResult(
            check_name="trials_succeeded",
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description=f"Nothing is ranked: {outcomes.failure_line()}. Each failed trial's error is in the "
            "leaderboard's 'error' column.",
        )
    problems = []
    if share > FAILED_SHARE_WARN:
        problems.append(
            f"{failed} of {ran} trials failed ({share:.0%}, more than {FAILED_SHARE_WARN:.0%})"
            + (f"; most often: {common}" if common else "")
            + ". The ranking leaves them out; each one's error is in the leaderboard's 'error' column."
        )
    if missing:
        problems.append(
            f"{missing} of {len(frame)} trials have no result on the current inputs: the ranking covers part of the "
            "sweep. The sweep sensor (or topic-pipeline sweep) runs them, then ranks again."
        )
    return dg.AssetCheckResult(
        check_name="trials_succeeded",
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=" ".join(problems) or f"{scored} of {len(frame)} trials scored, {failed} failed.",
    )


def _leader_is_sound(frame: pd.DataFrame, labels: GroundTruth, settings: PipelineSettings) -> dg.AssetCheckResult:
    if not (frame["status"] == STATUS_OK).any():
        return dg.AssetCheckResult(
            check_name="leader_is_sound",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="No trial is ranked, so there is no leader to judge (see trials_succeeded).",
        )
    warnings = leaderboard_warnings(
        frame, settings.rank_by, labels, where=f"ground truth file '{settings.ground_truth_file()}'"
    )
    leader = str(frame.loc[frame["status"] == STATUS_OK, "trial"].iloc[0])
    return dg.AssetCheckResult(
        check_name="leader_is_sound",
        passed=not warnings,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"leader": leader, "rank_by": settings.rank_by},
        description="\n".join(warnings) or f"Trial '{leader}' leads with topics that hold labelled documents.",
    )


def leaderboard_check_specs() -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "trials_succeeded",
            asset="leaderboard",
            description=(
                "Whether the sweep's trials produced results. Fails (error) when no trial is scored: all failed, "
                f"or none has run. Warns when more than {FAILED_SHARE_WARN:.0%} of the trials that ran failed, or "
                "when some trials of the current grid have no result yet (the leaderboard is incomplete)."
            ),
        ),
        dg.AssetCheckSpec(
            "leader_is_sound",
            asset="leaderboard",
            description=(
                "Whether the first trial is a winner to trust. Warns when it found no topic or left every labelled "
                "document an outlier (naming the best trial that did not), or when the labelled sample cannot tell "
                "the scored trials apart."
            ),
        ),
    ]


def leaderboard_check_results(
    frame: pd.DataFrame, labels: GroundTruth, settings: PipelineSettings
) -> list[dg.AssetCheckResult]:
    """The results of ``leaderboard_check_specs`` for a leaderboard ``frame``."""
    return [_trials_succeeded(frame), _leader_is_sound(frame, labels, settings)]
