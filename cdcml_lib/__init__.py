"""CDCML research kit."""
