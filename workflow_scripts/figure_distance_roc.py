"""Figure: ROC of distances as predictors of "the nearest reference cell has the query cell's type" (Supp. Fig. 8c)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.novelty import gather
from cellquery.plots.distance_roc import plot_distance_roc

plot_distance_roc(gather(snakemake.input, "distance_roc_curves"), snakemake.output[0], controls=snakemake.params.controls, names=snakemake.params.names)
