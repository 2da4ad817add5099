"""The one training loop of the NeuS stages (docs/method.md §2.3, §3.9) and their checkpoint folders.

Stage 2 (`init.fit_neus_init`, both of its phases) and stage 3 (`texture.train_texture`) differ only in their
step function; the loop owns what they share: the warm-up + cosine learning rate, the progress bar, the
validation and progress-callback cadence, and when to checkpoint. What a checkpoint holds (model, optimiser,
step, RNG states) is the caller's `save(step)`; `Checkpoints` says where it goes and finds the one to resume.
Torch is imported only when a checkpoint is loaded, so the command line can name `TrainingDiverged` cheaply.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from ..io import atomic_save_torch
from .params import ScheduleParams
from .schedule import lr_factor, set_lr

_NUMBERED = re.compile(r"ckpt_(\d+)\.pt")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the stage stopped without checkpointing the bad state (the message names
    the step and the fix)."""

    def _render_traceback_(self):
        return [f"\x1b[31mTrainingDiverged\x1b[0m: {self}"]


class Checkpoints:
    """A stage's checkpoint files in `folder`: one `ckpt.pt` overwritten at every save (`numbered=False`, stage 2)
    or one `ckpt_XXXXXX.pt` per save, named by step (`numbered=True`, stage 3: the history is kept).

    Writes are atomic (temp file + rename), so an interrupted save never leaves a half-written checkpoint."""

    def __init__(self, folder, numbered: bool):
        self.folder, self.numbered = Path(folder), numbered

    def path(self, step: int) -> Path:
        return self.folder / (f"ckpt_{step:06d}.pt" if self.numbered else "ckpt.pt")

    def candidates(self) -> list[Path]:
        """Checkpoint files to resume from, newest first."""
        if not self.numbered:
            path = self.folder / "ckpt.pt"
            return [path] if path.is_file() else []
        found = [(int(m.group(1)), p) for p in self.folder.glob("ckpt_*.pt") if (m := _NUMBERED.fullmatch(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def latest(self) -> Path | None:
        """The checkpoint to resume from (the highest step when numbered), or None."""
        found = self.candidates()
        return found[0] if found else None

    def load(self, device) -> dict | None:
        """The newest checkpoint that loads (tensors on `device`), or None when there is none.

        A checkpoint that fails to load (truncated, corrupt) is renamed `<name>.damaged` with a warning naming
        it, and the next older one is tried (stage 2 keeps a single file, so it then starts afresh)."""
        import torch

        for path in self.candidates():
            try:
                return torch.load(path, map_location=device, weights_only=False)
            except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError … for damaged files
                damaged = path.with_name(path.name + ".damaged")
                os.replace(path, damaged)
                warnings.warn(f"checkpoint {path} cannot be read ({type(err).__name__}: {str(err)[:120]}); moved it "
                              f"to {damaged.name} and resuming from the previous checkpoint, if any", stacklevel=2)
        return None

    def save(self, payload: dict, step: int) -> Path:
        return atomic_save_torch(payload, self.path(step))


def train(step_fn: Callable[[int], dict], optimizer: torch.optim.Optimizer, schedule: ScheduleParams, step: int = 0,
          *, save: Callable[[int], None] | None = None, validate: Callable[[int], torch.Tensor] | None = None,
          on_progress: Callable | None = None, report_every: int = 0, desc: str = "training",
          progress: bool = True, postfix: tuple[str, ...] = ("loss",), postfix_every: int = 10) -> int:
    """Run `step_fn` from `step` until `schedule.iterations`; return the final step.

    Per step: the learning rate of every param group is set to lr·`lr_factor` (warm-up, then cosine to
    learning_rate_alpha at end_iter), `step_fn(step)` does one optimisation step and returns its losses
    (dict of floats); then, with s = step + 1:
      - every `schedule.val_every` steps `validate(s)` renders (and writes) the validation image;
      - `on_progress(s, losses, image)` is called with that image, and with image None every `report_every`
        steps (0 = only at validations);
      - every `schedule.save_every` steps and at the last step `save(s)` writes the checkpoint.
    The progress bar (tqdm, hidden when `progress` is False) shows the `postfix` losses every `postfix_every`.
    A `step` ≥ iterations (a finished run being resumed) returns at once.

    Raises: TrainingDiverged as soon as a loss is NaN or ±inf; nothing is saved after the last good checkpoint
    (stop rather than roll back: a silent retry with another learning rate would make runs irreproducible).
    """
    bar = tqdm(total=schedule.iterations, initial=step, disable=not progress, desc=desc)
    while step < schedule.iterations:
        set_lr(optimizer, schedule.learning_rate * lr_factor(step, schedule.warm_up_end, schedule.end_iter,
                                                             schedule.learning_rate_alpha))
        losses = step_fn(step)
        bad = {k: v for k, v in losses.items() if isinstance(v, float) and not math.isfinite(v)}
        if bad:
            raise TrainingDiverged(f"{desc}: {', '.join(f'{k} = {v}' for k, v in bad.items())} at step {step + 1}; "
                                   f"the last checkpoint (step {step - step % schedule.save_every if save else 0} or "
                                   f"earlier) is kept and a re-run resumes from it — lower the learning rate "
                                   f"(schedule.learning_rate = {schedule.learning_rate:g}) or the loss weights")
        step += 1
        bar.update(1)
        if progress and step % postfix_every == 0:
            bar.set_postfix({k: f"{losses[k]:.4f}" for k in postfix if k in losses})
        image = validate(step) if validate is not None and step % schedule.val_every == 0 else None
        if on_progress is not None and (image is not None or (report_every and step % report_every == 0)):
            on_progress(step, losses, image)
        if save is not None and (step % schedule.save_every == 0 or step == schedule.iterations):
            save(step)
    bar.close()
    return step
