"""Logging for the workflow's scripts: to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .errors import CnnoptError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(log_path: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send log records to ``log_path`` (if given) and stderr; report failures in one line.

    An uncaught :class:`CnnoptError` is logged as ``ERROR: <message>`` without a traceback,
    so the user reads one clear line; any other exception keeps its traceback.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)

    def excepthook(kind, value, tb):
        log = logging.getLogger("cnnopt")
        if isinstance(value, CnnoptError):
            log.error("ERROR: %s", value)
        else:
            log.error("ERROR: %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
        logging.shutdown()

    sys.excepthook = excepthook
    return logging.getLogger("cnnopt")
