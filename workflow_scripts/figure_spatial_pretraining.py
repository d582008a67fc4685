"""Figure: the spatial GNN runs' losses per epoch (masked pretraining; fine-tuning, pretrained vs not)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.io import read_h5ad
from cellquery.plots.spatial_pretraining import loss_curve_table, plot_spatial_pretraining

records = [
    {"group": group, "method": method, "arm": arm, "seed": seed, "curves": dict(read_h5ad(path).uns.get("loss_curves", {}))}
    for path, (group, method, arm, seed) in zip(snakemake.input, snakemake.params.runs)
]
plot_spatial_pretraining(loss_curve_table(records), snakemake.output[0], groups=snakemake.params.groups)
