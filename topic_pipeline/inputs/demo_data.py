"""The embedded default: a SQLite database with the generated sample corpus, its labels and grid."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from topic_pipeline.inputs.demo_corpus import generate_demo_corpus
from topic_pipeline.storage.files import staging_file, write_json

DEMO_DOCUMENTS = 1500
DEMO_TOPICS = 10


def ensure_demo_data(directory: Path) -> tuple[Path, Path]:
    """Create (once) ``corpus.db`` and ``ground_truth.json`` in ``directory``; returns their paths."""
    database = directory / "corpus.db"
    ground_truth = directory / "ground_truth.json"
    if database.exists() and ground_truth.exists():
        return database, ground_truth
    corpus = generate_demo_corpus(n_docs=DEMO_DOCUMENTS, n_topics=DEMO_TOPICS)
    directory.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place: two processes creating it at once never share a file.
    building = staging_file(directory / "corpus.db")
    with sqlite3.connect(building) as connection:
        connection.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, text TEXT NOT NULL, topic TEXT NOT NULL)")
        connection.executemany(
            "INSERT INTO documents (id, text, topic) VALUES (?, ?, ?)", zip(corpus.ids, corpus.texts, corpus.topics)
        )
    connection.close()
    building.replace(database)
    write_json(ground_truth, corpus.ground_truth())
    return database, ground_truth
