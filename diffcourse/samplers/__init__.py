"""Samplers: turn noise into data with a trained noise-prediction function.

Every sampler takes ``(eps_fn, schedule, shape_or_x, *, generator, device, progress,
return_trajectory, …)`` and returns samples (and the trajectory on request).
"""
from .ddpm import ddpm_sample, ddpm_step

__all__ = ["ddpm_sample", "ddpm_step"]
