"""Bookkeeping between per-modality masks and the concatenated token sequence the fusions attend to."""

from __future__ import annotations

import torch


def token_keep(masks: torch.Tensor, token_counts: tuple[int, ...]) -> torch.Tensor:
    """``(B, M)`` modality masks -> ``(B, T)`` bool: which of the concatenated tokens are present."""
    counts = torch.tensor(token_counts, device=masks.device)
    return (masks > 0.5).repeat_interleave(counts, dim=1)


def segment_mass(weights: torch.Tensor, token_counts: tuple[int, ...]) -> torch.Tensor:
    """``(B, T)`` weights over concatenated tokens -> ``(B, M)`` summed per modality."""
    return torch.stack([part.sum(-1) for part in weights.split(list(token_counts), dim=-1)], dim=-1)
