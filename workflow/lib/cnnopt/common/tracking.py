"""Optional MLflow tracking: each run of the study is one MLflow run (config ``tracking``).

With ``tracking: {mlflow: <tracking URI>}`` the training logs its run there: the resolved spec
as params, each epoch's history row as metrics (step = the epoch, as history.csv's ``epoch``),
its run id, config files and git commit as tags; rule ``evaluate`` adds the test metrics. The
MLflow run is found again by its tags ``cnnopt.run_id`` and ``cnnopt.spec_sha256`` (a hash of
the spec), so a retry or a resumed training continues it and logs only the epochs after its
last logged step, and ``evaluate`` logs into it. A training that starts afresh (no epoch
restored) on a run whose curves are already logged gets a new MLflow run: the newest one is
the run's. Without a ``mlflow`` URI nothing here imports mlflow (it is imported inside the
functions only; ``requirements-mlflow.txt`` installs it). A store that cannot be reached, or
any MLflow error, is one warning line: tracking is off for the rest of the job, which goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping

import pandas as pd

from cnnopt.common import files

log = logging.getLogger("cnnopt.common.tracking")

#: The history columns logged as per-epoch metrics (step = the epoch).
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
#: The training's summary metrics logged at its end, and evaluate's test metrics.
SUMMARY_METRICS = ("best_val_accuracy", "final_val_accuracy", "best_epoch", "convergence_epoch",
                   "train_seconds", "images_per_second", "epochs_run")
TEST_METRICS = ("test_accuracy", "test_loss", "test_accuracy_single_view",
                "inference_images_per_second")
RUN_TAG, SPEC_TAG = "cnnopt.run_id", "cnnopt.spec_sha256"
#: Defaults set (where the environment leaves them unset) before mlflow is imported: a store
#: that does not answer costs seconds, not MLflow's minutes of retries.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


def flat(spec: Mapping, prefix: str = "") -> dict[str, bool | int | float | str]:
    """``spec`` as one level of ``a.b`` keys: numbers, booleans and strings stay, lists and
    the rest become JSON text, None is left out (params of MLflow, HParams of TensorBoard)."""
    out: dict = {}
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flat(value, f"{name}.")
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        elif value is not None:
            out[name] = json.dumps(value, sort_keys=True)
    return out


def spec_hash(spec: Mapping) -> str:
    """What an MLflow run of ``spec`` is recognised by (``shared_with`` left out: run.json of a
    shared run carries it, the spec of its training does not)."""
    own = {k: v for k, v in spec.items() if k != "shared_with"}
    return hashlib.sha256(json.dumps(own, sort_keys=True).encode()).hexdigest()


def tracker(settings: object, spec: Mapping) -> MlflowRun | None:
    """The MLflow run of ``spec`` under ``settings`` (the ``tracking`` config: a mapping, or
    an object with its keys as attributes, as the rules pass it), not yet opened; None when
    tracking is off (no ``mlflow`` URI)."""
    settings = _settings(settings)
    if not settings.get("mlflow"):
        return None
    return MlflowRun(settings["mlflow"], settings.get("experiment") or "cnnopt", spec,
                     settings.get("configfiles") or ())


class MlflowRun:
    """One study run's MLflow run. Every method turns an error into one warning (the first
    only) and then does nothing: tracking never fails the job.

    Called as the training's TensorBoard event files are (:mod:`cnnopt.train.tensorboard`):
    :meth:`start` with the history recorded so far, :meth:`log_epochs` after each epoch,
    :meth:`end` at the end.
    """

    def __init__(self, uri: str, experiment: str, spec: Mapping, configfiles: Iterable[str] = ()):
        self.uri, self.experiment, self.spec = uri, experiment, dict(spec)
        self.configfiles = [str(f) for f in configfiles]
        self.client = self.run_id = None
        self.logged: dict[str, int] = {}  # per metric, the last step logged

    def start(self, rows: Iterable[Mapping]) -> None:
        """Find (by its tags) or create the MLflow run, log the spec and tags, then the epochs
        of ``rows`` (the history so far) after its last logged step. Without ``rows`` (a
        training from epoch 1) a run that has logged epochs is an earlier training's: a new
        MLflow run is created, and being the newest, it is the one found from then on."""
        rows = list(rows)
        self.guard(self.open, fresh=not rows)
        self.log_epochs(rows)

    def guard(self, method, *args, **kwargs) -> None:
        """Call ``method``; on any error warn (once) and switch tracking off."""
        if self.uri is None:
            return
        retries = logging.getLogger("urllib3.connectionpool")  # a line per retry: one is enough
        level = retries.level
        retries.setLevel(logging.ERROR)
        try:
            method(*args, **kwargs)
        except Exception as error:  # noqa: BLE001  (any MLflow failure: warn once, go on)
            first = (str(error).strip().splitlines() or [""])[0][:300]
            if isinstance(error, ImportError):
                first += " (pip install -r requirements-mlflow.txt)"
            log.warning("MLflow tracking at %s is off for this job: %s: %s", self.uri,
                        type(error).__name__, first)
            self.uri = self.client = None
        finally:
            retries.setLevel(level)

    def open(self, fresh: bool) -> None:
        """Connect, find or create the MLflow run (see :meth:`start`), tag it, log its params."""
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        if self.uri.startswith("file:") or "://" not in self.uri:
            # MLflow 3 refuses its file store unless asked; a file: URI asks for it
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        experiment = _experiment(client, self.experiment)
        run_id, spec_hash_ = self.spec["run_id"], spec_hash(self.spec)
        found = client.search_runs(
            [experiment], f"tags.`{RUN_TAG}` = '{run_id}' and tags.`{SPEC_TAG}` = '{spec_hash_}'",
            max_results=1, order_by=["attributes.start_time DESC"])
        run = found[0] if found else None
        if run is not None:
            self.run_id = run.info.run_id
            self.logged = {key: _last_step(client, self.run_id, key) for key in EPOCH_METRICS}
            if fresh and any(step > 0 for step in self.logged.values()):
                run = None  # those curves are an earlier training's: this one is new
        if run is None:
            run = client.create_run(experiment, run_name=run_id, tags={RUN_TAG: run_id,
                                                                       SPEC_TAG: spec_hash_})
            self.run_id, self.logged = run.info.run_id, {}
        elif run.info.status != "RUNNING":
            client.update_run(self.run_id, status="RUNNING")
        self.client = client
        self._log_identity(run)

    def _log_identity(self, run) -> None:
        """Tag the run (run id, config files, git commit, the spec's names) and log the spec's
        params that it does not hold yet (MLflow refuses to change a param)."""
        from mlflow.entities import Param, RunTag

        from cnnopt.common.provenance import DIRTY, code_commit

        tags = {"cnnopt.config": ", ".join(self.configfiles) or "-",
                **{f"cnnopt.{k}": str(self.spec[k])
                   for k in ("optimizer", "variant", "seed", "role", "shared_with")
                   if k in self.spec}}
        if commit := code_commit():  # the cnnopt code's, where it runs from a clone
            tags |= {"cnnopt.git_commit": commit,
                     "mlflow.source.git.commit": commit.removesuffix(DIRTY)}
        have = run.data.params
        params = [Param(k, str(v)[:6000]) for k, v in flat(self.spec).items() if k not in have]
        for i in range(0, max(len(params), 1), 100):  # MLflow takes 100 params a batch
            self.client.log_batch(self.run_id, params=params[i:i + 100],
                                  tags=[RunTag(k, v) for k, v in tags.items()] if i == 0 else [])

    def log_epochs(self, rows: Iterable[Mapping]) -> None:
        """Log the history ``rows`` whose epochs are after each metric's last logged step."""
        if self.client is not None:
            self.guard(self._log_epochs, list(rows))

    def _log_epochs(self, rows: list[Mapping]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = []
        for row in rows:
            step = int(row["epoch"])
            for key in EPOCH_METRICS:
                value = row.get(key)
                if value is not None and step > self.logged.get(key, 0) and _number(value):
                    metrics.append(Metric(key, float(value), now, step))
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])
        for metric in metrics:
            self.logged[metric.key] = max(self.logged.get(metric.key, 0), metric.step)

    def log_summary(self, values: Mapping, keys: Iterable[str]) -> None:
        """Log the ``keys`` of ``values`` (a run's metrics, an evaluation) at step 0, each
        unless the run already holds that value."""
        if self.client is not None:
            self.guard(self._log_summary, values, tuple(keys))

    def _log_summary(self, values: Mapping, keys: tuple[str, ...]) -> None:
        from mlflow.entities import Metric

        have = self.client.get_run(self.run_id).data.metrics
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(values[k]), now, 0) for k in keys
                   if _number(values.get(k)) and have.get(k) != float(values[k])]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def end(self, status: str = "FINISHED", summary: Mapping | None = None) -> None:
        """Log the training's ``summary`` metrics (its metrics.json), if given, and mark the
        run ``status`` (FINISHED, KILLED, FAILED); a retry marks it RUNNING again."""
        if summary is not None:
            self.log_summary(summary, SUMMARY_METRICS)
        if self.client is not None:
            self.guard(lambda: self.client.set_terminated(self.run_id, status))


def log_evaluation(settings: object, spec_path: str | os.PathLike,
                   history_path: str | os.PathLike, evaluation: Mapping) -> None:
    """Log rule ``evaluate``'s test metrics into the run's MLflow run (tracking on only).

    ``spec_path`` and ``history_path`` are the run's run.json and history.csv: the spec the
    run was trained with (a tuned run's chosen rate, a shared run's ``shared_with``) finds its
    MLflow run, and the epochs the training did not log (a shared run's, or all of them when
    the store was unreachable then) are logged first.
    """
    if not _settings(settings).get("mlflow"):
        return
    run = tracker(settings, files.read_json(spec_path))
    if run is None:
        return
    run.start(pd.read_csv(history_path).to_dict("records"))  # an empty cell: NaN, not logged
    best = evaluation.get("best_model") or {}
    run.log_summary(evaluation | {f"best_model_{k}": v for k, v in best.items()},
                    TEST_METRICS + ("best_model_test_accuracy", "best_model_test_loss"))
    run.end("FINISHED")


def _settings(settings: object) -> dict:
    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        return dict(settings)
    return dict(vars(settings))


def _experiment(client, name: str) -> str:
    """The id of experiment ``name``, created on first use (by whichever job comes first)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # noqa: BLE001  (a job beside this one created it first)
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _last_step(client, run_id: str, key: str) -> int:
    return max((m.step for m in client.get_metric_history(run_id, key)), default=0)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
