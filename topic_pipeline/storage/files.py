"""Atomic, pickle-free file writes and reads shared by every on-disk store of the project."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from topic_pipeline.errors import TopicPipelineError

# Every temporary file or folder the project makes ends so: recovery deletes only these, never a user's
# own ``.something.tmp`` in a data directory that is shared with other files.
TEMPORARY_SUFFIX = ".topic-pipeline.tmp"


def _read_umask() -> int:
    # Set and restored at once, at import: os.umask has no read-only form, and two threads doing this at the
    # same moment could each see the other's 0.
    current = os.umask(0)
    os.umask(current)
    return current


_UMASK = _read_umask()


def _umask() -> int:
    return _UMASK


def _writer_identity() -> str:
    """This host and process, as a file name part: several machines write into one shared data directory, and
    a name that says whose it is stays unique across them (mkstemp's random part and ``O_EXCL`` already make
    a clash unlikely; the name also tells whose a leftover file is)."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:24] or "host"
    return f"{host}-{os.getpid()}"


def temporary_prefix(target: Path, role: str = "") -> str:
    """``.<target name>.[<role>.]<host>-<pid>.``: what every temporary beside ``target`` starts with; the
    tempfile module appends a random part, and the caller ``TEMPORARY_SUFFIX``. A long target name is cut
    short here, so that the temporary's name stays within a file system's limit where the target's does."""
    return f".{target.name[:120]}.{role + '.' if role else ''}{_writer_identity()}."


def staging_folder(target: Path) -> Path:
    """A new hidden folder beside ``target`` to build its next version in, with the permissions an ordinary
    ``mkdir`` gives (``mkdtemp`` makes it private to its owner, and renamed into place it would stay so)."""
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(target), suffix=TEMPORARY_SUFFIX, dir=target.parent))
    staging.chmod(0o777 & ~_umask())
    return staging


def staging_file(target: Path) -> Path:
    """A new empty hidden file beside ``target`` to build its next version in, with the permissions an
    ordinary file gets (see ``staging_folder``)."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=temporary_prefix(target), suffix=TEMPORARY_SUFFIX)
    os.fchmod(handle, 0o666 & ~_umask())
    os.close(handle)
    return Path(name)


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file in the same folder, then rename it over ``path``.

    A reader sees the old file or the complete new one, never a partial one, even if the writer
    is killed or the disk fills up half way. Two writers of one path (two processes, or two machines
    sharing the data directory over NFS) each write their own temporary file and the last rename wins:
    no lock is involved, only the rename within one folder, which is atomic on NFS too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=TEMPORARY_SUFFIX)
    try:
        # mkstemp makes the file private to its owner; what we write for people follows the umask, like any file.
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        # A bare "[Errno 28] No space left on device" names no file: say which, and that nothing was replaced.
        raise OSError(
            exc.errno, f"{exc.strerror or exc}: could not write {path} (any earlier version is unchanged)"
        ) from exc
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(root: Path, older_than_seconds: float) -> list[Path]:
    """Delete the temporary files of writes that were cut short (a killed process leaves
    ``.<name>.<host>-<pid>.<random>.topic-pipeline.tmp`` behind; nothing ever reads one). Only files older than the
    given age are touched: a younger one may belong to a write still in progress in another process."""
    import time

    removed = []
    cutoff = time.time() - older_than_seconds
    for path in Path(root).rglob(f".*{TEMPORARY_SUFFIX}"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours to delete: not worth failing a sweep over
    return removed


# A folder this project wrote holds this file: what wrote it, every file it held when written and each
# file's sha256 (a link's: of the path it points to).
OWNERSHIP_MARKER = ".topic-pipeline-folder.json"


class FolderNotOursError(TopicPipelineError):
    """A folder would be replaced that this project did not write, or that someone has added to or changed
    since; ``changed`` names the files it wrote whose content is no longer what it wrote."""

    def __init__(self, message: str, changed: tuple[str, ...] = ()):
        super().__init__(message)
        self.changed = changed


def _entries(folder: Path) -> list[str]:
    """Every file and link under ``folder`` (not following links), as relative paths."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_symlink() or not p.is_dir())


def _content_digest(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_symlink():
        digest.update(b"link:" + os.fsencode(os.readlink(path)))
        return digest.hexdigest()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(folder: Path, kind: str) -> dict | None:
    """The folder's ownership marker, if it is one for ``kind``."""
    try:
        marker = json.loads((folder / OWNERSHIP_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(marker, dict)
        or marker.get("kind") != kind
        or not isinstance(marker.get("files"), list)
        or not isinstance(marker.get("sha256", {}), dict)
    ):
        return None
    # A marker without digests (a report or export folder written before they were recorded) still lists
    # what we wrote; those files are replaced without a content check.
    return {**marker, "sha256": marker.get("sha256", {})}


def _changed_since_written(folder: Path, marker: dict) -> list[str]:
    """The files the marker lists a digest for whose content differs now."""
    digests = marker["sha256"]
    changed = []
    for name in _entries(folder):
        expected = digests.get(name)
        if name == OWNERSHIP_MARKER or expected is None:
            continue
        try:
            if _content_digest(folder / name) != expected:
                changed.append(name)
        except OSError:
            changed.append(name)  # unreadable now: not what was written, as far as anyone can tell
    return changed


def _changed_files_message(target: Path, kind: str, changed: list[str], another_folder: str | None) -> str:
    one = len(changed) == 1
    files, them = ("a file", "it") if one else (f"{len(changed)} files", "them")
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    remove = f"remove the changed {'file' if one else 'files'} yourself"
    what_to_do = (
        f"{another_folder}, or {remove}" if another_folder else f"{remove} (move {them} elsewhere to keep {them})"
    )
    return f"'{target}' holds {files} changed since topic_pipeline's {kind} wrote {them}: {shown}; nothing in it was touched: {what_to_do}"


def replace_folder(
    staging: Path,
    target: Path,
    kind: str,
    another_folder: str | None = None,
) -> None:
    """Move the complete folder ``staging`` (a sibling of ``target``) to ``target``, marked as ours.

    ``target`` may be absent, an empty folder, or a folder this project wrote as ``kind`` with nothing
    added or changed since. Anything else is refused with ``FolderNotOursError`` and left untouched: a replacement
    must never delete what the project did not write, nor a user's edit of what it did (the refusal names
    the changed files and says what to do: remove them, or ``another_folder`` where the caller can choose one).
    """
    files = _entries(staging)
    write_json(
        staging / OWNERSHIP_MARKER,
        {
            "written_by": "topic_pipeline",
            "kind": kind,
            "files": files,
            "sha256": {name: _content_digest(staging / name) for name in files},
        },
    )
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise FolderNotOursError(
            f"'{target}' exists and is not a folder; nothing was changed: choose a new or empty folder"
        )
    previous = None
    if target.exists() and any(target.iterdir()):
        marker = _marker(target, kind)
        ours = marker is not None and set(_entries(target)) <= {*marker["files"], OWNERSHIP_MARKER}
        if not ours:
            raise FolderNotOursError(
                f"'{target}' is not empty and is not an earlier {kind} of topic_pipeline (no {OWNERSHIP_MARKER} "
                "listing its files, or files were added since); nothing in it was touched: "
                "choose a new or empty folder"
            )
        changed = _changed_since_written(target, marker)
        if changed:
            raise FolderNotOursError(
                _changed_files_message(target, kind, changed, another_folder), changed=tuple(changed)
            )
        previous = Path(
            tempfile.mkdtemp(prefix=temporary_prefix(target, "previous"), suffix=TEMPORARY_SUFFIX, dir=target.parent)
        )
        os.replace(target, previous)
    try:
        os.replace(staging, target)
    except BaseException:
        if previous is not None:
            os.replace(previous, target)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()


def write_json(path: Path, value: Any) -> None:
    data = json_bytes(value)
    write_atomically(path, lambda stream: stream.write(data))


class DuplicateKeyError(ValueError):
    def __init__(self, key: str):
        super().__init__(f"key '{key}' appears more than once")
        self.key = key


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for user files: plain json keeps the last duplicate and silently drops the rest."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


def read_user_text(path: Path, what: str, error: type[Exception]) -> str:
    """The text of a file the user gave (``what`` names it in messages); ``error`` says what is wrong.

    Every file a user gives is read here, as UTF-8 with or without a byte-order mark (some editors write
    one), so one rule holds for them all."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} '{path}' does not exist") from None
    except OSError as exc:
        raise error(f"{what} '{path}' cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The decoder counts from after a byte-order mark it dropped; the message gives the file's offset.
        start = exc.start + len(data) - len(exc.object)
        raise error(
            f"{what} '{path}' is not UTF-8 text (byte {start} is 0x{data[start]:02x}); save it as UTF-8 JSON"
        ) from None


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# Every array file the project writes (``.npy``, ``.npz``) ends with this mark, the sha256 (hex) of every byte
# before it and a newline. numpy reads exactly the bytes a ``.npy`` header announces, and zipfile finds an
# archive's end record before trailing bytes, so the file stays what ``np.load`` reads; ``read_array`` and
# ``read_arrays`` check the digest first, so damage anywhere in the file (cut short, garbled bytes in a
# header or the data) reads as damage, never as an array. A file without the mark (one the project did not
# write) gets numpy's and zipfile's own checks only (an ``.npz`` member's CRC-32 among them).
ARRAY_CHECKSUM_MARK = b"\ntopic_pipeline-sha256:"
_ARRAY_TRAILER_LENGTH = len(ARRAY_CHECKSUM_MARK) + 64 + 1  # the mark, the hex digest, a newline


class _Hashing:
    """A write-only, unseekable stream that hashes what goes through it: numpy then writes an array through
    ``write`` rather than straight to the file descriptor, and zipfile writes an archive front to back."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.stream.write(data)

    def read(self, *_: Any) -> bytes:  # np.savez takes an object with ``read`` for a file, never calls it
        raise OSError("write-only stream")

    def flush(self) -> None:
        self.stream.flush()

    def close_with_checksum(self) -> None:
        self.stream.write(ARRAY_CHECKSUM_MARK + self.digest.hexdigest().encode() + b"\n")


def _checksummed_length(stream: BinaryIO, size: int) -> int | None:
    """The length of the content before a checksum trailer, None when the file has none; ``ValueError`` when
    the content does not match it."""
    if size < _ARRAY_TRAILER_LENGTH:
        return None
    stream.seek(size - _ARRAY_TRAILER_LENGTH)
    trailer = stream.read(_ARRAY_TRAILER_LENGTH)
    if not (trailer.startswith(ARRAY_CHECKSUM_MARK) and trailer.endswith(b"\n")):
        return None
    length = size - _ARRAY_TRAILER_LENGTH
    stream.seek(0)
    digest = hashlib.sha256()
    remaining = length
    while remaining:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            raise ValueError("the file changed while it was read")
        digest.update(chunk)
        remaining -= len(chunk)
    if digest.hexdigest().encode() != trailer[len(ARRAY_CHECKSUM_MARK) : -1]:
        raise ValueError("its bytes do not match the sha256 written with them: changed or damaged since")
    return length


def save_array(stream: BinaryIO, array: np.ndarray) -> None:
    hashing = _Hashing(stream)
    np.save(hashing, np.ascontiguousarray(array), allow_pickle=False)
    hashing.close_with_checksum()


def read_array(path: Path) -> np.ndarray:
    """The array in a ``.npy`` file, never unpickled; ``ValueError`` if the file is damaged: not matching its
    checksum, cut short, or holding bytes after the array that are not its checksum."""
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        length = _checksummed_length(stream, size)
        stream.seek(0)
        try:
            array = np.lib.format.read_array(stream, allow_pickle=False)
        except (SyntaxError, tokenize.TokenError) as exc:  # a garbled header, as numpy parses it
            raise ValueError(f"its header cannot be parsed ({exc})") from None
        end = stream.tell()
    if end != (size if length is None else length):
        raise ValueError(
            f"{size - end} byte(s) after the array are not its checksum (the file was cut short or changed)"
        )
    return array


def save_arrays(stream: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """Named arrays as one ``.npz`` archive (uncompressed, no pickle), with a checksum as ``save_array``."""
    hashing = _Hashing(stream)
    np.savez(hashing, **arrays)
    hashing.close_with_checksum()


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, never unpickled, each member read to its end (so its CRC-32 is
    checked too); ``ValueError`` (or zipfile's ``BadZipFile``) if the file is damaged."""
    with open(path, "rb") as stream:
        _checksummed_length(stream, os.fstat(stream.fileno()).st_size)
        stream.seek(0)
        try:
            loaded = np.load(stream, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("holds a single array, not an .npz archive")
            with loaded as archive:
                return {name: archive[name] for name in archive.files}
        except (SyntaxError, tokenize.TokenError) as exc:  # a member's garbled header
            raise ValueError(f"a member's header cannot be parsed ({exc})") from None
