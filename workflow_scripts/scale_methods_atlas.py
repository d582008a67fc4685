"""The simulated atlas and query of Fig. 2d by method, and the HVGs every method embeds."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from pathlib import Path

import pandas as pd

from cellquery.bench.methods_scale import MethodsScaleSettings, simulate_atlas
from cellquery.io import write_table

settings = MethodsScaleSettings.from_config(snakemake.params.scale, require_methods=False)
atlas, query, genes = simulate_atlas(settings, Path(snakemake.output.atlas).parent)
assert str(atlas) == snakemake.output.atlas and str(query) == snakemake.output.query
write_table(pd.DataFrame({"gene": genes}), snakemake.output.genes)
