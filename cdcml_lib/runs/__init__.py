"""Layer 3, the training step (``notebooks/02_train``): the run folder, the loaders, the training
loop, data parallelism and the launcher.

Imports the method, the workflow and the data layers; never results or explore.
"""
