"""GroundTruth: parsing, validation against the corpus and alignment (fast; no models)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topic_pipeline.errors import GroundTruthError
from topic_pipeline.inputs.ground_truth import GroundTruth

VALID = {"sports": [7, 3, 5], "politics": [2, 11], "weather": [20]}


def write(tmp_path: Path, content: str, name: str = "labels.json") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def parse_error(tmp_path: Path, content) -> tuple[str, Path]:
    path = write(tmp_path, content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(GroundTruthError) as info:
        GroundTruth.from_file(path)
    return str(info.value), path


# --- valid input ----------------------------------------------------------------------------------


def test_parse_valid_file(tmp_path: Path) -> None:
    truth = GroundTruth.from_file(write(tmp_path, json.dumps(VALID)))
    assert truth.cluster_of == {7: "sports", 3: "sports", 5: "sports", 2: "politics", 11: "politics", 20: "weather"}
    assert truth.n_clusters == 3


def test_to_mapping_is_sorted_and_roundtrips(tmp_path: Path) -> None:
    truth = GroundTruth.from_file(write(tmp_path, json.dumps(VALID)))
    mapping = truth.to_mapping()
    assert mapping == {"politics": [2, 11], "sports": [3, 5, 7], "weather": [20]}
    assert list(mapping) == ["politics", "sports", "weather"]
    again = GroundTruth.from_json_text(json.dumps(mapping))
    assert again == truth
    assert again.to_mapping() == mapping


def test_numeric_cluster_names_are_strings() -> None:
    truth = GroundTruth.from_json_text('{"10": [1, 2], "2": [3]}')
    assert truth.cluster_of == {1: "10", 2: "10", 3: "2"}
    assert list(truth.to_mapping()) == ["10", "2"]


def test_content_hash_is_stable_and_order_independent() -> None:
    a = GroundTruth.from_mapping(VALID)
    shuffled = {"weather": [20], "politics": [11, 2], "sports": [5, 7, 3]}
    b = GroundTruth.from_json_text(json.dumps(shuffled))
    assert a.content_hash == b.content_hash
    assert re.fullmatch(r"[0-9a-f]{16}", a.content_hash)
    # Derived from the canonical mapping only (no salted hash()), so it is the same in every process.
    canonical = json.dumps({"politics": [2, 11], "sports": [3, 5, 7], "weather": [20]}, sort_keys=True)
    assert a.content_hash == hashlib.sha256(canonical.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    "changed",
    [
        {"sports": [7, 3, 5], "politics": [2, 11], "weather": [21]},  # a different id
        {"sports": [7, 3], "politics": [2, 11, 5], "weather": [20]},  # an id moved to another cluster
        {"sports": [7, 3, 5], "politics": [2, 11], "climate": [20]},  # a cluster renamed
        {"sports": [7, 3, 5], "politics": [2, 11]},  # a cluster removed
    ],
)
def test_content_hash_changes_with_content(changed: dict) -> None:
    assert GroundTruth.from_mapping(changed).content_hash != GroundTruth.from_mapping(VALID).content_hash


def test_a_superset_corpus_finds_every_label() -> None:
    truth = GroundTruth.from_mapping(VALID)
    for corpus in (range(0, 30), np.array(sorted(truth.cluster_of) + [29], dtype=np.int64)):
        found, coverage = truth.found_in(corpus, 1.0)
        assert found == truth and coverage.missing == () and coverage.found_share == 1.0


# --- errors ---------------------------------------------------------------------------------------


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    message, path = parse_error(tmp_path, '{\n  "a": [1, 2],\n  "b": [3 4]\n}\n')
    assert str(path) in message
    assert "not valid JSON" in message
    assert "line 3" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(GroundTruthError, match="does not exist") as info:
        GroundTruth.from_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", ["[[1, 2], [3]]", "42", '"labels"', "null"])
def test_not_an_object(tmp_path: Path, content: str) -> None:
    message, path = parse_error(tmp_path, content)
    assert str(path) in message
    assert "expected a JSON object" in message


@pytest.mark.parametrize("content", [{}, {"only": [1, 2, 3]}])
def test_fewer_than_two_clusters(tmp_path: Path, content: dict) -> None:
    message, path = parse_error(tmp_path, content)
    assert str(path) in message
    assert "at least 2 clusters" in message
    assert f"got {len(content)}" in message


@pytest.mark.parametrize("value", [5, "1,2", {"ids": [1]}, None])
def test_cluster_that_is_not_a_list(tmp_path: Path, value) -> None:
    message, path = parse_error(tmp_path, {"a": [1], "bad cluster": value})
    assert str(path) in message
    assert "cluster 'bad cluster' must be a list" in message


def test_empty_cluster(tmp_path: Path) -> None:
    message, path = parse_error(tmp_path, {"a": [1], "hollow": []})
    assert str(path) in message
    assert "cluster 'hollow' is empty" in message


@pytest.mark.parametrize(("bad", "shown"), [("5", '"5"'), (1.5, "1.5"), (True, "true"), (None, "null"), ([3], "[3]")])
def test_non_integer_ids(tmp_path: Path, bad, shown: str) -> None:
    message, path = parse_error(tmp_path, {"a": [1, 2], "b": [3, bad]})
    assert str(path) in message
    assert "cluster 'b'" in message
    assert f"holds {shown};" in message
    assert "integer" in message


def test_id_in_two_clusters_names_id_and_both_clusters(tmp_path: Path) -> None:
    message, path = parse_error(tmp_path, {"alpha": [1, 42], "beta": [3], "gamma": [42, 9]})
    assert str(path) in message
    assert "text id 42" in message
    assert "'alpha'" in message and "'gamma'" in message
    assert "'beta'" not in message


def test_id_listed_twice_in_one_cluster(tmp_path: Path) -> None:
    message, path = parse_error(tmp_path, {"alpha": [1], "beta": [3, 8, 3]})
    assert str(path) in message
    assert "text id 3 is listed twice" in message


def test_ids_not_in_corpus_are_listed() -> None:
    truth = GroundTruth.from_mapping({"a": [1, 2, 900], "b": [3, 901, 5]})
    with pytest.raises(GroundTruthError) as info:
        truth.found_in(np.arange(0, 10), 0.9, where="ground truth file 'labels.json'")
    message = str(info.value)
    assert "ground truth file 'labels.json'" in message
    assert "2 text id(s) are not in the export: 900, 901" in message
    assert "4 of 6 labelled ids found (66.7%), below the minimum of 90.0% (TOPIC_PIPELINE_MIN_LABELS_FOUND)" in message


def test_ids_not_in_corpus_are_left_out_above_the_minimum_share() -> None:
    truth = GroundTruth.from_mapping({"a": [1, 2, 900], "b": [3, 901, 5], "c": [902]})
    found, coverage = truth.found_in(np.arange(0, 10), 0.5)
    # The export's ids keep their clusters; a cluster with none of its ids in the export is dropped.
    assert found.to_mapping() == {"a": [1, 2], "b": [3, 5]}
    assert coverage.missing == (900, 901, 902) and coverage.lost_clusters == ("c",)
    assert (coverage.labelled, coverage.found, coverage.found_share) == (7, 4, 4 / 7)


def test_labels_left_with_one_cluster_are_refused() -> None:
    truth = GroundTruth.from_mapping({"a": [1, 2, 3], "b": [900]})
    with pytest.raises(
        GroundTruthError, match=r"only 1 cluster\(s\) keep text ids that are in the export.*Not in the export: 900"
    ):
        truth.found_in(np.arange(0, 10), 0.5)


def test_many_unknown_ids_are_summarised() -> None:
    truth = GroundTruth.from_mapping({"a": list(range(100, 120)), "b": [1]})
    with pytest.raises(GroundTruthError) as info:
        truth.found_in([1], 0.9)
    message = str(info.value)
    assert "20 text id(s)" in message
    assert "100, 101" in message
    assert "and 10 more" in message


# --- alignment ------------------------------------------------------------------------------------


def test_aligned_positions_and_classes_with_unlabelled_documents() -> None:
    truth = GroundTruth.from_mapping({"b-cluster": [30, 10], "a-cluster": [50]})
    # Corpus order as loaded (sorted ids); 20 and 40 are unlabelled, 60 too.
    corpus_ids = np.array([10, 20, 30, 40, 50, 60], dtype=np.int64)
    positions, classes = truth.aligned(corpus_ids)
    assert positions.tolist() == [0, 2, 4]
    # Classes are indices into the sorted cluster names: a-cluster -> 0, b-cluster -> 1.
    assert classes.tolist() == [1, 1, 0]
    assert positions.dtype == np.int64 and classes.dtype == np.int64
    assert corpus_ids[positions].tolist() == [10, 30, 50]


def test_aligned_follows_corpus_order() -> None:
    truth = GroundTruth.from_mapping({"x": [1, 2], "y": [3]})
    positions, classes = truth.aligned(np.array([3, 99, 2, 1]))
    assert positions.tolist() == [0, 2, 3]
    assert classes.tolist() == [1, 0, 0]


def test_aligned_with_no_labelled_documents_in_corpus() -> None:
    truth = GroundTruth.from_mapping({"x": [1], "y": [2]})
    positions, classes = truth.aligned(np.array([7, 8, 9], dtype=np.int64))
    assert positions.shape == (0,) and classes.shape == (0,)


def test_a_cluster_given_twice_is_an_error_not_a_silent_overwrite():
    with pytest.raises(GroundTruthError, match="'a' appears more than once"):
        GroundTruth.from_json_text('{"a": [1, 2], "b": [3], "a": [4]}')


# --- properties (hypothesis) ----------------------------------------------------------------------


@st.composite
def valid_labels(draw) -> dict[str, list[int]]:
    """2-6 non-empty clusters of distinct integer ids, in any order."""
    ids = draw(st.lists(st.integers(-(2**40), 2**40), min_size=2, max_size=40, unique=True))
    n_clusters = draw(st.integers(2, min(6, len(ids))))
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=n_clusters, max_size=n_clusters, unique=True))
    cuts = sorted(
        draw(st.lists(st.integers(1, len(ids) - 1), min_size=n_clusters - 1, max_size=n_clusters - 1, unique=True))
    )
    bounds = [0, *cuts, len(ids)]
    return {name: ids[start:end] for name, start, end in zip(names, bounds, bounds[1:])}


@settings(max_examples=150, deadline=None)
@given(valid_labels(), st.randoms(use_true_random=False))
def test_property_valid_labels_round_trip_and_hash_ignores_order(raw, random) -> None:
    labels = GroundTruth.from_json_text(json.dumps(raw))
    assert labels.n_clusters == len(raw)
    assert labels.to_mapping() == {name: sorted(ids) for name, ids in sorted(raw.items())}
    shuffled = {name: random.sample(ids, len(ids)) for name, ids in random.sample(list(raw.items()), len(raw))}
    assert GroundTruth.from_mapping(shuffled).content_hash == labels.content_hash
    # Alignment: every labelled id present in the corpus gets one position and its cluster's class.
    corpus_ids = np.asarray(sorted({i for ids in raw.values() for i in ids} | {2**41}), dtype=np.int64)
    positions, classes = labels.aligned(corpus_ids)
    assert len(positions) == len(labels.cluster_of) and 2**41 not in corpus_ids[positions]
    names = sorted(raw)
    assert [names[c] for c in classes] == [labels.cluster_of[int(corpus_ids[p])] for p in positions]


@settings(max_examples=150, deadline=None)
@given(valid_labels(), st.sampled_from(["shared id", "empty cluster", "not an int", "one cluster"]), st.data())
def test_property_each_defect_is_reported_by_name(raw, defect, data) -> None:
    names = sorted(raw)
    broken = {name: list(ids) for name, ids in raw.items()}
    if defect == "shared id":
        shared = broken[names[0]][0]
        broken[names[1]].append(shared)
        expected = f"text id {shared} is listed in clusters"
    elif defect == "empty cluster":
        broken[names[-1]] = []
        expected = f"cluster '{names[-1]}' is empty"
    elif defect == "not an int":
        bad = data.draw(st.sampled_from(["7", 1.5, None, True, [3]]))
        broken[names[0]].append(bad)
        expected = f"cluster '{names[0]}' holds {json.dumps(bad)}; expected integer text ids"
    else:
        broken = {names[0]: broken[names[0]]}
        expected = "needs at least 2 clusters to score against, got 1"
    with pytest.raises(GroundTruthError) as info:
        GroundTruth.from_json_text(json.dumps(broken))
    assert expected in str(info.value)


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=60)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
        max_leaves=12,
    ).map(json.dumps)
)
def test_property_any_text_parses_or_gets_a_ground_truth_error(text) -> None:
    """Whatever the file holds, the user gets labels or a GroundTruthError, never a crash."""
    with contextlib.suppress(GroundTruthError):
        GroundTruth.from_json_text(text)


@settings(max_examples=100, deadline=None)
@given(valid_labels(), st.sets(st.integers(-(2**40), 2**40), max_size=30))
def test_property_validation_lists_exactly_the_unknown_ids(raw, corpus) -> None:
    labels = GroundTruth.from_mapping(raw)
    unknown = sorted(set(labels.cluster_of) - corpus)
    if not unknown:
        assert labels.found_in(corpus, 1.0)[0] == labels
        return
    with pytest.raises(
        GroundTruthError, match=rf"{len(unknown)} text id\(s\) are not in the export: {re.escape(str(unknown[0]))}"
    ):
        labels.found_in(corpus, 1.0)


# --- a byte-order mark ----------------------------------------------------------------------------


def test_a_byte_order_mark_changes_nothing(tmp_path: Path) -> None:
    text = json.dumps(VALID, indent=2)
    plain = GroundTruth.from_file(write(tmp_path, text, "plain.json"))
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + text.encode())
    with_bom = GroundTruth.from_file(tmp_path / "bom.json")
    assert with_bom == plain and with_bom.content_hash == plain.content_hash
    # Errors too: the same message, line and column, and a bad byte's offset counted in the file.
    broken = '{\n  "a": [1, 2],\n  "b": [3 4]\n}\n'
    plain_error, _ = parse_error(tmp_path, broken)
    (tmp_path / "labels.json").write_bytes(b"\xef\xbb\xbf" + broken.encode())
    with pytest.raises(GroundTruthError) as info:
        GroundTruth.from_file(tmp_path / "labels.json")
    assert str(info.value) == plain_error
    (tmp_path / "labels.json").write_bytes(b"\xef\xbb\xbf{\x80}")
    with pytest.raises(GroundTruthError, match=r"is not UTF-8 text \(byte 4 is 0x80\)"):
        GroundTruth.from_file(tmp_path / "labels.json")
