"""ParamGrid: parsing, validation, expansion order and stable trial keys (fast; no models)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topic_pipeline.domain.trials import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_GRID,
    GRID_KEYS,
    OUTLIER_STRATEGIES,
    EmbeddingSet,
    TrialParams,
    model_slug,
)
from topic_pipeline.errors import GridError
from topic_pipeline.inputs.grid import ParamGrid

KEY_CHARS = re.compile(r"^[a-z0-9._-]+$")
FORBIDDEN_IN_KEY = ("...", "|", ",", "[", "]", "/")

DEFAULT_KEY = "nn15_nc5_md0__all-minilm-l6-v2__mcs10_eps0"


def write_grid(tmp_path: Path, content: str, name: str = "grid.json") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def assert_key_shape(key: str) -> None:
    assert KEY_CHARS.match(key), key
    for bad in FORBIDDEN_IN_KEY:
        assert bad not in key, (bad, key)


# --- defaults and expansion ---------------------------------------------------------------------


def test_empty_grid_is_bertopic_defaults() -> None:
    grid = ParamGrid.from_mapping({})
    assert grid.to_dict() == DEFAULT_GRID
    (trial,) = grid.trials()
    assert trial.umap_n_neighbors == 15
    assert trial.umap_n_components == 5
    assert trial.umap_min_dist == 0.0
    assert trial.hdbscan_min_cluster_size == 10
    assert trial.hdbscan_min_samples is None
    assert trial.hdbscan_cluster_selection_epsilon == 0.0
    assert trial.nr_topics == "none"
    assert trial.bertopic_nr_topics is None
    assert trial.n_gram_max == 1
    assert trial.embedding_model == DEFAULT_EMBEDDING_MODEL
    assert trial.remove_stopwords is False
    assert trial.key == DEFAULT_KEY


def test_omitted_keys_take_defaults_given_keys_replace_them() -> None:
    grid = ParamGrid.from_mapping({"umap_n_neighbors": [5, 30], "n_gram_max": [2]})
    values = grid.to_dict()
    assert values["umap_n_neighbors"] == [5, 30]
    assert values["n_gram_max"] == [2]
    for key in GRID_KEYS:
        if key not in ("umap_n_neighbors", "n_gram_max"):
            assert values[key] == DEFAULT_GRID[key], key
    # The defaults are copied, not shared: mutating a grid's lists must not leak into DEFAULT_GRID.
    values["umap_min_dist"].append(0.5)
    assert DEFAULT_GRID["umap_min_dist"] == [0.0]
    assert ParamGrid.from_mapping({}).values["umap_min_dist"] == [0.0]


def test_expansion_count_is_product_of_list_lengths() -> None:
    raw = {
        "umap_n_neighbors": [5, 10, 15],
        "umap_min_dist": [0.0, 0.1],
        "hdbscan_min_cluster_size": [5, 10, 20, 40],
        "remove_stopwords": [False, True],
        "nr_topics": ["none", "auto"],
    }
    trials = ParamGrid.from_mapping(raw).trials()
    assert len(trials) == 3 * 2 * 4 * 2 * 2
    assert len(set(trials)) == len(trials)
    assert len({t.key for t in trials}) == len(trials)
    # Every combination appears.
    combos = {
        (t.umap_n_neighbors, t.umap_min_dist, t.hdbscan_min_cluster_size, t.remove_stopwords, t.nr_topics)
        for t in trials
    }
    assert len(combos) == 96


def _runs(sequence: list) -> int:
    """Number of maximal runs of equal consecutive items."""
    return sum(1 for i, item in enumerate(sequence) if i == 0 or item != sequence[i - 1])


def test_order_keeps_embedding_sets_and_umap_reductions_adjacent() -> None:
    raw = {
        "embedding_model": ["org/model-a", "org/model-b"],
        "remove_stopwords": [False, True],
        "umap_n_neighbors": [5, 10],
        "umap_n_components": [2, 5],
        "umap_min_dist": [0.0, 0.5],
        "hdbscan_min_cluster_size": [5, 10],
        "hdbscan_min_samples": [None, 3],
        "hdbscan_cluster_selection_epsilon": [0.0, 0.2],
        "nr_topics": ["none", 8],
        "n_gram_max": [1, 2],
    }
    trials = ParamGrid.from_mapping(raw).trials()
    assert len(trials) == 2**10
    embedding_sets = [t.embedding_set for t in trials]
    umap = [(t.embedding_set, t.umap_n_neighbors, t.umap_n_components, t.umap_min_dist) for t in trials]
    # Each embedding set forms one contiguous block, and within it each UMAP reduction one block.
    assert _runs(embedding_sets) == len(set(embedding_sets)) == 4
    assert _runs(umap) == len(set(umap)) == 4 * 8
    # The first block is the first model without stop-word removal, in the order given.
    assert trials[0].embedding_set == EmbeddingSet("org/model-a", False)


def test_values_keep_given_order_and_duplicates_are_removed() -> None:
    grid = ParamGrid.from_mapping(
        {
            "umap_n_neighbors": [30, 5, 30, 5],
            "umap_min_dist": [0.1, 0, 0.1, 0.0],
            "nr_topics": ["none", None, "NONE", "auto", "Auto", 4, 4],
            "remove_stopwords": [True, False, True],
        }
    )
    assert grid.values["umap_n_neighbors"] == [30, 5]
    assert grid.values["umap_min_dist"] == [0.1, 0.0]
    assert all(isinstance(v, float) for v in grid.values["umap_min_dist"])
    assert grid.values["nr_topics"] == ["none", "auto", 4]
    assert grid.values["remove_stopwords"] == [True, False]
    assert len(grid.trials()) == 2 * 2 * 3 * 2


@pytest.mark.parametrize(
    ("given", "normalised", "bertopic"),
    [("none", "none", None), (None, "none", None), ("auto", "auto", "auto"), (2, 2, 2), (50, 50, 50)],
)
def test_nr_topics_accepted_values(given, normalised, bertopic) -> None:
    (trial,) = ParamGrid.from_mapping({"nr_topics": [given]}).trials()
    assert trial.nr_topics == normalised
    assert trial.bertopic_nr_topics == bertopic
    # The default (BERTopic's "none") is left out of the key.
    assert trial.key.endswith("_eps0" if normalised == "none" else f"_eps0_nt{normalised}")


def test_embedding_model_names_are_stripped() -> None:
    grid = ParamGrid.from_mapping({"embedding_model": ["  org/Model-X  "]})
    assert grid.values["embedding_model"] == ["org/Model-X"]


# --- keys -----------------------------------------------------------------------------------------


def test_key_is_readable_and_names_every_value() -> None:
    params = TrialParams(
        umap_n_neighbors=12,
        umap_n_components=3,
        umap_min_dist=0.25,
        hdbscan_min_cluster_size=7,
        hdbscan_min_samples=2,
        hdbscan_cluster_selection_epsilon=0.05,
        nr_topics="auto",
        n_gram_max=2,
        embedding_model="sentence-transformers/all-mpnet-base-v2",
        remove_stopwords=True,
    )
    assert params.key == "nn12_nc3_md0.25__all-mpnet-base-v2-nostop__mcs7_ms2_eps0.05_ntauto_ng2"
    assert_key_shape(params.key)


def test_same_params_same_key_across_reparse(tmp_path: Path) -> None:
    raw = {"umap_n_neighbors": [5, 10], "umap_min_dist": [0.0, 0.1], "hdbscan_min_samples": [None, 3]}
    first = ParamGrid.from_mapping(raw).trials()
    # Same grid written differently: other key order, ints for floats, duplicates, pretty-printed.
    text = json.dumps(
        {"hdbscan_min_samples": [None, 3, 3], "umap_min_dist": [0, 0.1], "umap_n_neighbors": [5, 10]}, indent=4
    )
    second = ParamGrid.from_file(write_grid(tmp_path, text)).trials()
    assert [t.key for t in first] == [t.key for t in second]
    assert first == second
    # A freshly constructed TrialParams with equal values also has the same key.
    rebuilt = [TrialParams.from_dict(json.loads(json.dumps(t.to_dict()))) for t in first]
    assert [t.key for t in rebuilt] == [t.key for t in first]


def test_all_keys_use_only_safe_characters() -> None:
    raw = {
        "embedding_model": [
            "sentence-transformers/all-MiniLM-L6-v2",
            "/models/My Model (v2)/",
            "C:\\models\\Fancy_Model.v1",
            "weird|name,with[brackets]...and/slashes",
        ],
        "remove_stopwords": [False, True],
        "umap_min_dist": [0.0, 0.001, 1e-7, 0.123456789],
        "hdbscan_cluster_selection_epsilon": [0, 2.5, 1e6, 1e20],
        "nr_topics": ["auto", "none", 3],
    }
    for trial in ParamGrid.from_mapping(raw).trials():
        assert_key_shape(trial.key)


def test_adding_a_value_only_adds_keys() -> None:
    base = {"umap_n_neighbors": [10, 15], "hdbscan_min_cluster_size": [5, 10], "umap_min_dist": [0.0, 0.1]}
    old_keys = [t.key for t in ParamGrid.from_mapping(base).trials()]
    for key, extra in [
        ("umap_n_neighbors", 30),
        ("hdbscan_min_cluster_size", 3),
        ("umap_min_dist", 0.5),
        ("nr_topics", "auto"),
        ("embedding_model", "org/other-model"),
        ("remove_stopwords", True),
    ]:
        grown = {k: list(v) for k, v in base.items()}
        grown[key] = grown.get(key, list(DEFAULT_GRID[key])) + [extra]
        new_keys = [t.key for t in ParamGrid.from_mapping(grown).trials()]
        assert set(old_keys) <= set(new_keys), key
        assert len(new_keys) > len(old_keys), key


def test_default_key_is_unchanged() -> None:
    """Pinned keys: if one changes, every stored result of an existing grid is orphaned."""
    assert ParamGrid.from_mapping({}).trials()[0].key == DEFAULT_KEY
    (trial,) = ParamGrid.from_mapping({"umap_min_dist": [0.1], "hdbscan_cluster_selection_epsilon": [0.5]}).trials()
    assert trial.key == "nn15_nc5_md0.1__all-minilm-l6-v2__mcs10_eps0.5"


def test_keys_fit_the_ui_list_or_keep_their_values_at_the_ends() -> None:
    # The Dagster UI shows a partition key's first and last ~17 characters when it is longer than ~34: the
    # UMAP values lead and the HDBSCAN values close, whatever the embedding set between them.
    (trial,) = ParamGrid.from_mapping({"embedding_model": ["org/paraphrase-multilingual-mpnet-base-v2"]}).trials()
    assert trial.key.startswith("nn15_nc5_md0__") and trial.key.endswith("__mcs10_eps0")
    replicate = dataclasses.replace(trial, seed_replicate=3, outlier_reduction="embeddings", outlier_threshold=0.25)
    assert replicate.key.endswith("__mcs10_eps0_oemb0.25_r3")


def test_float_keys_distinguish_values_that_differ_past_six_digits() -> None:
    trials = ParamGrid.from_mapping({"umap_min_dist": [0.1234567, 0.1234568]}).trials()
    assert len({t.key for t in trials}) == 2
    assert {t.key.split("_md")[1].split("_")[0] for t in trials} == {"0.1234567", "0.1234568"}


def test_negative_zero_gets_the_key_of_zero() -> None:
    (trial,) = ParamGrid.from_mapping({"hdbscan_cluster_selection_epsilon": [-0.0], "umap_min_dist": [-0.0]}).trials()
    assert trial.key == DEFAULT_KEY


def test_large_numbers_have_no_plus_in_key() -> None:
    (trial,) = ParamGrid.from_mapping({"hdbscan_cluster_selection_epsilon": [1e6]}).trials()
    assert trial.key.endswith("_eps1e06")
    assert_key_shape(trial.key)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("sentence-transformers/all-MiniLM-L6-v2", "all-minilm-l6-v2"),
        ("all-MiniLM-L6-v2", "all-minilm-l6-v2"),
        ("/models/bge-small-en-v1.5/", "bge-small-en-v1.5"),
        ("C:\\models\\My_Model", "my-model"),
        ("org/Model..v2", "model.v2"),
        ("org/--weird__name--", "weird-name"),
        ("org/!!!", "model"),
    ],
)
def test_model_slug(name: str, slug: str) -> None:
    assert model_slug(name) == slug


def test_embedding_set_key() -> None:
    assert EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False).key == "all-minilm-l6-v2"
    assert EmbeddingSet(DEFAULT_EMBEDDING_MODEL, True).key == "all-minilm-l6-v2-nostop"


def test_two_models_with_the_same_short_name_are_rejected() -> None:
    grid = ParamGrid.from_mapping({"embedding_model": ["org-a/all-MiniLM-L6-v2", "org-b/all-minilm-l6-v2"]})
    with pytest.raises(GridError) as info:
        grid.trials()
    message = str(info.value)
    assert "org-a/all-MiniLM-L6-v2" in message and "org-b/all-minilm-l6-v2" in message
    assert "all-minilm-l6-v2" in message


def test_fingerprint_tracks_content_not_spelling() -> None:
    a = ParamGrid.from_mapping({"umap_n_neighbors": [5, 10]})
    b = ParamGrid.from_mapping({"umap_n_neighbors": [5, 10, 5], "umap_min_dist": [0]})
    c = ParamGrid.from_mapping({"umap_n_neighbors": [10, 5]})
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", a.fingerprint)


# --- errors ---------------------------------------------------------------------------------------


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = write_grid(tmp_path, '{\n  "umap_n_neighbors": [5, 10],\n  "umap_min_dist": [0.0,]\n}\n')
    with pytest.raises(GridError) as info:
        ParamGrid.from_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message
    assert "not valid JSON" in message


def test_missing_grid_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "grid.json"
    with pytest.raises(GridError, match="does not exist") as info:
        ParamGrid.from_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ["[]", '["umap_n_neighbors"]', "5", '"grid"', "null"])
def test_top_level_must_be_an_object(tmp_path: Path, text: str) -> None:
    path = write_grid(tmp_path, text)
    with pytest.raises(GridError, match="expected a JSON object") as info:
        ParamGrid.from_file(path)
    assert str(path) in str(info.value)


def test_unknown_key_suggests_close_match(tmp_path: Path) -> None:
    path = write_grid(tmp_path, '{"umap_n_neighbours": [10]}')
    with pytest.raises(GridError) as info:
        ParamGrid.from_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "unknown key 'umap_n_neighbours'" in message
    assert "Did you mean 'umap_n_neighbors'?" in message


def test_unknown_key_without_close_match_lists_known_keys() -> None:
    with pytest.raises(GridError) as info:
        ParamGrid.from_mapping({"zzz": [1]})
    message = str(info.value)
    assert "unknown key 'zzz'" in message
    assert "Did you mean" not in message
    for key in GRID_KEYS:
        assert key in message


@pytest.mark.parametrize("value", [10, "10", None, {"a": 1}, True])
def test_value_must_be_a_list(value) -> None:
    with pytest.raises(GridError, match="must be a list") as info:
        ParamGrid.from_mapping({"umap_n_neighbors": value}, where="grid file 'g.json'")
    assert "grid file 'g.json'" in str(info.value)
    assert "'umap_n_neighbors'" in str(info.value)


def test_empty_list_is_rejected() -> None:
    with pytest.raises(GridError, match="'hdbscan_min_cluster_size' is an empty list"):
        ParamGrid.from_mapping({"hdbscan_min_cluster_size": []})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        # bools are not ints
        ("umap_n_neighbors", True),
        ("umap_n_components", False),
        ("hdbscan_min_cluster_size", True),
        ("hdbscan_min_samples", True),
        ("n_gram_max", True),
        ("nr_topics", True),
        ("umap_min_dist", False),
        ("hdbscan_cluster_selection_epsilon", True),
        # strings
        ("umap_n_neighbors", "15"),
        ("umap_min_dist", "0.1"),
        ("hdbscan_min_samples", "none"),
        ("nr_topics", "many"),
        ("nr_topics", "5"),
        ("remove_stopwords", "true"),
        ("remove_stopwords", 1),
        ("embedding_model", 5),
        ("embedding_model", "   "),
        ("embedding_model", None),
        # floats for int keys
        ("umap_n_neighbors", 15.0),
        ("umap_n_components", 2.5),
        ("hdbscan_min_cluster_size", 10.0),
        ("hdbscan_min_samples", 3.0),
        ("n_gram_max", 2.0),
        ("nr_topics", 4.0),
        # null where no default exists
        ("umap_n_neighbors", None),
        ("umap_min_dist", None),
        # lists inside lists
        ("umap_n_neighbors", [5]),
    ],
)
def test_wrong_types_are_rejected(key: str, value) -> None:
    with pytest.raises(GridError) as info:
        ParamGrid.from_mapping({key: [value]}, where="grid file 'g.json'")
    message = str(info.value)
    assert "grid file 'g.json'" in message
    assert f"'{key}'" in message
    assert json.dumps(value) in message
    assert "expected" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hdbscan_min_cluster_size", 1),
        ("hdbscan_min_cluster_size", 0),
        ("umap_n_neighbors", 1),
        ("umap_n_neighbors", -5),
        ("umap_n_components", 0),
        ("umap_min_dist", 1.5),
        ("umap_min_dist", -0.1),
        ("hdbscan_cluster_selection_epsilon", -0.5),
        ("hdbscan_min_samples", 0),
        ("n_gram_max", 0),
        ("n_gram_max", 6),
        ("nr_topics", 1),
        ("nr_topics", 0),
        ("nr_topics", -3),
    ],
)
def test_out_of_range_values_are_rejected(key: str, value) -> None:
    with pytest.raises(GridError) as info:
        ParamGrid.from_mapping({key: [value]})
    message = str(info.value)
    assert f"'{key}' has value {json.dumps(value)}" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("umap_min_dist", 1.0),
        ("umap_min_dist", 0),
        ("hdbscan_min_cluster_size", 2),
        ("umap_n_neighbors", 2),
        ("n_gram_max", 5),
        ("hdbscan_min_samples", 1),
        ("hdbscan_cluster_selection_epsilon", 0),
    ],
)
def test_range_boundaries_are_accepted(key: str, value) -> None:
    assert ParamGrid.from_mapping({key: [value]}).values[key] == [value]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("key", ["umap_min_dist", "hdbscan_cluster_selection_epsilon"])
def test_non_finite_numbers_are_rejected(key: str, constant: str) -> None:
    # json.loads accepts these non-standard constants; they must not become hyperparameters.
    with pytest.raises(GridError, match=f"'{key}'"):
        ParamGrid.from_json_text(f'{{"{key}": [{constant}]}}')


def test_error_reports_first_bad_value_among_good_ones() -> None:
    with pytest.raises(GridError) as info:
        ParamGrid.from_mapping({"umap_n_neighbors": [5, 10, 1, 20]})
    assert "has value 1;" in str(info.value)


def test_validate_for_corpus() -> None:
    grid = ParamGrid.from_mapping(
        {"umap_n_neighbors": [5, 15], "umap_n_components": [2, 5], "hdbscan_min_cluster_size": [5, 20]}
    )
    grid.validate_for_corpus(100)
    grid.validate_for_corpus(20)  # 15 < 20, 5 < 19, 20 <= 20

    with pytest.raises(GridError, match=r"umap_n_neighbors=15 must be below the corpus size \(15 documents\)"):
        grid.validate_for_corpus(15, where="grid file 'g.json'")
    with pytest.raises(GridError, match="grid file 'g.json'"):
        grid.validate_for_corpus(15, where="grid file 'g.json'")

    components = ParamGrid.from_mapping(
        {"umap_n_neighbors": [2], "umap_n_components": [5], "hdbscan_min_cluster_size": [2]}
    )
    components.validate_for_corpus(7)
    with pytest.raises(GridError, match=r"umap_n_components=5 must be below the corpus size minus one \(6 documents\)"):
        components.validate_for_corpus(6)

    big_clusters = ParamGrid.from_mapping(
        {"umap_n_neighbors": [2], "umap_n_components": [2], "hdbscan_min_cluster_size": [50]}
    )
    with pytest.raises(GridError, match="hdbscan_min_cluster_size=50 is larger than the corpus"):
        big_clusters.validate_for_corpus(49)
    big_clusters.validate_for_corpus(50)


# --- property tests -------------------------------------------------------------------------------

# Model names with distinct short names (a shared short name is a documented GridError).
MODELS = [
    DEFAULT_EMBEDDING_MODEL,
    "sentence-transformers/all-mpnet-base-v2",
    "BAAI/bge-small-en-v1.5",
    "/opt/models/e5_base",
    "intfloat/multilingual-e5-small",
]

finite = dict(allow_nan=False, allow_infinity=False)
VALUE_STRATEGIES = {
    "umap_n_neighbors": st.integers(2, 500),
    "umap_n_components": st.integers(1, 100),
    "umap_min_dist": st.floats(0.0, 1.0, **finite) | st.integers(0, 1),
    "hdbscan_min_cluster_size": st.integers(2, 1000),
    "hdbscan_min_samples": st.none() | st.integers(1, 100),
    "hdbscan_cluster_selection_epsilon": st.floats(0.0, 1e300, **finite) | st.integers(0, 10**6),
    "nr_topics": st.sampled_from(["none", "NONE", None, "auto", "AUTO"]) | st.integers(2, 10**6),
    "n_gram_max": st.integers(1, 5),
    "embedding_model": st.sampled_from(MODELS),
    "remove_stopwords": st.booleans(),
    "outlier_reduction": st.sampled_from(["none", "NONE", None, "Embeddings", *OUTLIER_STRATEGIES]),
    "outlier_threshold": st.floats(0.0, 1.0, **finite) | st.integers(0, 1),
}


@st.composite
def raw_grids(draw) -> dict:
    keys = draw(st.lists(st.sampled_from(GRID_KEYS), unique=True, max_size=4))
    return {key: draw(st.lists(VALUE_STRATEGIES[key], min_size=1, max_size=3)) for key in keys}


@st.composite
def single_trials(draw) -> TrialParams:
    raw = {key: [draw(strategy)] for key, strategy in VALUE_STRATEGIES.items()}
    (trial,) = ParamGrid.from_mapping(raw).trials()
    return trial


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_grids())
def test_property_keys_unique_deterministic_and_roundtrip(raw: dict) -> None:
    grid = ParamGrid.from_mapping(raw)
    trials = grid.trials()
    expected = math.prod(len(v) for k, v in grid.values.items() if not k.startswith("outlier_"))
    # Outlier thresholds multiply the strategies, not "none" (a threshold means nothing to it).
    strategies = grid.values["outlier_reduction"]
    expected *= ("none" in strategies) + sum(s != "none" for s in strategies) * len(grid.values["outlier_threshold"])
    assert len(trials) == expected == grid.trial_count
    keys = [t.key for t in trials]
    # Distinct combinations, distinct keys.
    assert len(set(trials)) == len(trials)
    assert len(set(keys)) == len(keys)
    for trial in trials:
        assert_key_shape(trial.key)
        assert TrialParams.from_dict(trial.to_dict()) == trial
        assert TrialParams.from_dict(json.loads(json.dumps(trial.to_dict()))) == trial
    # Deterministic, also through a JSON round trip of the grid itself (what a re-read of the file does).
    again = ParamGrid.from_json_text(json.dumps(raw)).trials()
    assert [t.key for t in again] == keys
    assert again == trials
    reparsed = ParamGrid.from_mapping(grid.to_dict())
    assert reparsed.trials() == trials
    assert reparsed.fingerprint == grid.fingerprint


@settings(max_examples=300, deadline=None)
@given(single_trials(), single_trials(), st.integers(0, 3), st.integers(0, 3))
def test_property_equal_params_iff_equal_keys(a: TrialParams, b: TrialParams, seed_a: int, seed_b: int) -> None:
    a, b = dataclasses.replace(a, seed_replicate=seed_a), dataclasses.replace(b, seed_replicate=seed_b)
    assert (a == b) == (a.key == b.key)


@settings(max_examples=100, deadline=None)
@given(raw_grids(), st.sampled_from(GRID_KEYS), st.data())
def test_property_adding_a_value_only_adds_keys(raw: dict, key: str, data) -> None:
    old = {t.key: t for t in ParamGrid.from_mapping(raw).trials()}
    grown = {k: list(v) for k, v in raw.items()}
    grown[key] = grown.get(key, list(DEFAULT_GRID[key])) + [data.draw(VALUE_STRATEGIES[key])]
    new = {t.key: t for t in ParamGrid.from_mapping(grown).trials()}
    assert set(old) <= set(new)
    assert all(new[k] == old[k] for k in old)


def test_a_key_given_twice_is_an_error_not_a_silent_overwrite():
    with pytest.raises(GridError, match="'umap_n_neighbors' appears more than once"):
        ParamGrid.from_json_text('{"umap_n_neighbors": [5], "umap_n_neighbors": [15]}')


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-10, 1000) | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from([*GRID_KEYS, "umap_neighbours", ""]), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_property_any_json_gives_a_grid_or_a_grid_error(raw) -> None:
    """Whatever the grid file holds, the user gets trials or a GridError naming the problem, never a crash."""
    try:
        grid = ParamGrid.from_json_text(json.dumps(raw))
    except GridError as exc:
        assert str(exc)
    else:
        assert grid.trials()


# --- grid size ------------------------------------------------------------------------------------

# Eight keys of ten values each: far more combinations than any machine can hold expanded.
HUGE_GRID = {
    "umap_n_neighbors": list(range(2, 12)),
    "umap_n_components": list(range(1, 11)),
    "umap_min_dist": [i / 10 for i in range(10)],
    "hdbscan_min_cluster_size": list(range(2, 12)),
    "hdbscan_min_samples": list(range(1, 11)),
    "hdbscan_cluster_selection_epsilon": [i / 10 for i in range(10)],
    "nr_topics": ["none", "auto", *range(2, 10)],
    "embedding_model": [f"model-{i}" for i in range(10)],
}


def test_a_huge_grid_is_refused_from_its_list_lengths_without_expanding(tmp_path: Path) -> None:
    import tracemalloc

    from topic_pipeline.inputs.grid import DEFAULT_MAX_GRID_TRIALS

    path = write_grid(tmp_path, json.dumps(HUGE_GRID))
    tracemalloc.start()
    try:
        grid = ParamGrid.from_file(path)
        assert grid.trial_count == 10**8
        with pytest.raises(GridError) as info:
            grid.trials(max_trials=DEFAULT_MAX_GRID_TRIALS, where=f"grid file '{path}'")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # bytes: nothing was expanded (a wall-clock bound would only add flakiness)
    message = str(info.value)
    assert message.startswith(
        f"grid file '{path}': 100,000,000 combinations, more than the limit of {DEFAULT_MAX_GRID_TRIALS:,} trials"
    )
    assert "TOPIC_PIPELINE_MAX_GRID_TRIALS raises it" in message
    assert "give fewer values per key" in message and '{"search": "auto"}' in message


def test_grid_size_limit_boundary_and_long_lists() -> None:
    grid = ParamGrid.from_mapping({"hdbscan_min_cluster_size": [2, 3, 4], "n_gram_max": [1, 2]})
    assert grid.trial_count == 6
    assert len(grid.trials(max_trials=6)) == 6
    with pytest.raises(GridError, match="6 combinations, more than the limit of 5 trials"):
        grid.trials(max_trials=5)
    # One very long list: checking it stays linear, and the count alone refuses it.
    long = ParamGrid.from_mapping({"hdbscan_min_cluster_size": list(range(2, 200_002))})
    assert long.trial_count == 200_000
    with pytest.raises(GridError, match="200,000 combinations"):
        long.trials(max_trials=5_000)


def test_grid_size_limit_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from topic_pipeline.definitions import build_resources
    from topic_pipeline.errors import TopicPipelineError
    from topic_pipeline.inputs.grid import DEFAULT_MAX_GRID_TRIALS

    monkeypatch.delenv("TOPIC_PIPELINE_MAX_GRID_TRIALS", raising=False)
    assert build_resources()["settings"].max_grid_trials == DEFAULT_MAX_GRID_TRIALS
    monkeypatch.setenv("TOPIC_PIPELINE_MAX_GRID_TRIALS", "20000")
    assert build_resources()["settings"].max_grid_trials == 20_000
    for value, expected in (("0", "must be at least 1"), ("lots", "expected a whole number")):
        monkeypatch.setenv("TOPIC_PIPELINE_MAX_GRID_TRIALS", value)
        with pytest.raises(TopicPipelineError, match=f"TOPIC_PIPELINE_MAX_GRID_TRIALS='{value}': {expected}"):
            build_resources()


def test_param_grid_asset_refuses_a_grid_over_the_limit_and_registers_nothing(tmp_path: Path) -> None:
    import sqlite3

    import dagster as dg

    from topic_pipeline.defs.assets.inputs import documents, ground_truth, param_grid
    from topic_pipeline.defs.partitions import trial_partitions
    from topic_pipeline.defs.resources.database import DocumentsDatabase
    from topic_pipeline.defs.resources.io_manager import ParquetJsonIOManager
    from topic_pipeline.defs.resources.settings import PipelineSettings

    database = tmp_path / "source.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE documents (id INTEGER, text TEXT)")
        connection.executemany("INSERT INTO documents VALUES (?, ?)", [(i, f"text {i}") for i in range(1, 31)])
    connection.close()
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"a": [1, 2], "b": [3, 4]}))
    grid = write_grid(tmp_path, json.dumps({"hdbscan_min_cluster_size": [2, 3, 4]}))

    def materialize(instance: dg.DagsterInstance, max_grid_trials: int) -> dg.ExecuteInJobResult:
        settings = PipelineSettings(
            data_dir=str(tmp_path / "data"),
            ground_truth_path=str(labels),
            grid_path=str(grid),
            max_grid_trials=max_grid_trials,
        )
        return dg.materialize(
            [documents, ground_truth, param_grid],
            instance=instance,
            raise_on_error=False,
            resources={
                "database": DocumentsDatabase(url=f"sqlite:///{database}"),
                "settings": settings,
                "io_manager": ParquetJsonIOManager(data_dir=str(tmp_path / "data")),
            },
        )

    with dg.instance_for_test() as instance:
        refused = materialize(instance, max_grid_trials=2)
        assert not refused.success
        (failure,) = [event for event in refused.all_events if event.is_step_failure]
        assert (
            f"grid file '{grid}': 3 combinations, more than the limit of 2 trials"
            in failure.step_failure_data.error.cause.message
        )
        assert instance.get_dynamic_partitions(trial_partitions.name) == []
        assert not (tmp_path / "data" / "grid").exists()
        assert materialize(instance, max_grid_trials=3).success
        # Partitions are added where runs are planned (the sweep sensor, the command line), not by the asset.
        assert instance.get_dynamic_partitions(trial_partitions.name) == []
        from topic_pipeline.defs.planning import plan_next_runs

        plan_next_runs(
            instance,
            PipelineSettings(data_dir=str(tmp_path / "data"), ground_truth_path=str(labels), grid_path=str(grid)),
        )
        assert len(instance.get_dynamic_partitions(trial_partitions.name)) == 3


# --- a byte-order mark ----------------------------------------------------------------------------


def test_a_byte_order_mark_changes_nothing(tmp_path: Path) -> None:
    from topic_pipeline.search.coarse_to_fine import SearchSpec, read_sweep_definition

    text = json.dumps({"umap_n_neighbors": [5, 10], "hdbscan_min_cluster_size": [5]})
    plain = ParamGrid.from_file(write_grid(tmp_path, text, "plain.json"))
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + text.encode())
    with_bom = ParamGrid.from_file(tmp_path / "bom.json")
    assert with_bom == plain and [t.key for t in with_bom.trials()] == [t.key for t in plain.trials()]
    assert read_sweep_definition(tmp_path / "bom.json") == plain
    # The search's form of the grid file is read the same way.
    (tmp_path / "search.json").write_bytes(b"\xef\xbb\xbf" + b'{"search": "auto", "trial_budget": 50}')
    assert read_sweep_definition(tmp_path / "search.json") == SearchSpec(trial_budget=50)


# --- outlier reduction ----------------------------------------------------------------------------


def test_outlier_keys_leave_existing_keys_and_stored_params_unchanged() -> None:
    (trial,) = ParamGrid.from_mapping({}).trials()
    assert (trial.outlier_reduction, trial.outlier_threshold) == ("none", 0.0)
    assert trial.key == DEFAULT_KEY
    # Stored parameters of trials from before the keys existed read back as the same trial, and a trial
    # without outlier reduction stores exactly what it stored before (so its stored result stays current).
    stored = trial.to_dict()
    assert "outlier_reduction" not in stored and "outlier_threshold" not in stored
    assert TrialParams.from_dict(stored) == trial
    # Thresholds mean nothing without a strategy: "none" is one trial whatever they are.
    grid = ParamGrid.from_mapping({"outlier_reduction": ["none"], "outlier_threshold": [0.1, 0.3]})
    assert [t.key for t in grid.trials()] == [DEFAULT_KEY] and grid.trial_count == 1


def test_outlier_variants_expand_and_appear_in_keys_only_when_reducing() -> None:
    grid = ParamGrid.from_mapping(
        {
            "hdbscan_min_cluster_size": [10, 20],
            "outlier_reduction": ["none", "embeddings", "C-TF-IDF"],
            "outlier_threshold": [0, 0.3],
        }
    )
    trials = grid.trials()
    assert len(trials) == grid.trial_count == 2 * (1 + 2 * 2)
    keys = [t.key for t in trials]
    assert keys[:5] == [
        DEFAULT_KEY,
        f"{DEFAULT_KEY}_oemb0",
        f"{DEFAULT_KEY}_oemb0.3",
        f"{DEFAULT_KEY}_octfidf0",
        f"{DEFAULT_KEY}_octfidf0.3",
    ]
    for trial in trials:
        assert_key_shape(trial.key)
        assert TrialParams.from_dict(json.loads(json.dumps(trial.to_dict()))) == trial
    # The variants of one clustering are adjacent (the engine derives them from it).
    assert [t.hdbscan_min_cluster_size for t in trials] == [10] * 5 + [20] * 5
    # A stability replicate's suffix stays last.
    replicate = dataclasses.replace(trials[1], seed_replicate=2)
    assert replicate.key == f"{DEFAULT_KEY}_oemb0_r2"
    assert replicate.configuration == trials[1]


def test_every_bertopic_strategy_is_accepted_and_normalised() -> None:
    grid = ParamGrid.from_mapping(
        {"outlier_reduction": [" Distributions", "PROBABILITIES", "c-tf-idf", "embeddings", None]}
    )
    assert grid.values["outlier_reduction"] == [*OUTLIER_STRATEGIES, "none"]


@pytest.mark.parametrize(
    ("value", "suggestion"),
    [
        ("embedding", "embeddings"),
        ("ctfidf", "c-tf-idf"),
        ("probability", "probabilities"),
        ("distribution", "distributions"),
    ],
)
def test_an_unknown_strategy_names_the_closest(value: str, suggestion: str) -> None:
    with pytest.raises(GridError) as info:
        ParamGrid.from_mapping({"outlier_reduction": [value]}, where="grid file 'g.json'")
    message = str(info.value)
    assert f"grid file 'g.json': key 'outlier_reduction' has value \"{value}\"" in message
    assert f'did you mean "{suggestion}"?' in message
    assert '"none", "distributions", "probabilities", "c-tf-idf", "embeddings"' in message


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.3", True, None, [0.2]])
def test_an_outlier_threshold_outside_0_to_1_is_refused_with_its_meaning(value) -> None:
    with pytest.raises(GridError) as info:
        ParamGrid.from_mapping({"outlier_reduction": ["embeddings"], "outlier_threshold": [value]})
    message = str(info.value)
    assert f"key 'outlier_threshold' has value {json.dumps(value)}; expected a number from 0 to 1" in message
    assert "membership probability" in message and "cosine similarity" in message


@pytest.mark.parametrize("value", [0, 1, 0.0, 1.0])
def test_outlier_threshold_boundaries_are_accepted(value) -> None:
    grid = ParamGrid.from_mapping({"outlier_reduction": ["probabilities"], "outlier_threshold": [value]})
    assert grid.values["outlier_threshold"] == [float(value)]
