"""Where and how results live on disk: ``paths`` (the data directory's layout of folders), ``files``
(atomic, pickle-free writes and reads; folders replaced only when ours), ``array_cache`` (content-addressed
numpy arrays) and ``results`` (one JSON row per trial).

May import: ``errors``. Nothing else of the package.
"""
