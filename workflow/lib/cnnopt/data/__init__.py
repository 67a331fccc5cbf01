"""Rule module data.smk: fetch the CIFAR-10 archive (``cifar10``) and the
train/validation/test splits (``splits``).

This file imports nothing, so importing one module does not pull in the others.
"""
