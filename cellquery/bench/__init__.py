"""Scale benchmark of nearest-neighbour search on synthetic atlas-sized cell embeddings.

``synthetic``: chunked, seeded generator of clustered embeddings (Zipf-sized types, rare
and unseen types, trajectories). ``knn``: build an index in chunks, time queries, score
recall and label agreement against exact search (``python -m cellquery.bench.knn``).
``scale``: index presets, the benchmark's settings and defaults (``ScaleSettings``), the
config check and the memory / time requests of its Snakemake jobs. ``figures``: the
gathered table and its figures. ``rejection``: throughput and rejection of calibrated
transfer against plain voting (``python -m cellquery.bench.rejection``). ``transfer``:
one-shot label transfer (build + search + vote) against CellMapper and the GEMM bound of
exact search, in one process (``python -m cellquery.bench.transfer``).
``backed``: peak memory and wall time of the chunked preprocess -> HVG -> PCA of atlas-sized
groups on a simulated counts h5ad written in pieces (``python -m cellquery.bench.backed``).
"""
