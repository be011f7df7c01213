"""Where and how results live on disk: ``paths`` (the data directory's layout of folders), ``files``
(atomic, pickle-free writes and reads; folders replaced only when ours), ``store`` (one file per key,
written atomically, a damaged entry read as absent and logged: the base of every store),
``array_cache`` (content-addressed numpy arrays) and ``results`` (one JSON row per trial).

May import: ``errors``. Nothing else of the package.
"""
