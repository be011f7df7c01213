"""A sweep that would not fit in memory or on disk is refused before it starts, with the estimate and the
setting to change (fast; no models)."""

from __future__ import annotations

import pytest

from topic_pipeline.engine import capacity
from topic_pipeline.engine.capacity import GIB, Layout, check_capacity, estimate_needs
from topic_pipeline.errors import CapacityError

LAYOUTS = [Layout(k, 5) for k in (10, 15, 30, 50, 100)]


def test_the_estimate_grows_with_the_corpus_the_neighbours_and_the_workers():
    small = estimate_needs(10_000, 384, 2, LAYOUTS, 50)
    large = estimate_needs(300_000, 384, 2, LAYOUTS, 50)
    assert large.memory_bytes > small.memory_bytes and large.disk_bytes > small.disk_bytes
    one = estimate_needs(300_000, 384, 1, LAYOUTS, 50)
    assert one.worker_bytes == large.worker_bytes and one.memory_bytes == large.memory_bytes - large.worker_bytes
    # At most one worker per layout works at once: a sweep of one layout is one worker, however many there are.
    assert estimate_needs(300_000, 384, 8, LAYOUTS[:1], 10).workers == 1
    wider = estimate_needs(300_000, 384, 2, [Layout(200, 5)], 50)
    assert wider.worker_bytes > estimate_needs(300_000, 384, 2, [Layout(100, 5)], 50).worker_bytes
    # Disk: one graph per embedding set, k and seed, one reduction per layout, one int32 label per document
    # and trial. Without graph identities, one graph per distinct k.
    assert large.disk_bytes == 300_000 * (8 * 205 + 4 * 5 * 5 + 4 * 50)
    seeded = [Layout(k, 5, ("set", k, seed)) for k in (10, 100) for seed in (0, 1)]
    assert estimate_needs(300_000, 384, 2, seeded, 4).disk_bytes == 300_000 * (8 * 2 * 110 + 4 * 5 * 4 + 4 * 4)
    assert estimate_needs(1000, 384, 2, [], 0).memory_bytes == 0


def test_too_little_memory_is_refused_naming_the_estimate_and_the_settings(tmp_path):
    needs = estimate_needs(300_000, 384, 2, LAYOUTS, 50)
    with pytest.raises(CapacityError) as refused:
        check_capacity(needs, tmp_path, "TOPIC_PIPELINE_WORKERS", memory=4 * GIB, free_disk=100 * GIB)
    message = str(refused.value)
    assert f"about {needs.memory_bytes / GIB:.1f} GiB of memory" in message and "4.0 GiB is available" in message
    assert "TOPIC_PIPELINE_WORKERS=1" in message and "TOPIC_PIPELINE_WINDOW_DAYS" in message
    assert "300,000 documents x 384 dims" in message and "\n" not in message
    single = estimate_needs(300_000, 384, 1, LAYOUTS, 50)
    with pytest.raises(CapacityError, match="a machine with more memory"):
        check_capacity(single, tmp_path, "TOPIC_PIPELINE_WORKERS", memory=2 * GIB, free_disk=100 * GIB)
    check_capacity(needs, tmp_path, "TOPIC_PIPELINE_WORKERS", memory=64 * GIB, free_disk=100 * GIB)


def test_too_little_disk_is_refused_naming_the_data_directory(tmp_path):
    needs = estimate_needs(300_000, 384, 2, LAYOUTS, 50)
    with pytest.raises(CapacityError) as refused:
        check_capacity(needs, tmp_path / "data", "TOPIC_PIPELINE_WORKERS", memory=64 * GIB, free_disk=GIB // 10)
    assert str(tmp_path / "data") in str(refused.value) and "TOPIC_PIPELINE_DATA_DIR" in str(refused.value)
    # The free space is read where the data directory will be: its nearest existing parent.
    check_capacity(needs, tmp_path / "not" / "yet", "TOPIC_PIPELINE_WORKERS", memory=64 * GIB)


def test_the_available_memory_is_the_containers_where_its_limit_is_lower(tmp_path, monkeypatch):
    import psutil

    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    monkeypatch.setattr(capacity, "CGROUP_MEMORY_MAX", limit)
    monkeypatch.setattr(capacity, "CGROUP_MEMORY_CURRENT", usage)
    stat = tmp_path / "memory.stat"
    monkeypatch.setattr(capacity, "CGROUP_MEMORY_STAT", stat)
    limit.write_text(f"{GIB}\n")
    usage.write_text(f"{GIB // 2}\n")
    stat.write_text(f"anon {GIB // 4}\ninactive_file {GIB // 4}\nactive_file 0\n")
    # The limit less the container's working set: its usage less the page cache it can drop.
    assert capacity.available_memory() == 3 * GIB // 4
    limit.write_text("max\n")  # no limit: the machine's available memory
    assert abs(capacity.available_memory() - psutil.virtual_memory().available) < GIB


def test_a_worker_needs_the_larger_of_its_layout_and_its_clustering_unless_it_fits_plain_bertopic():
    layout_only = estimate_needs(300_000, 384, 2, LAYOUTS, 50)
    # min_samples 600 x 32 bytes is less than n_neighbors 100 x 200 bytes: the layout decides.
    assert estimate_needs(300_000, 384, 2, LAYOUTS, 50, min_samples=600).worker_bytes == layout_only.worker_bytes
    # A larger query than the layout decides alone, the layout not added to it.
    query = estimate_needs(300_000, 384, 2, LAYOUTS, 50, min_samples=1000)
    lanczos = 300_000 * 547 * 8  # UMAP's spectral initialisation: sqrt(documents) float64 vectors
    assert query.worker_bytes - layout_only.worker_bytes == 300_000 * (1000 * 32 - 100 * 200) - lanczos
    # The reference engine's plain BERTopic keeps UMAP while HDBSCAN queries with its joblib processes.
    reference = estimate_needs(300_000, 384, 1, LAYOUTS, 50, min_samples=800, reference=True)
    assert reference.worker_bytes - layout_only.worker_bytes == 300_000 * 800 * 32 * 2
