"""The small simulated group that the peer-method tests share."""

from cellquery.data.simulate import simulate_dataset
from cellquery.hvg import select_hvg
from cellquery.preprocess import prepare_group

TYPES = ["CD14-positive monocyte", "naive B cell", "natural killer cell", "erythroblast"]
FATES = ["fate_erythroid", "fate_myeloid", "fate_lymphoid"]


def tiny_group(absent: str, ontology_key: str | None = "cell_ontology_id"):
    """Preprocessed (reference, query, HVGs): 400 + 200 cells of TYPES, ``absent`` held out of the reference."""
    ref = simulate_dataset(400, studies=["s1", "s2"], seed=1, n_genes=600, include_types=[t for t in TYPES if t != absent])
    qry = simulate_dataset(200, studies=["s3"], seed=2, n_genes=600, include_types=TYPES)
    ref.uns["values"] = qry.uns["values"] = "counts"
    ref, qry = prepare_group(
        [ref], [qry], reference_sources=["ref"], query_sources=["qry"], label_key="cell_type", batch_keys=["study"],
        ontology_key=ontology_key, continuous_keys=FATES,
    )
    genes = select_hvg(ref, batch_key="study", n_top_genes=200)["gene"].tolist()
    return ref, qry, genes
