"""The sweep engine: every trial's labels, each shared intermediate computed once.

``sweep.run_trials`` is the entry point; ``fast`` runs the worker pool over ``neighbors`` (kNN graphs),
``reduction`` (UMAP from a shared graph), ``clustering`` (HDBSCAN from a shared tree) and ``work_queue``
(which reduction a worker takes next); ``reference`` is one plain BERTopic fit per trial, the yardstick
the fast path's labels are tested equal to. ``bertopic_model`` builds every BERTopic model the package
fits (reference trial, topic reduction, export, topic words).

May import: ``inputs``, ``scoring``, ``storage``, ``_compat``, ``errors``. Never Dagster.
"""
