"""The only place that touches private names of third-party libraries (numba, umap-learn, hdbscan,
joblib, Dagster), one module per library. Each states the versions it was written for and checks them;
on any other version it falls back to the public path or refuses with a clear message, never silently
different labels.
"""
