"""The labelled sample: JSON ``{"<cluster id>": [text ids, ...]}``, validated against the corpus."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from topic_pipeline.errors import GroundTruthError, listing
from topic_pipeline.storage.files import DuplicateKeyError, read_user_text, reject_duplicate_keys

# The share of the labelled ids the export must hold; a smaller one refuses the labels.
MIN_FOUND_SHARE_SETTING = "TOPIC_PIPELINE_MIN_LABELS_FOUND"
DEFAULT_MIN_FOUND_SHARE = 0.9


def check_found_share(share: float) -> float:
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the minimum share of labelled ids found must be between 0 and 1, got {share}")
    return float(share)


@dataclasses.dataclass(frozen=True)
class LabelCoverage:
    """How much of a labelled sample an export holds."""

    labelled: int  # text ids in the file
    missing: tuple[int, ...]  # those the export lacks
    lost_clusters: tuple[str, ...]  # clusters none of whose ids the export holds

    @property
    def found(self) -> int:
        return self.labelled - len(self.missing)

    @property
    def found_share(self) -> float:
        return self.found / self.labelled if self.labelled else 0.0


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """Cluster id per labelled text id."""

    cluster_of: dict[int, str]

    @classmethod
    def from_mapping(cls, raw: Any, where: str = "ground truth") -> GroundTruth:
        if not isinstance(raw, dict):
            raise GroundTruthError(
                f'{where}: expected a JSON object {{"<cluster id>": [text ids, ...]}}, got {type(raw).__name__}'
            )
        if len(raw) < 2:
            raise GroundTruthError(f"{where}: needs at least 2 clusters to score against, got {len(raw)}")
        cluster_of: dict[int, str] = {}
        for cluster, ids in raw.items():
            if not isinstance(ids, list):
                raise GroundTruthError(
                    f"{where}: cluster '{cluster}' must be a list of integer text ids, got {json.dumps(ids)}"
                )
            if not ids:
                raise GroundTruthError(f"{where}: cluster '{cluster}' is empty; remove it or add its text ids")
            for text_id in ids:
                if isinstance(text_id, bool) or not isinstance(text_id, int):
                    raise GroundTruthError(
                        f"{where}: cluster '{cluster}' holds {json.dumps(text_id)}; expected integer text ids"
                    )
                if text_id in cluster_of:
                    other = cluster_of[text_id]
                    detail = "twice" if other == cluster else f"in clusters '{other}' and '{cluster}'"
                    raise GroundTruthError(
                        f"{where}: text id {text_id} is listed {detail}; each id belongs to one cluster"
                    )
                cluster_of[text_id] = str(cluster)
        return cls(cluster_of)

    @classmethod
    def from_json_text(cls, text: str, where: str = "ground truth") -> GroundTruth:
        try:
            raw = json.loads(text, object_pairs_hook=reject_duplicate_keys)
        except DuplicateKeyError as exc:
            raise GroundTruthError(
                f"{where}: key '{exc.key}' appears more than once; merge its values into one entry"
            ) from None
        except json.JSONDecodeError as exc:
            raise GroundTruthError(
                f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from None
        return cls.from_mapping(raw, where)

    @classmethod
    def from_file(cls, path: str | Path) -> GroundTruth:
        path = Path(path)
        return cls.from_json_text(
            read_user_text(path, "ground truth file", GroundTruthError), where=f"ground truth file '{path}'"
        )

    def found_in(
        self, corpus_ids: Iterable[int], min_found_share: float, where: str = "ground truth"
    ) -> tuple[GroundTruth, LabelCoverage]:
        """The labels of the text ids the export holds, and how many of the file's ids that is.

        Ids the export lacks are left out (an export window moves, texts get deleted) as long as at least
        ``min_found_share`` of the labelled ids are found; below that the file and the export probably do
        not belong together, and scores would measure the wrong thing.
        """
        check_found_share(min_found_share)
        known = set(int(i) for i in corpus_ids)
        missing = sorted(i for i in self.cluster_of if i not in known)
        kept = {text_id: cluster for text_id, cluster in self.cluster_of.items() if text_id in known}
        lost = sorted(set(self.cluster_of.values()) - set(kept.values()))
        coverage = LabelCoverage(len(self.cluster_of), tuple(missing), tuple(lost))
        if coverage.found_share < min_found_share:
            raise GroundTruthError(
                f"{where}: {len(missing)} text id(s) are not in the export: {listing(missing)}. {coverage.found} of "
                f"{coverage.labelled} labelled ids found ({coverage.found_share:.1%}), below the minimum of "
                f"{min_found_share:.1%} ({MIN_FOUND_SHARE_SETTING}): check that the file's ids are the export's id column"
            )
        if len(set(kept.values())) < 2:
            raise GroundTruthError(
                f"{where}: only {len(set(kept.values()))} cluster(s) keep text ids that are in the export; at least 2 "
                f"are needed to score against. Not in the export: {listing(missing)}"
            )
        return GroundTruth(kept), coverage

    def to_mapping(self) -> dict[str, list[int]]:
        clusters: dict[str, list[int]] = {}
        for text_id, cluster in self.cluster_of.items():
            clusters.setdefault(cluster, []).append(text_id)
        return {cluster: sorted(ids) for cluster, ids in sorted(clusters.items())}

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_mapping(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def n_clusters(self) -> int:
        return len(set(self.cluster_of.values()))

    def aligned(self, corpus_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in the corpus of the labelled documents and their integer class labels."""
        classes = {name: index for index, name in enumerate(sorted(set(self.cluster_of.values())))}
        positions = [pos for pos, text_id in enumerate(corpus_ids.tolist()) if text_id in self.cluster_of]
        labels = [classes[self.cluster_of[int(corpus_ids[pos])]] for pos in positions]
        return np.asarray(positions, dtype=np.int64), np.asarray(labels, dtype=np.int64)
