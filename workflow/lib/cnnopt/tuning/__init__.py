"""Rule module tuning.smk: choose each search's learning rate on validation accuracy
(``select``) and the tuning tables (``tables``).

This file imports nothing, so importing one module does not pull in the others.
"""
