"""Layer 1, the workflow: repository paths, parameter files and running notebooks with Papermill.

Used by every step; imports only the method layer (and nothing of it today).
"""
