"""Figure: rejected query cells of one run per method, coloured by true type, with their clusters (Fig. 3b of the Cell BLAST paper)."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.novelty import gather
from cellquery.plots.novel_types import plot_novel_types

plot_novel_types(
    gather(snakemake.input.types, "novel_types"),
    gather(snakemake.input.cells, "rejected_cells"),
    snakemake.output[0],
    controls=snakemake.params.controls,
)
