"""Scale benchmark of nearest-neighbour search on synthetic atlas-sized cell embeddings.

``synthetic``: chunked, seeded generator of clustered embeddings (Zipf-sized types, rare
and unseen types, trajectories). ``knn``: build an index in chunks, time queries, score
recall and label agreement against exact search (``python -m cellquery.bench.knn``).
"""
