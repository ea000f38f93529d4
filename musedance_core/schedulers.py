"""Noise schedulers (from diffusers) and context windows for long videos.

Schedulers: ``ddim`` (default), ``euler`` and ``dpmpp_2m`` (DPM-Solver++ 2M), all configured from
the model's scheduler config, so epsilon or v-prediction, zero-terminal-SNR betas and trailing
timestep spacing come from the model (Lin et al. 2024, "Common Diffusion Noise Schedules and
Sample Steps are Flawed").

Context windows: a video longer than the motion modules' window is denoised window by window at
every step, and the windows' predictions are blended with weights that ramp over the overlap,
so memory follows the window length, not the video length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import InputError

SCHEDULERS = ("ddim", "euler", "dpmpp_2m")


def make_scheduler(name: str, config: dict):
    """A fresh diffusers scheduler called ``name`` built from the model's scheduler ``config``."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    base = {k: v for k, v in config.items() if k != "rescale_betas_zero_snr"}
    zero_snr = bool(config.get("rescale_betas_zero_snr", False))
    if name == "ddim":
        return DDIMScheduler(**base, rescale_betas_zero_snr=zero_snr, clip_sample=False, set_alpha_to_one=False)
    if name == "euler":
        return EulerDiscreteScheduler(**base, rescale_betas_zero_snr=zero_snr)
    if name == "dpmpp_2m":
        if zero_snr:  # DPM-Solver needs a final sigma of 0, which zero-SNR betas already give
            base = base | {"final_sigmas_type": "zero"}
        return DPMSolverMultistepScheduler(**base, algorithm_type="dpmsolver++", solver_order=2,
                                           rescale_betas_zero_snr=zero_snr)
    raise InputError(f"scheduler must be one of {', '.join(SCHEDULERS)}; got '{name}'.")


@dataclass(frozen=True)
class ContextWindow:
    """Frames [start, stop) of the video and the blend weight of each of them."""

    start: int
    stop: int
    weights: torch.Tensor  # [stop - start] float32, > 0

    @property
    def frames(self) -> slice:
        return slice(self.start, self.stop)


def context_windows(num_frames: int, length: int, overlap: int) -> list[ContextWindow]:
    """Overlapping windows covering ``num_frames`` frames.

    Windows have ``length`` frames (the last one is moved back so it ends at the last frame) and
    neighbours share at least ``overlap`` frames. Weights are 1 except over a shared stretch,
    where they ramp linearly from one window to the next, so blended predictions change smoothly.
    With ``length >= num_frames`` there is one window of weight 1: identical to no windows.
    """
    if num_frames < 1:
        raise InputError(f"the video needs at least one frame; got {num_frames}.")
    if length < 1:
        raise InputError(f"context_length must be >= 1; got {length}.")
    if length >= num_frames:
        return [ContextWindow(0, num_frames, torch.ones(num_frames))]
    if not 0 <= overlap < length:
        raise InputError(f"context_overlap must be between 0 and context_length-1 ({length - 1}); got {overlap}.")
    stride = length - overlap
    starts = list(range(0, num_frames - length, stride)) + [num_frames - length]
    windows = []
    for i, start in enumerate(starts):
        w = torch.ones(length)
        if i > 0:  # ramp up over what this window shares with the previous one
            shared = starts[i - 1] + length - start
            w[:shared] = torch.arange(1, shared + 1, dtype=torch.float32) / (shared + 1)
        if i < len(starts) - 1:  # ramp down over what it shares with the next one
            shared = start + length - starts[i + 1]
            w[length - shared :] = torch.minimum(w[length - shared :],
                                                 torch.arange(shared, 0, -1, dtype=torch.float32) / (shared + 1))
        windows.append(ContextWindow(start, start + length, w))
    return windows
