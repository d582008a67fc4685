"""Figure: realised vs nominal false-rejection rate of positive-type query cells, one line per method."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_table
from cellquery.plots.calibration import plot_calibration

plot_calibration(
    read_table(snakemake.input[0], required=["group", "method", "index", "transfer", "metric", "value"]),
    snakemake.output[0],
    controls=snakemake.params.controls,
    names=snakemake.params.names,
)
