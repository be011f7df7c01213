"""Errors a user can act on.

Every error raised for bad input names the file, key or id at fault and what was expected,
so the message alone tells the user what to fix.
"""


class TopicPipelineError(Exception):
    """Base class of every error caused by input or configuration rather than a bug."""


class CorpusError(TopicPipelineError):
    """The SQL export returned something that cannot be tuned on."""


class DatabaseUnavailableError(TopicPipelineError):
    """The configured database could not be reached."""


class GroundTruthError(TopicPipelineError):
    """The labelled sample is malformed or does not match the corpus."""


class GridError(TopicPipelineError):
    """The parameter grid is malformed."""


class EmbeddingModelError(TopicPipelineError):
    """The embedding model cannot be loaded."""


class MissingEmbeddingsError(TopicPipelineError):
    """A trial needs embeddings that have not been computed yet."""


class CapacityError(TopicPipelineError):
    """A sweep would not fit in this machine's memory or on the data directory's disk."""


class SharedDataDirectoryError(TopicPipelineError):
    """A worker of a cluster does not see the sweep's shared data directory, or runs other library versions
    than the instance that plans the sweep."""


def error_text(exc: BaseException) -> str:
    """One line naming the exception type and its message, as recorded for a failed trial."""
    import traceback

    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def listing(items, limit: int = 10) -> str:
    """A short, readable list of offending ids or values for an error message."""
    items = list(items)
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
