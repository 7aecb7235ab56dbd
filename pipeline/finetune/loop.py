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
    import torch
    from tqdm.auto import tqdm

    from pipeline.encoders.device import autocast

    s = settings
    n_batches = len(batches(0))
    total_steps = s.epochs * math.ceil(n_batches / s.grad_accum)
    optimizer = torch.optim.AdamW(list(param_groups), weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_then_decay(total_steps, s.warmup_ratio))
    scaler = torch.amp.GradScaler("cuda", enabled=s.precision == "fp16" and s.device.startswith("cuda"))
    result = LoopResult()
    epoch, start_batch, loss_sum, best_score, best_state = 0, 0, 0.0, None, None
    saved = store.load() if store is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"])
        epoch, start_batch, loss_sum = saved["epoch"], saved["batch"], saved["loss_sum"]
        result.history, result.best_epoch = saved["history"], saved["best_epoch"]
        best_score, best_state = saved["best_score"], saved["best_state"]
        result.resumed_from = f"epoch {epoch + 1}, batch {start_batch}/{n_batches}" if start_batch else f"epoch {epoch}"
        logger.info("resuming from %s (checkpoint %s)", result.resumed_from, store.file)

    def checkpoint(next_epoch: int, next_batch: int, running: float) -> None:
        if store is not None:
            store.save({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
                "epoch": next_epoch, "batch": next_batch, "loss_sum": running, "history": result.history,
                "best_epoch": result.best_epoch, "best_score": best_score, "best_state": best_state,
            })

    while epoch < s.epochs and not _patience_spent(result, s.patience):
        model.train()
        epoch_batches = batches(epoch)
        last_save, epoch_start = time.monotonic(), time.perf_counter()
        bar = tqdm(total=len(epoch_batches), initial=start_batch, desc=f"epoch {epoch + 1}/{s.epochs}",
                   disable=None if s.progress else True, leave=False)  # None: no bar off a terminal, where
        # the epoch line logged below is the progress (a redirected 6-minute run once logged thousands of bars)
        for i in range(start_batch, len(epoch_batches)):
            with autocast(s.device, s.precision):
                loss = loss_fn(epoch_batches[i])
            scaler.scale(loss / s.grad_accum).backward()
            loss_sum += float(loss.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / (i + 1):.4f}", **_last_val(result))
            if (i + 1) % s.grad_accum and i + 1 < len(epoch_batches):
                continue
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if time.monotonic() - last_save >= s.checkpoint_seconds and i + 1 < len(epoch_batches):
                checkpoint(epoch, i + 1, loss_sum)
                last_save = time.monotonic()
        bar.close()
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss_sum / max(len(epoch_batches), 1)}
        if validate is not None:
            row.update({f"val_{k}": v for k, v in validate().items()})
            score = [row["val_accuracy"], -row["val_loss"]]
            if best_score is None or score > best_score:
                best_score, result.best_epoch = score, epoch + 1
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        row["seconds"] = round(time.perf_counter() - epoch_start, 2)
        result.history.append(row)
        logger.info("epoch %d/%d: %s", epoch + 1, s.epochs, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        epoch, start_batch, loss_sum = epoch + 1, 0, 0.0
        checkpoint(epoch, 0, 0.0)
    if best_state is not None:
        model.load_state_dict(best_state)
    return result


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
