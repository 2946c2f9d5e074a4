"""The pure reconciliation engine: value types, FIFO lot matching, comparison, severity, policy and planning.

Nothing here performs I/O or reads a clock: books and snapshots come in as values, time comes in as an
argument, and a plan (data) goes out. The engine imports only the standard library.
"""
