"""What the static images and the HTML page share: plot titles, file names and colours."""

from __future__ import annotations

# One entry per plot: (file name without extension, title). The titles head the HTML sections and the
# images, so a reader finds the same plot under the same name in both.
CONVERGENCE = ("convergence", "Best score so far")
PARAMETERS = ("parameters", "Ranking metric by parameter")
IMPORTANCE = ("importance", "Parameter importance")
PARALLEL = ("parallel_coordinates", "Trials across the varying parameters")
HEATMAP = ("cluster_heatmap", "min_cluster_size × min_samples on the best reduction")
TOP = ("top_configurations", "Top configurations")
TOPIC_MAP = ("topic_map", "Topics of the chosen trial")
PLOTS = (CONVERGENCE, PARAMETERS, IMPORTANCE, PARALLEL, HEATMAP, TOP, TOPIC_MAP)

# The three figures a sweep calls "best", each named for what it is, in the header and the convergence plot.
BEST_SO_FAR = "best trial so far"
RECOMMENDED_MEAN = "recommended configuration, mean over seeds"
HELDOUT_ESTIMATE = "its held-out estimate"

# matplotlib's qualitative palettes in hex, so plotly draws the same colours: tab10 first (the most
# distinct), then tab20's lighter companions, tab20b and tab20c: 60 colours, repeated beyond that (the
# labels tell topics apart then).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
    "#393b79",
    "#5254a3",
    "#6b6ecf",
    "#9c9ede",
    "#637939",
    "#8ca252",
    "#b5cf6b",
    "#cedb9c",
    "#8c6d31",
    "#bd9e39",
    "#e7ba52",
    "#e7cb94",
    "#843c39",
    "#ad494a",
    "#d6616b",
    "#e7969c",
    "#7b4173",
    "#a55194",
    "#ce6dbd",
    "#de9ed6",
    "#3182bd",
    "#6baed6",
    "#9ecae1",
    "#c6dbef",
    "#e6550d",
    "#fd8d3c",
    "#fdae6b",
    "#fdd0a2",
    "#31a354",
    "#74c476",
    "#a1d99b",
    "#c7e9c0",
    "#756bb1",
    "#9e9ac8",
    "#bcbddc",
    "#dadaeb",
    "#636363",
    "#969696",
    "#bdbdbd",
    "#d9d9d9",
)
# Outliers and unlabelled documents: present, but behind everything else.
BACKGROUND = "#d0d0d0"
SCORE_COLOUR = "#1f77b4"
HELDOUT_COLOUR = "#ff7f0e"
# The convergence plot's two levels: darker than every search round's colour, so no dot is mistaken for them.
RECOMMENDED_COLOUR = "#006400"
ESTIMATE_COLOUR = "#b35900"
# The sequential colour scale of every plot coloured by the metric (matplotlib's name; plotly's is capitalised).
METRIC_SCALE = "viridis"
FAILED_COLOUR = "#d62728"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]
