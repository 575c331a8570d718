"""CDCML research kit: the method on top, the study's machinery in layers below it.

The method (Zhao et al. 2020 and Verma et al. 2019, told in ``docs/METHOD.md``) is these modules,
which import nothing else of the package:

- :mod:`cdcml_lib.audio`     - the clip conventions: 22,050 Hz, 2 s, int16 scale;
- :mod:`cdcml_lib.matching`  - Eq. 1 (the matching score) and the IMEMNet pair recipe;
- :mod:`cdcml_lib.nets`      - the image and music branches, CDCML and the baselines;
- :mod:`cdcml_lib.losses`    - Eqs. 2-7 and the baselines' objectives;
- :mod:`cdcml_lib.metrics`   - the paper's metrics and the retrieval metrics.

Below them, one subpackage per study step (``docs/ARCHITECTURE.md``, "Layers"): ``workflow``
(paths, parameters, Papermill), ``data`` (01_dataset), ``runs`` (02_train), ``results``
(03_tables, the report) and ``explore`` (04_embeddings, own files). Imports go down only.
"""
