"""Meta cells of a reduced index: chosen from the reference embedding alone, summarising their members' labels and fates."""
import sys

sys.stderr = open(snakemake.log[0], "w")

from cellquery.index.reduce import bytes_per_cell, reduce_reference, reduce_spec, save_meta_cells
from cellquery.io import atomic_path, read_embedding, read_obs
from cellquery.settings import GroupSettings

group = GroupSettings.from_config(snakemake.params.group)
spec = reduce_spec(snakemake.params.index)
reference, obs = read_embedding(snakemake.input.reference), read_obs(snakemake.input.reference)
keys = list(group.continuous_keys)
meta = reduce_reference(
    reference,
    obs[group.label_key].astype(str).to_numpy(),
    method=spec["method"],
    n=min(spec["n"], len(reference)),
    seed=snakemake.params.random_seed,
    fates=obs[keys].to_numpy(float) if keys else None,
)
print(f"{meta.n} meta cells of {len(reference)} reference cells, {bytes_per_cell(meta):.2f} bytes per cell", file=sys.stderr)
with atomic_path(snakemake.output.meta_cells) as tmp:
    save_meta_cells(tmp, meta, keys)
