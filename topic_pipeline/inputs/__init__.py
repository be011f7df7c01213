"""What the tuning starts from: the texts, the labelled sample, the grid, the embeddings and the demo data."""

from __future__ import annotations

from topic_pipeline.lazy_exports import lazy_exports

# Each public name, by the module that defines it. A name is imported from its module on first use, so
# importing one module of the folder does not import the others (reading a grid needs no database driver).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "corpus": ("Corpus", "DateWindow", "SqlSource", "load_corpus"),
    "ground_truth": ("DEFAULT_MIN_FOUND_SHARE", "MIN_FOUND_SHARE_SETTING", "GroundTruth", "LabelCoverage"),
    "grid": ("DEFAULT_MAX_GRID_TRIALS", "MAX_GRID_TRIALS_SETTING", "ParamGrid", "check_grid_values", "parse_grid_json"),
    "embeddings": (
        "EmbeddingCache",
        "EmbeddingSettings",
        "embed_corpus",
        "load_model",
        "resolve_model_location",
        "stop_words",
        "strip_stop_words",
    ),
    "demo_corpus": ("DemoCorpus", "generate_demo_corpus"),
    "demo_data": ("ensure_demo_data",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
