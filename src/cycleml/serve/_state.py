"""What the server keeps between requests: one per app, handed to every router."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING

from ..errors import NotFoundError
from ..experiments._exposures import ExposureWriter
from ._limits import Limits
from ._logger import PredictionLogger
from ._metrics import Metrics
from ._online import LoadedModel, ModelCache, entity_features, score_frame, score_online
from ._online_store import OnlineReader
from ._schema import RequestSchema

if TYPE_CHECKING:
    from ..data import SourceSet
    from ..features import FeatureSet
    from ..project import Project
    from ..store import Store


SWITCH_INTERVAL = 0.001
"""The GIL switch interval (seconds) while the app runs (see :meth:`ServingState.start`)."""


class ServingState:
    """The serving state of one app (``app.state.serving``).

    - ``project``: the :class:`cycleml.Project` served; ``store``: its store (SQLAlchemy).
    - ``cache``: the production model per problem (:class:`ModelCache`), refreshed off the
      request path every ``refresh_seconds`` while the app runs.
    - ``logger``: the batched prediction-log writer (``logger.put(rows)`` never blocks).
    - ``exposures``: the batched writer of served experiments' exposures (same mechanics).
    - ``metrics``: the Prometheus metrics (:class:`cycleml.serve._metrics.Metrics`).
    - ``limits``: items per request and body bytes (:class:`Limits`).
    - ``online``: the online-store reader (:class:`OnlineReader`: entity predictions are one
      indexed read on a connection kept open).
    - :meth:`featureset` and ``sources_lock``: the problem's feature code over one DuckDB
      connection, kept open (reopened after ``sources_seconds`` so database sources read into
      memory are refreshed); hold the lock while using it (a connection is not thread-safe).
    """

    def __init__(
        self, project: Project, *, limits: Limits | None = None, refresh_seconds: float = 2.0
    ) -> None:
        self.project = project
        self.store: Store = project.store
        self.limits = limits or Limits.from_env()
        self.metrics = Metrics()
        self.logger = PredictionLogger(self.store, self.metrics)
        self.exposures = ExposureWriter(self.store, counters=self.metrics.exposure_writer)
        self.cache = ModelCache(project.registry, refresh_seconds, on_load=self._on_load)
        self.online = OnlineReader(self.store)
        self.refresh_seconds = refresh_seconds
        self.sources_lock = threading.RLock()
        self._sources: SourceSet | None = None
        self._sources_opened = 0.0
        self._retired: list[SourceSet] = []
        self.sources_seconds = 30.0
        self._featuresets: dict[str, FeatureSet] = {}
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._switch_interval: float | None = None

    # -- models --------------------------------------------------------------------------------

    def _on_load(self, loaded: LoadedModel) -> None:
        problem = loaded.version.problem
        loaded.extra["schema"] = RequestSchema(problem, loaded.bundle.columns, self.limits)
        self.metrics.model_version.labels(problem).set(loaded.version.version)

    def check_problem(self, problem: str) -> None:
        """NotFoundError (404) for a problem cycleml.yaml does not define."""
        if problem not in self.project.spec.problems:
            self.project._problem(problem)
            raise NotFoundError(f"unknown problem {problem!r}")  # pragma: no cover

    def model(self, problem: str) -> LoadedModel:
        return self.cache.get(problem)

    # -- features ------------------------------------------------------------------------------

    def featureset(self, problem: str) -> FeatureSet:
        from ..data import SourceSet
        from ..features import FeatureSet

        with self.sources_lock:
            if (
                self._sources is not None
                and time.monotonic() - self._sources_opened > self.sources_seconds
            ):
                # database sources are read into memory when first used: reopen now and then
                # so that features computed "as of now" see new rows. The old connection is
                # closed at the next reopen, long after the requests using it have finished.
                for old in self._retired:
                    old.close()
                self._retired = [self._sources]
                self._sources = None
                self._featuresets.clear()
            fs = self._featuresets.get(problem)
            if fs is None:
                if self._sources is None:
                    self._sources_opened = time.monotonic()
                    spec = self.project.spec
                    self._sources = SourceSet(
                        spec, self.project.path, threads=spec.training.threads
                    )
                fs = FeatureSet(self.project.spec, problem, self._sources)
                self._featuresets[problem] = fs
            return fs

    # -- scoring -------------------------------------------------------------------------------

    def score_records(
        self, problem: str, loaded: LoadedModel, records: list, started: float
    ) -> dict:
        schema: RequestSchema = loaded.extra["schema"]
        values = schema.rows(records)
        ids = schema.ids(records)
        names = schema.names
        inputs = [dict(zip(names, row, strict=True)) for row in values]
        # Scored from the dicts: the bundle's compiled scorer needs no DataFrame for a few rows.
        answer, rows = score_frame(
            problem,
            loaded,
            None,
            ids,
            list(range(len(ids))),
            entity_name=None,
            by_entity=False,
            started=started,
            inputs=inputs,
            outputs=loaded.bundle.outputs_records(inputs),
        )
        self.logger.put(rows)
        self.metrics.predictions.labels(problem, "predict").inc(len(rows))
        return answer

    def score_entities(
        self, problem: str, loaded: LoadedModel, entities: list[str], as_of, started: float
    ) -> dict:
        ids = [str(e) for e in entities]
        if as_of is None:  # the online store's JSON, scored without a frame when it applies
            fast = score_online(
                self.online, problem, loaded, ids, started, lambda m: self._compute(problem, m)
            )
            if fast is not None:
                return self._logged(problem, *fast)
        answer, rows, fresh = self.entity_answer(problem, loaded, ids, as_of, started)
        answer["features"] = fresh
        self.logger.put(rows)
        self.metrics.predictions.labels(problem, "predict").inc(len(rows))
        return answer

    def score_entities_inline(
        self, problem: str, loaded: LoadedModel, entities: list[str], as_of, started: float
    ) -> dict | None:
        """:meth:`score_entities` where it costs no wait, for the event loop (no thread hop):
        a SQLite store (a local read of tens of microseconds), no ``as_of``, every entity in the
        online store. None otherwise: the caller runs :meth:`score_entities` in a thread."""
        if as_of is not None or self.store.dialect != "sqlite":
            return None
        fast = score_online(self.online, problem, loaded, [str(e) for e in entities], started, None)
        return None if fast is None else self._logged(problem, *fast)

    def _logged(self, problem: str, answer: dict, rows: list[dict]) -> dict:
        self.logger.put(rows)
        self.metrics.predictions.labels(problem, "predict").inc(len(rows))
        return answer

    def entity_answer(
        self, problem: str, loaded: LoadedModel, ids: list[str], as_of, started: float
    ) -> tuple[dict, list[dict], dict]:
        """Score ``ids`` by their features as of ``as_of`` (the online store, else computed from
        the sources): the answer, the log rows and how fresh the features are."""
        fs = self.featureset(problem)
        frame, fresh = entity_features(fs, self.store, ids, as_of, lock=self.sources_lock)
        position = {e: i for i, e in enumerate(frame[fs.entity])}
        answer, rows = score_frame(
            problem,
            loaded,
            frame,
            ids,
            [position.get(e) for e in ids],
            entity_name=fs.entity,
            by_entity=True,
            started=started,
        )
        return answer, rows, fresh

    def _compute(self, problem: str, entities: list[str]):
        """Features as of now for entities the online store lacks (frame, freshness)."""
        fs = self.featureset(problem)
        return entity_features(fs, None, entities, None, lock=self.sources_lock, online=False)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Load every problem's production model, start the log writer and the model
        refresher (the app's startup)."""
        self.cache.refresh(list(self.project.spec.problems))
        self.cache.errors.clear()  # a problem without a model is not a reload error (see /readyz)
        self.logger.start()
        if self._switch_interval is None:
            # A request arriving while a background thread (the log writer, the model
            # refresher) runs Python code waits for the GIL up to the switch interval (5 ms by
            # default); 1 ms bounds that wait.
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        if self.online.closed:  # started again after a stop
            self.online = OnlineReader(self.store)
        if self._refresher is None:
            self._stop.clear()
            self.cache.background = True
            self._refresher = threading.Thread(
                target=self._refresh_loop, name="cycleml-model-refresh", daemon=True
            )
            self._refresher.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            self.cache.refresh()
            for problem in list(self.cache.errors):
                self.metrics.model_reload_errors.labels(problem).inc()

    def stop(self) -> None:
        """Stop the refresher, write every pending prediction-log row and exposure, close
        DuckDB."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(10)
            self._refresher = None
        self.cache.background = False
        self.logger.close()
        self.exposures.close()
        self.online.close()
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        with self.sources_lock:
            for sources in [*self._retired, self._sources]:
                if sources is not None:
                    sources.close()
            self._retired = []
            self._sources = None
            self._featuresets.clear()

    def status(self) -> dict:
        return {
            "log": self.logger.status(),
            "exposures": self.exposures.status(),
            "reload_errors": dict(self.cache.errors),
        }

    def now(self) -> float:
        return time.perf_counter()
