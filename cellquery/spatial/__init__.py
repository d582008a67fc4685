"""Spatial cell querying: graphs over cell coordinates per section, spatial embeddings.

``graph``: radius graphs and k-hop ego-nets per section (sparse, chunked KD-tree queries).
"""
