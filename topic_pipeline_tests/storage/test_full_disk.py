"""A disk that fills up while a cache entry or a trial result is written.

The disk is real where this machine allows it: a 256 KiB tmpfs mounted for the test (needs root), filled
up to a few KiB. Where mounting is not permitted, the fixture injects the failure instead: the file
object ``storage.write_atomically`` writes through raises ENOSPC once a byte budget is used up, which is
what a full disk does to a buffered write. Either way the pipeline's own write path runs unchanged.
"""

import errno
import io
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

import topic_pipeline.storage.files as storage
from topic_pipeline.domain.results import TrialResult
from topic_pipeline.storage.array_cache import ArrayCache
from topic_pipeline.storage.results import ResultStore

FREE_BYTES = 16 * 1024


class _FullDisk(io.RawIOBase):
    """A file that accepts ``budget`` bytes, then fails as a full disk does."""

    def __init__(self, raw: io.FileIO, budget: list[int]):
        self.raw, self.budget = raw, budget

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.budget[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget[0] -= len(data)
        return self.raw.write(data)

    def fileno(self) -> int:
        return self.raw.fileno()

    def close(self) -> None:
        self.raw.close()
        super().close()


@pytest.fixture
def nearly_full_disk(tmp_path, monkeypatch):
    """A folder on a disk with about FREE_BYTES left; yields (folder, a function that frees the disk)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", f"tmpfs-{uuid.uuid4().hex[:8]}", str(mount_point)],
            capture_output=True,
        ).returncode
        == 0
    )
    if mounted:
        try:
            filler = mount_point / "filler"
            with open(filler, "wb", buffering=0) as stream:
                while stream.write(b"\0" * 4096) == 4096:
                    pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            os.truncate(filler, filler.stat().st_size - FREE_BYTES)
            yield mount_point, filler.unlink
        finally:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)
    else:
        budget = [FREE_BYTES]
        real_fdopen = os.fdopen
        monkeypatch.setattr(
            storage.os,
            "fdopen",
            lambda fd, mode: io.BufferedWriter(_FullDisk(real_fdopen(fd, "wb", buffering=0), budget)),
        )
        yield mount_point, lambda: budget.__setitem__(0, 2**40)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def test_a_full_disk_leaves_the_cache_entry_it_was_replacing_intact(nearly_full_disk):
    folder, make_room = nearly_full_disk
    cache = ArrayCache(folder / "cache")
    small = {"reduction": np.ones((10, 2), dtype=np.float32)}
    cache.store("kept", small)
    # A damaged entry is recomputed; the recomputed one does not fit.
    np.savez(cache.path("damaged"), reduction=np.ones((3, 2), dtype=np.float32))
    damaged_bytes = cache.path("damaged").read_bytes()
    big = np.random.default_rng(0).normal(size=(5_000, 5)).astype(np.float32)  # 100 KB: fits only an empty disk

    valid = lambda arrays: arrays["reduction"].shape == big.shape  # noqa: E731
    with pytest.raises(
        OSError, match=r"No space left on device: could not write .*damaged\.npz \(any earlier version is unchanged\)"
    ) as raised:
        cache.get_or_compute("damaged", lambda: {"reduction": big}, valid)
    assert raised.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="could not write .*new.npz"):
        cache.store("new", {"reduction": big})

    assert cache.path("damaged").read_bytes() == damaged_bytes
    assert not cache.path("new").exists()
    np.testing.assert_array_equal(cache.load("kept")["reduction"], small["reduction"])
    assert _leftovers(folder) == []  # no half-written entry, and the space it took is given back

    make_room()  # once there is room again, the same call computes and stores the entry
    arrays, cached = cache.get_or_compute("damaged", lambda: {"reduction": big}, valid)
    assert not cached and cache.load("damaged", valid) is not None


def test_a_full_disk_leaves_the_previous_trial_result_intact(nearly_full_disk):
    folder, _ = nearly_full_disk
    store = ResultStore(folder / "results")
    previous = TrialResult("trial-a", {"umap_n_neighbors": 15}, "inputs-1", "ok", metrics={"ari": 0.5}, finished_at=1.0)
    store.save(previous)
    rerun = TrialResult("trial-a", {"umap_n_neighbors": 15}, "inputs-2", "failed", error="x" * 100_000, finished_at=2.0)
    with pytest.raises(OSError, match=r"No space left on device: could not write .*trial-a\.json"):
        store.save(rerun)
    assert store.load("trial-a") == previous
    assert _leftovers(folder) == []
