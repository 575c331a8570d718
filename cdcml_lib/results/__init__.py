"""Layer 4, the results step (``notebooks/03_tables`` and REPORT.md): Tables 3 and 4, the claims
checklist and the report.

Imports the layers below (it reads run folders through :mod:`cdcml_lib.runs.folder`); not explore.
"""
