"""Modality dropout: hide whole modalities from training samples so the model copes with missing ones.

At a hospital many patients lack a scan or a genomic panel; a model that only ever saw complete
patients leans on whichever modality is strongest and falls apart without it. Each present modality
of each training sample is hidden with probability ``p``, but never all present modalities of a
sample (a sample with nothing left would only teach the prior). Draws come from the caller's
``torch.Generator`` so a seeded run repeats exactly and nothing touches the global RNG.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def drop_modalities(masks: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """``masks`` ``(B, M)`` with each present entry zeroed with probability ``p``, keeping at least one
    present modality per sample that had any (the one with the highest draw is kept)."""
    if p <= 0 or masks.numel() == 0:
        return masks
    draws = torch.rand(masks.shape, generator=generator, device=generator.device).to(masks.device)
    present = masks > 0.5
    dropped = present & (draws < p)
    emptied = (present & ~dropped).sum(1) == 0
    keep_one = F.one_hot(draws.masked_fill(~present, -1).argmax(1), masks.shape[1]).bool()
    dropped = dropped & ~(keep_one & emptied[:, None])
    return masks.masked_fill(dropped, 0.0)
