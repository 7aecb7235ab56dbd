"""Crash-safe training checkpoints: one file per run directory, replaced atomically.

A checkpoint holds everything needed to continue a run bit for bit: model, optimizer, scheduler and
gradient-scaler states, the torch random state, the position (epoch and batch), the history and the
best weights so far. It also holds the run's *key* (a hash of its data and settings), so a checkpoint
is never resumed by a different run. Files load with ``torch.load(weights_only=True)``: no pickle.
"""

from __future__ import annotations

import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import ReviewTransferError

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1


class CheckpointError(ReviewTransferError, ValueError):
    """A checkpoint directory cannot be used; the message names it and what to do."""


@dataclass(frozen=True)
class CheckpointStore:
    """The checkpoint directory of one run, identified by ``run_key``."""

    directory: Path
    run_key: str

    @property
    def file(self) -> Path:
        return self.directory / CHECKPOINT_FILE

    def load(self) -> dict[str, Any] | None:
        """The saved state of this run, or ``None`` when there is none.

        Raises :class:`CheckpointError` if the directory holds a checkpoint of another run or an
        unreadable one, rather than silently starting over or mixing runs.
        """
        import torch

        if not self.file.is_file():
            return None
        try:
            state = torch.load(self.file, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:  # truncated or foreign file
            raise CheckpointError(
                f"{self.file}: unreadable checkpoint ({type(e).__name__}: {e}). Delete {self.directory} to start over."
            ) from None
        if state.get("format_version") != FORMAT_VERSION or state.get("run_key") != self.run_key:
            raise CheckpointError(
                f"{self.file}: checkpoint of a different run (other data, encoder or settings). Rerun the "
                f"original command to resume it, or delete {self.directory} to start this run afresh."
            )
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically: a kill leaves the previous checkpoint or the new one, never half."""
        import torch

        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{CHECKPOINT_FILE}.tmp-{os.getpid()}"
        try:
            torch.save({**state, "format_version": FORMAT_VERSION, "run_key": self.run_key}, tmp)
            os.replace(tmp, self.file)
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the checkpoint directory (after the run's result is safely saved)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def rng_state() -> dict[str, Any]:
    """The torch CPU (and CUDA, if present) random states, for dropout to continue identically."""
    import torch

    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the random states saved by :func:`rng_state`."""
    import torch

    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
