"""Rule module figures.smk: the figures' names (``names``, free of matplotlib, read by the
Snakefile) and their drawing (``draw``).

This file imports nothing, so importing one module does not pull in the others.
"""
