"""Rule module train.smk: the model (``models``), the optimizer and schedule
(``optimizers``), the training (``loop``: ``train()``), its batches (``batches``), its Keras
callbacks (``callbacks``: history, divergence, best epoch), its resumable per-epoch state
(``checkpoint``), the finished outputs kept for a retry (``store``), its TensorBoard event
files (``tensorboard``) and a run shared by an equal spec (``share``).

This file imports nothing, so importing one module does not pull in the others.
"""
