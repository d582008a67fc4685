"""Spatial cell querying: graphs over cell coordinates per section, spatial embeddings.

``graph``: radius graphs and k-hop ego-nets per section (sparse, chunked KD-tree queries).
``embed``: neighbourhood-averaged expression. ``gnn``: GCN / GAT network with masked-expression
pretraining and cell-type fine-tuning (plain torch). ``niche``: niches from the neighbourhood
composition of cell types, scored by ARI.
"""
