"""Where and how results live on disk: the data directory's folders, atomic pickle-free files, the stores built on them."""

from topic_pipeline.storage.array_cache import ArrayCache
from topic_pipeline.storage.files import (
    ARRAY_CHECKSUM_MARK,
    OWNERSHIP_MARKER,
    TEMPORARY_SUFFIX,
    DuplicateKeyError,
    FolderNotOursError,
    json_bytes,
    read_array,
    read_arrays,
    read_json,
    read_user_text,
    reject_duplicate_keys,
    remove_stale_temporaries,
    replace_folder,
    save_array,
    save_arrays,
    write_atomically,
    write_json,
)
from topic_pipeline.storage.paths import DATA_DIR_ENV, DataPaths, default_data_dir, sweep_id
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.storage.store import DAMAGED, FileStore

__all__ = [
    # paths
    "DATA_DIR_ENV",
    "DataPaths",
    "default_data_dir",
    "sweep_id",
    # files
    "ARRAY_CHECKSUM_MARK",
    "OWNERSHIP_MARKER",
    "TEMPORARY_SUFFIX",
    "DuplicateKeyError",
    "FolderNotOursError",
    "json_bytes",
    "read_array",
    "read_arrays",
    "read_json",
    "read_user_text",
    "reject_duplicate_keys",
    "remove_stale_temporaries",
    "replace_folder",
    "save_array",
    "save_arrays",
    "write_atomically",
    "write_json",
    # store
    "DAMAGED",
    "FileStore",
    # array_cache
    "ArrayCache",
    # results
    "ResultStore",
]
