"""Rule module evaluate.smk: score a trained run on the test set, once (``scoring``).

This file imports nothing, so importing one module does not pull in the others.
"""
