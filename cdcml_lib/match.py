"""``python -m cdcml_lib.match PATH... --run RUN_DIR [--against DATASET] [-k K]``

Predict the valence and arousal of your own images and songs with a trained run and list their
best matches. The work is done by :mod:`cdcml_lib.explore.match`.

A documented exception to the layout (docs/ARCHITECTURE.md): the top of ``cdcml_lib`` holds the
method and imports nothing else of the package; this one command module sits there too, so the
command is short to type, and imports ``explore`` (it defines nothing of its own).
"""
from cdcml_lib.explore.match import main

if __name__ == "__main__":
    raise SystemExit(main())
