"""Jobs: the sweep runs as four kinds of runs, in this order."""

import dagster as dg

from topic_pipeline.defs.partitions import embedding_set_partitions, trial_partitions

# Three light steps in the run's own process: a subprocess each cost ~5 s of start-up per sweep here.
refresh_inputs_job = dg.define_asset_job(
    "refresh_inputs_job",
    selection=["documents", "ground_truth", "param_grid"],
    executor_def=dg.in_process_executor,
    description="Export the texts, validate the labels and register the grid's partitions.",
)
embeddings_job = dg.define_asset_job(
    "embeddings_job",
    selection=["embeddings"],
    partitions_def=embedding_set_partitions,
    description="Embed the corpus for one embedding set (cached).",
)
trials_job = dg.define_asset_job(
    "trials_job",
    selection=["grid_trials"],
    partitions_def=trial_partitions,
    description="Run a range of grid trials in one process.",
)
# Two steps, the leaderboard (which evaluates its own checks) then the report, in the run's own process: a
# spawned subprocess each would only add start-up time. The command line forks them from its preloaded
# server instead (cli.py). The report is a step of its own, so the ranking never waits on plots and a
# report that cannot be written never costs the leaderboard; in the same run, so every leaderboard the
# sensor or the command line launches has its report.
leaderboard_job = dg.define_asset_job(
    "leaderboard_job",
    selection=["leaderboard", "sweep_report"],
    executor_def=dg.multi_or_in_process_executor,
    config={"execution": {"config": {"in_process": {}}}},
    description="Rank the trials, then write the sweep report.",
)

# The report alone: for a leaderboard whose run stopped before its report was written.
report_job = dg.define_asset_job(
    "report_job",
    selection=["sweep_report"],
    executor_def=dg.in_process_executor,
    description="Write the sweep report of the current leaderboard.",
)

export_job = dg.define_asset_job(
    "export_job",
    selection=["topic_model"],
    executor_def=dg.in_process_executor,
    description="Export the leaderboard's first trial (or the trial_key given in the launch config) as a BERTopic model.",
)
# Separate, so nothing is pushed unless someone launches this job with a repo id.
hub_push_job = dg.define_asset_job(
    "hub_push_job",
    selection=["hub_model"],
    executor_def=dg.in_process_executor,
    description="Push the latest safetensors export to the Hugging Face Hub (HF_TOKEN from the environment).",
)
# Between search rounds: reads the leaderboard's results, proposes the next round's trials.
search_job = dg.define_asset_job(
    "search_job",
    selection=["search_refinement"],
    executor_def=dg.in_process_executor,
    description="Close the search's last round and propose the next (refinement or stability).",
)
