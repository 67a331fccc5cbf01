"""Logging for the workflow's scripts: to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .errors import CnnoptError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(log_path: str | Path | None = None, level: int = logging.INFO,
          attempts: str | Path | None = None, retry: bool = False) -> logging.Logger:
    """Send log records to ``log_path`` (if given) and stderr; report failures in one line.

    ``attempts`` is a second file that collects the records of every attempt of a job (Snakemake
    removes the log of a failed attempt before it retries). On a ``retry`` the lines of the
    earlier attempts are copied from it to the top of ``log_path`` and it is appended to; on a
    first attempt it starts afresh.

    An uncaught :class:`CnnoptError` is logged as ``ERROR: <message>`` without a traceback,
    so the user reads one clear line; any other exception keeps its traceback.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    earlier = ""
    if attempts:
        attempts = Path(attempts)
        attempts.parent.mkdir(parents=True, exist_ok=True)
        if retry and attempts.exists():
            earlier = attempts.read_text(encoding="utf-8")
        handlers.append(logging.FileHandler(attempts, mode="a" if retry else "w", encoding="utf-8"))
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text(earlier, encoding="utf-8")
        handlers.append(logging.FileHandler(log_path, mode="a", encoding="utf-8"))
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
