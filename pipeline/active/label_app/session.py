"""The state behind the labelling page: labels so far, the current model, who is looking at what.

One lock serialises every request, so two tabs never write the same text twice or lose a label: a
text shown in one tab is leased to it (for ``LEASE_SECONDS``) and not offered to another, and a
label for a text that is already labelled is not written again. Every label is written to the
labels file (fsynced) before the answer; then the model is refitted, the cross-validated accuracy
re-estimated and the next text chosen by the strategy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.active.strategies import Known, cv_estimate, nearest_distance, propose, query_model, typicality, unit_rows
from pipeline.active.label_app.store import LabelFile

if TYPE_CHECKING:
    from pipeline.active.labelling import Workspace

LEASE_SECONDS = 600.0
CHOICES = ("negative", "positive", "skip")


@dataclass(frozen=True)
class LabelJob:
    """What ``label`` serves: the texts of ``source`` (read with ``source_options`` by the one reader), labelled
    into ``labels_file`` (skips into ``labels_file.skipped``), proposed by ``strategy`` with the ``head``
    refitted on the vectors of ``encoder`` (a spec, under backend auto; through the cache in ``cache_dir``)."""

    source: str
    labels_file: str
    encoder: str
    strategy: str
    head: str = "logreg"
    seed: int = 0
    cache_dir: str | Path | None = None
    source_options: dict[str, Any] = field(default_factory=dict)
    take_labels: bool = False  # start from the labels SOURCE's label column holds, written into ``labels_file``


def open_session(job: LabelJob, echo: Callable[[str], None] = print) -> LabelSession:
    """The :class:`LabelSession` of ``job``: the labels and skips so far (a restart resumes from them),
    every text's vector, the first model; ``echo`` says how the encoder runs."""
    from pipeline.active.labelling import held_line, labelling_encoder, read_source, with_held, workspace
    from pipeline.data.dataset import read_labels

    ds, held = read_source(job.source, job.source_options)
    store, skips = LabelFile(job.labels_file), LabelFile(job.labels_file + ".skipped")
    # records() first cuts a line a kill left partial and refuses a bad line, before the encoder loads; the file
    # may use the site's own names (oui/non)
    so_far = read_labels(job.labels_file, positive=job.source_options.get("positive")) if store.records() else None
    if held is not None:
        taken = None
        if job.take_labels:  # into the labels file, so a restart and `fit FILE` have them; SOURCE is never written
            so_far, added, differ = with_held(held, so_far)
            store.extend([{"text": t, "label": so_far.label_names[y]} for t, y in added])
            taken = (added, differ, f" into {job.labels_file}")
        echo(held_line(job.source, job.source_options.get("label_col", "label"), held, taken))
    skipped_texts = {r["text"] for r in skips.records()}
    encoder, lines = labelling_encoder(job.encoder, ds.texts, job.cache_dir, job.source_options)
    for line in lines:
        echo(line)
    ws = workspace(ds, so_far, encoder, job.cache_dir, source_options=job.source_options)
    row_of = {t: i for i, t in enumerate(ws.texts[: ws.n_source])}
    skipped = {row_of[t] for t in skipped_texts if t in row_of}
    return LabelSession(ws, skipped, (store, skips), job.strategy, seed=job.seed, head=job.head)


class LabelSession:
    """Labels, skips and leases over a workspace's texts (rows ``[0, n_source)`` may be proposed) and their vectors."""

    def __init__(self, ws: Workspace, skipped: set[int], files: tuple[LabelFile, LabelFile], strategy: str,
                 seed: int = 0, head: str = "logreg"):
        self.texts, self.X, self.n_source = ws.texts, ws.X, ws.n_source
        self.labels, self.label_names, self.skipped = dict(ws.labels), tuple(ws.label_names), set(skipped)
        (self.store, self.skips), self.strategy, self.head = files, strategy, head
        self.rng = np.random.default_rng(seed)
        self.U = unit_rows(self.X)
        self.typical = typicality(self.U)
        self.lock = threading.Lock()
        self.leases: dict[str, tuple[int, float, dict[str, Any]]] = {}  # client -> (row, when, how it was chosen)
        self.actions: dict[str, list[tuple[str, int]]] = {}  # client -> its labels and skips, for undo
        self.history: dict[int, dict[str, Any]] = {}  # labels so far -> accuracy estimate
        self._refit(full=True)

    def counts(self) -> dict[str, int]:
        """Labels so far per class name."""
        values = list(self.labels.values())
        return {name: values.count(i) for i, name in enumerate(self.label_names)}

    # ------------------------------------------------------------------------------------------ model
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.fromiter(self.labels, dtype=np.int64, count=len(self.labels))
        return rows, np.fromiter(self.labels.values(), dtype=np.int64, count=len(self.labels))

    def _refit(self, full: bool = False, added: int | None = None) -> None:
        """Refit the model and the estimate; update distances to the labelled texts (all of them when ``full``)."""
        rows, y = self._arrays()
        if full:
            self.distance = nearest_distance(self.U, rows)
        elif added is not None:
            np.minimum(self.distance, np.clip(1.0 - self.U @ self.U[added], 0.0, 2.0), out=self.distance)
        self.model = query_model(self.X, rows, y, head=self.head)
        estimate = cv_estimate(self.X[rows], y, head=self.head)
        n = len(rows)
        self.history = {k: v for k, v in self.history.items() if k < n}
        if estimate is not None:
            self.history[n] = asdict(estimate)

    # ------------------------------------------------------------------------------------------ views
    def _leased_elsewhere(self, client: str) -> list[int]:
        now = time.monotonic()
        return [row for c, (row, when, _) in self.leases.items() if c != client and now - when < LEASE_SECONDS]

    def _free(self, row: int) -> bool:
        return row not in self.labels and row not in self.skipped

    def _item(self, client: str) -> dict[str, Any] | None:
        """The text leased to ``client`` (a new pick when it holds none that is still free)."""
        lease = self.leases.get(client)
        if lease is None or not self._free(lease[0]):
            rows, y = self._arrays()
            exclude = [*self.skipped, *self._leased_elsewhere(client), *range(self.n_source, len(self.texts))]
            picks = propose(self.strategy, self.X, rows, y, 1, rng=self.rng, exclude=exclude, head=self.head,
                            known=Known(U=self.U, model=self.model, distance=self.distance, typical=self.typical))
            if not picks:
                self.leases.pop(client, None)
                return None
            s = picks[0]
            guess = None if s.p_positive is None else self.label_names[int(s.p_positive >= 0.5)]
            lease = (s.index, time.monotonic(), {"p_positive": s.p_positive, "guess": guess, "reason": s.reason})
            self.leases[client] = lease
        row, _, how = lease
        return {"row": row, "text": self.texts[row], **how}

    def _state(self, client: str, note: str = "") -> dict[str, Any]:
        rows, y = self._arrays()
        answered = int((rows < self.n_source).sum()) + sum(1 for r in self.skipped if r not in self.labels)
        return {
            "item": self._item(client),
            "counts": {name: int((y == i).sum()) for i, name in enumerate(self.label_names)},
            "skipped": len(self.skipped),
            "unlabelled": self.n_source - answered,
            "strategy": self.strategy,
            "history": [self.history[n] for n in sorted(self.history)],
            "can_undo": bool(self.actions.get(client)),
            "note": note,
        }

    # ------------------------------------------------------------------------------------------ actions
    def view(self, client: str) -> dict[str, Any]:
        """The client's current text and the counts, estimate and learning curve."""
        with self.lock:
            return self._state(client)

    def answer(self, client: str, row: int, choice: str) -> dict[str, Any]:
        """Record ``choice`` (negative, positive or skip) for ``row``, then return the next state."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}.")
        with self.lock:
            if not 0 <= row < self.n_source:
                raise ValueError(f"row {row} is not a text of SOURCE.")
            self.leases.pop(client, None)
            if not self._free(row):  # labelled or skipped meanwhile (another tab): write nothing twice
                return self._state(client, note="already answered in another tab; not written again")
            if choice == "skip":
                self.skips.append({"text": self.texts[row]})
                self.skipped.add(row)
            else:
                value = CHOICES.index(choice)
                self.store.append({"text": self.texts[row], "label": self.label_names[value]})
                self.labels[row] = value
                self._refit(added=row)
            self.actions.setdefault(client, []).append((choice, row))
            return self._state(client, note=f"saved: {choice}")

    def undo(self, client: str) -> dict[str, Any]:
        """Take back the client's last label or skip (from the file too) and show that text again."""
        with self.lock:
            done = self.actions.get(client)
            if not done:
                return self._state(client, note="nothing to undo in this tab")
            choice, row = done.pop()
            if choice == "skip":
                self.skips.remove_last(self.texts[row])
                self.skipped.discard(row)
            else:
                self.store.remove_last(self.texts[row])
                del self.labels[row]
                self._refit(full=True)
            p = None if self.model is None else float(self.model.predict_proba(self.X[row:row + 1])[0, 1])
            guess = None if p is None else self.label_names[int(p >= 0.5)]
            self.leases[client] = (row, time.monotonic(), {"p_positive": p, "guess": guess, "reason": f"undone: was {choice}"})
            return self._state(client, note=f"undone: {choice}")
