"""Logging for the workflow's scripts: to the rule's log file and to stderr.

:func:`setup` sends the script's log records (and Python ``warnings``) to the rule's log
file and to stderr. :func:`capture_stderr` (called by :func:`cnnopt.common.runtime.configure`
before a framework starts) also sends what the frameworks' C/C++ code writes to file
descriptor 2 into the log, except the lines that match a short list of known-harmless
patterns: a healthy run's log shows no framework error line, a real one stays in it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cnnopt.common.errors import CnnoptError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Set to ``0`` to keep every line the frameworks write to stderr (nothing is dropped).
FILTER_ENV = "CNNOPT_LOG_FILTER"

# The log files of the last setup(), its stderr handler and the running fd-2 filter, if any.
_state: dict = {"files": [], "handler": None, "filter": None}

# The fd-2 filter: a child process, so that it outlives a crash of the script (a fatal line,
# a segfault's traceback) and still writes what the script wrote last. Standard library
# only (it runs with -I -S); it ignores SIGINT and SIGTERM and ends when the pipe does.
_FILTER = r"""
import json, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
patterns = json.loads(sys.argv[1])
drop = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
outs = [sys.stdout.buffer]
for path in sys.argv[2:]:
    try:
        outs.append(open(path, "ab", buffering=0))
    except OSError:
        pass
for line in sys.stdin.buffer:
    if drop is not None and drop.search(line.decode("utf-8", "replace")):
        continue
    for out in outs:
        try:
            out.write(line)
            out.flush()
        except OSError:
            pass
"""


def setup(log_path: str | Path | None = None, level: int = logging.INFO,
          attempts: str | Path | None = None, retry: bool = False) -> logging.Logger:
    """Send log records to ``log_path`` (if given) and stderr; report failures in one line.

    ``attempts`` is a second file that collects the records of every attempt of a job (Snakemake
    removes the log of a failed attempt before it retries). On a ``retry`` the lines of the
    earlier attempts are copied from it to the top of ``log_path`` and it is appended to; on a
    first attempt it starts afresh.

    Python ``warnings`` become ``WARNING py.warnings`` records, so they reach the log file.
    An uncaught :class:`CnnoptError` is logged as ``ERROR: <message>`` without a traceback,
    so the user reads one clear line; any other exception keeps its traceback.
    """
    stream = _state["filter"]["stream"] if _state["filter"] else sys.stderr
    handler = logging.StreamHandler(stream)
    handlers: list[logging.Handler] = [handler]
    files: list[Path] = []
    earlier = ""
    if attempts:
        attempts = Path(attempts)
        attempts.parent.mkdir(parents=True, exist_ok=True)
        if retry and attempts.exists():
            earlier = attempts.read_text(encoding="utf-8")
        handlers.append(logging.FileHandler(attempts, mode="a" if retry else "w", encoding="utf-8"))
        files.append(attempts)
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text(earlier, encoding="utf-8")
        handlers.append(logging.FileHandler(log_path, mode="a", encoding="utf-8"))
        files.append(Path(log_path))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    _state["files"], _state["handler"] = files, handler

    def excepthook(kind, value, tb):
        log = logging.getLogger("cnnopt")
        if isinstance(value, CnnoptError):
            log.error("ERROR: %s", value)
        else:
            log.error("ERROR: %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
        logging.shutdown()

    sys.excepthook = excepthook
    return logging.getLogger("cnnopt")


def capture_stderr(drop: Sequence[str] = ()) -> bool:
    """Copy every line written to this process's file descriptor 2 into the log files of
    :func:`setup` (and on to the real stderr), except the lines that match one of the
    regular expressions ``drop``.

    File descriptor 2 is where C/C++ code (TensorFlow's and XLA's logging, CUDA) and child
    processes write, which Python's ``logging`` never sees. Call before the framework is
    imported. Does nothing (returns False) without a log file from :func:`setup` or when
    already capturing. With ``CNNOPT_LOG_FILTER=0`` every line is copied, none dropped.
    """
    if _state["filter"] is not None or not _state["files"]:
        return False
    if os.environ.get(FILTER_ENV, "1").strip().lower() in ("0", "off", "no", "false"):
        drop = ()
    for pattern in drop:
        re.compile(pattern)  # a bad pattern fails here, not silently in the filter
    sys.stderr.flush()
    saved = os.dup(2)  # the real stderr: the filter writes there, so do the log records
    read, write = os.pipe()
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _FILTER, json.dumps(list(drop)),
             *map(str, _state["files"])],
            stdin=read, stdout=saved, stderr=saved, close_fds=True)
    except OSError as err:
        for fd in (read, write, saved):
            os.close(fd)
        logging.getLogger("cnnopt").warning("stderr is not copied to the log: %s", err)
        return False
    os.close(read)
    os.dup2(write, 2)
    os.close(write)
    stream = open(os.dup(saved), "w", buffering=1, encoding="utf-8",
                  errors="backslashreplace")
    if _state["handler"] is not None:  # records already reach the file: not through fd 2
        _state["handler"].setStream(stream)
    _state["filter"] = {"child": child, "saved": saved, "stream": stream}
    atexit.register(_end_capture)
    return True


def _end_capture(timeout: float = 10) -> None:
    """Give fd 2 back to the real stderr and let the filter write its last lines."""
    capture, _state["filter"] = _state["filter"], None
    if capture is None:
        return
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(capture["saved"], 2)  # closes this process's end of the pipe: the filter ends
    try:
        capture["child"].wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # a child process still holds the pipe: leave it
        pass
