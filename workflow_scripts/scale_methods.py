"""Fig. 2d by method: every method's rows (rule scale_method) in one table, in the config's order."""
import sys

sys.stderr = open(snakemake.log[0], "w")

import pandas as pd

from cellquery.bench.methods_scale import COLUMNS
from cellquery.io import read_table, write_table

write_table(pd.concat([read_table(path, required=COLUMNS) for path in snakemake.input], ignore_index=True), snakemake.output[0])
