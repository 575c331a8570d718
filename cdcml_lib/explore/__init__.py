"""Layer 4, exploring the space (``notebooks/04_embeddings``): UMAP maps, the matching gallery and
matching a user's own files.

Imports the layers below; not results.
"""
