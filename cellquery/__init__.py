"""cellquery: the library behind the cellquery-bench Snakemake pipeline.

Submodules follow the stages of the benchmark: ``data`` (load, simulate),
``preprocess``, ``hvg``, ``embed``, ``index``, ``transfer``, ``metrics``,
``plots``. Nothing here imports Snakemake.
"""

__version__ = "0.1.0"
