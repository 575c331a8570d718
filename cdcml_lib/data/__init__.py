"""Layer 2, the dataset step (``notebooks/01_dataset``): corpora, the embedded benchmark, the
pair-list audit, the music features and the dataset folder that holds them.

Imports the method (Eq. 1 and the recipe in :mod:`cdcml_lib.matching`, :mod:`cdcml_lib.audio`) and
the workflow layer; never the runs, results or explore layers.
"""
