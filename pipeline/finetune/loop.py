"""The resumable training loop both fine-tuning methods share.

AdamW with a linear warmup then linear decay, gradient accumulation and clipping, mixed precision
(fp16 autocast with a gradient scaler on CUDA, bf16 autocast on CPUs with native bf16), optional early
stopping on a validation score with the best weights restored, and a checkpoint after every epoch
(and mid-epoch at most every ``checkpoint_seconds``) from which a killed run continues identically.
Batches come from a function of the epoch number, so the data order is the same after a resume.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.finetune.checkpoint import CheckpointStore, rng_state, set_rng_state

logger = logging.getLogger("pipeline.finetune")


@dataclass(frozen=True)
class LoopSettings:
    """How to run the loop (the optimisation recipe, not the model)."""

    epochs: int
    grad_accum: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    patience: int | None = None  # epochs without a better validation score before stopping; None: never
    device: str = "cpu"
    precision: str = "fp32"  # fp32 | fp16 | bf16 (autocast)
    progress: bool = True
    checkpoint_seconds: float = 300.0


@dataclass
class LoopResult:
    """What happened: one row per epoch, the epoch whose weights were kept (``None``: the last), and
    where the run resumed (``None``: it started afresh)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    resumed_from: str | None = None


def run_loop(
    model: Any,
    param_groups: Sequence[dict[str, Any]],
    batches: Callable[[int], list[Any]],
    loss_fn: Callable[[Any], Any],
    settings: LoopSettings,
    store: CheckpointStore | None = None,
    validate: Callable[[], dict[str, float]] | None = None,
) -> LoopResult:
    """Train ``model`` in place and return the :class:`LoopResult`.

    ``batches(epoch)`` must return the same batches for the same epoch on every call; ``loss_fn(batch)``
    returns the scalar loss; ``validate()`` returns ``{"loss", "accuracy"}`` on held-out data (higher
    accuracy wins, lower loss breaks ties). With a ``store`` the run checkpoints and resumes.
    """
    loop = _Loop(model, param_groups, settings, len(batches(0)), store)
    loop.resume()
    while loop.epoch < settings.epochs and not _patience_spent(loop.result, settings.patience):
        model.train()
        epoch_batches = batches(loop.epoch)
        epoch_start = time.perf_counter()
        loop.train_epoch(epoch_batches, loss_fn)
        loop.end_epoch(len(epoch_batches), validate, epoch_start)
    if loop.best_state is not None:
        model.load_state_dict(loop.best_state)
    return loop.result


class _Loop:
    """One run's optimiser, learning-rate schedule and gradient scaler, and where it stands: epoch, batch,
    running loss, best score and weights. All of it goes into each checkpoint."""

    def __init__(self, model: Any, param_groups: Sequence[dict[str, Any]], settings: LoopSettings, n_batches: int,
                 store: CheckpointStore | None) -> None:
        import torch

        s = settings
        self.model, self.s, self.store, self.n_batches = model, settings, store, n_batches
        total_steps = s.epochs * math.ceil(n_batches / s.grad_accum)
        self.optimizer = torch.optim.AdamW(list(param_groups), weight_decay=s.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _warmup_then_decay(total_steps, s.warmup_ratio))
        self.scaler = torch.amp.GradScaler("cuda", enabled=s.precision == "fp16" and s.device.startswith("cuda"))
        self.result = LoopResult()
        self.epoch, self.start_batch, self.loss_sum = 0, 0, 0.0
        self.best_score: list[float] | None = None
        self.best_state: dict[str, Any] | None = None

    def resume(self) -> None:
        """Continue from the store's checkpoint, if it holds one of this run."""
        saved = self.store.load() if self.store is not None else None
        if saved is None:
            return
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"])
        self.epoch, self.start_batch, self.loss_sum = saved["epoch"], saved["batch"], saved["loss_sum"]
        self.result.history, self.result.best_epoch = saved["history"], saved["best_epoch"]
        self.best_score, self.best_state = saved["best_score"], saved["best_state"]
        self.result.resumed_from = (f"epoch {self.epoch + 1}, batch {self.start_batch}/{self.n_batches}"
                                    if self.start_batch else f"epoch {self.epoch}")
        logger.info("resuming from %s (checkpoint %s)", self.result.resumed_from, self.store.file)

    def checkpoint(self, next_epoch: int, next_batch: int, running: float) -> None:
        """Save everything needed to continue at batch ``next_batch`` of epoch ``next_epoch``."""
        if self.store is not None:
            self.store.save({
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng_state(),
                "epoch": next_epoch, "batch": next_batch, "loss_sum": running, "history": self.result.history,
                "best_epoch": self.result.best_epoch, "best_score": self.best_score, "best_state": self.best_state,
            })

    def train_epoch(self, epoch_batches: list[Any], loss_fn: Callable[[Any], Any]) -> None:
        """The batches of the current epoch from ``start_batch`` on, checkpointing every ``checkpoint_seconds``."""
        from pipeline.encoders.device import autocast
        from pipeline.progress import progress_bar

        s = self.s
        last_save = time.monotonic()
        # off a terminal no bar: a line now and then, and the epoch line logged by end_epoch
        bar = progress_bar(len(epoch_batches), f"epoch {self.epoch + 1}/{s.epochs}", "batch",
                           None if s.progress else False, leave=False, initial=self.start_batch)
        for i in range(self.start_batch, len(epoch_batches)):
            with autocast(s.device, s.precision):
                loss = loss_fn(epoch_batches[i])
            self.scaler.scale(loss / s.grad_accum).backward()
            self.loss_sum += float(loss.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{self.loss_sum / (i + 1):.4f}", **_last_val(self.result))
            if (i + 1) % s.grad_accum and i + 1 < len(epoch_batches):
                continue
            self._step()
            if time.monotonic() - last_save >= s.checkpoint_seconds and i + 1 < len(epoch_batches):
                self.checkpoint(self.epoch, i + 1, self.loss_sum)
                last_save = time.monotonic()
        bar.close()

    def _step(self) -> None:
        """One optimiser step on the accumulated gradients (unscaled, clipped), then the schedule."""
        import torch

        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.s.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def end_epoch(self, n_batches: int, validate: Callable[[], dict[str, float]] | None, epoch_start: float) -> None:
        """Record the epoch (validation score, best weights so far), log its line, move on and checkpoint."""
        row: dict[str, Any] = {"epoch": self.epoch + 1, "train_loss": self.loss_sum / max(n_batches, 1)}
        if validate is not None:
            row.update({f"val_{k}": v for k, v in validate().items()})
            score = [row["val_accuracy"], -row["val_loss"]]
            if self.best_score is None or score > self.best_score:
                self.best_score, self.result.best_epoch = score, self.epoch + 1
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        row["seconds"] = round(time.perf_counter() - epoch_start, 2)
        self.result.history.append(row)
        logger.info("epoch %d/%d: %s", self.epoch + 1, self.s.epochs,
                    ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        self.epoch, self.start_batch, self.loss_sum = self.epoch + 1, 0, 0.0
        self.checkpoint(self.epoch, 0, 0.0)


def _patience_spent(result: LoopResult, patience: int | None) -> bool:
    """True when the last ``patience`` epochs brought no better validation score."""
    if patience is None or result.best_epoch is None:
        return False
    return len(result.history) - result.best_epoch >= patience


def _last_val(result: LoopResult) -> dict[str, str]:
    last = result.history[-1] if result.history else {}
    return {"val_acc": f"{last['val_accuracy']:.3f}"} if "val_accuracy" in last else {}


def _warmup_then_decay(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """Learning-rate factor: linear rise over the first ``warmup_ratio`` of steps, then linear decay to 0."""
    warmup = max(1, round(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor
