"""Shared by every stage: errors, atomic files, code versions, logs, threads and GPUs,
the registry of names (optimizers, architectures, roles, run ids), the paper's numbers and
the one reader of run folders.

This file imports nothing, so importing one module does not pull in the others.
"""
