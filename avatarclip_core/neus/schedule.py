"""Learning-rate schedule of NeuS / AvatarCLIP (docs/method.md §2.3, §3.9): linear warm-up, then cosine decay."""
from __future__ import annotations

import math


def lr_factor(step: int, warm_up_end: int, end_iter: int, alpha: float) -> float:
    """Multiplier of the base learning rate at `step`.

    step < warm_up_end: step / warm_up_end (0 at step 0); afterwards
    ((cos(π·p) + 1)/2)·(1 − α) + α with p = (step − warm_up_end)/(end_iter − warm_up_end) (not clamped, as
    in the reference: 1 at the warm-up end, α at end_iter).

    Raises:
        ValueError: if end_iter ≤ warm_up_end or warm_up_end < 0.
    """
    if warm_up_end < 0 or end_iter <= warm_up_end:
        raise ValueError(f"need 0 ≤ warm_up_end < end_iter, got warm_up_end={warm_up_end}, end_iter={end_iter}")
    if step < warm_up_end:
        return step / warm_up_end
    p = (step - warm_up_end) / (end_iter - warm_up_end)
    return (math.cos(math.pi * p) + 1.0) * 0.5 * (1.0 - alpha) + alpha


def set_lr(optimizer, lr: float) -> None:
    """Set every param group's learning rate of a torch optimizer to `lr`."""
    for g in optimizer.param_groups:
        g["lr"] = lr
