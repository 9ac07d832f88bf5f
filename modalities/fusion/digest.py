"""A fingerprint of a model's weights: what the audit trails on both sides record for an update.

Names, dtypes, shapes and bytes all count, in name order, so two state dicts have the same digest exactly
when every tensor is identical; a site can prove which update it sent and the coordinator which it got.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch


def weights_digest(weights: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of the tensors in ``weights``, independent of dict order and memory layout."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
