"""Multi-head attention from ``nn.Linear`` and parameter-free LayerNorm only, with masks that really mask.

``nn.MultiheadAttention`` hides its projections in bare parameters Opacus cannot sample, so the
projections here are plain Linear layers (ghost clipping computes their per-sample gradient norms
cheaply) and the rest is tensor arithmetic. Each Linear is called once per forward pass: ghost
clipping refuses a layer used twice (it would be parameter tying), so keys and values come from one
layer over the concatenated tokens of every modality.

A masked key gets exactly zero weight, and a query whose keys are all masked (a patient with none of
the modalities it may look at) gets a zero update instead of the NaN a ``-inf`` softmax would give,
so values under a mask can never reach the output, not even as NaN.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def layer_norm(width: int) -> nn.LayerNorm:
    """LayerNorm without its own scale and shift: every norm here feeds a Linear layer, which absorbs
    them (``W(g*x + b) + c = (W*g)x + (W*b + c)``), so they would add parameters DP-SGD must clip and
    noise, and layers Opacus must hook, for no gain in what the model can express."""
    return nn.LayerNorm(width, elementwise_affine=False)


def masked_softmax(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis where ``keep``; 0 elsewhere, and 0 for a row with nothing kept."""
    filled = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=-1) * keep


class _Heads:
    """Splits ``(B, T, D)`` into ``(B, heads, T, D / heads)`` and back."""

    def __init__(self, heads: int) -> None:
        self.heads = heads

    def split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

    @staticmethod
    def merge(x: torch.Tensor) -> torch.Tensor:
        batch, heads, length, width = x.shape
        return x.transpose(1, 2).reshape(batch, length, heads * width)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention per head; ``keep`` ``(B, Q, T)`` broadcasts over heads."""
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    weights = torch.softmax(scores, dim=-1) if keep is None else masked_softmax(scores, keep[:, None])
    return weights @ v, weights


class CrossAttention(nn.Module):
    """Pre-norm cross-attention: ``queries`` ``(B, Q, D)`` attend to ``context`` ``(B, T, D)``.

    Returns the update ``(B, Q, D)`` (the caller adds it, possibly gated) and the attention weights
    ``(B, heads, Q, T)`` that the per-modality contributions are read from.
    """

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = _Heads(heads)
        self.norm_queries = layer_norm(d_model)
        self.norm_context = layer_norm(d_model)
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, keep: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.heads.split(self.query(self.norm_queries(queries)))
        k, v = self.key_value(self.norm_context(context)).chunk(2, dim=-1)
        mixed, weights = attend(q, self.heads.split(k), self.heads.split(v), keep)
        return self.out(_Heads.merge(mixed)), weights


class SelfAttention(nn.Module):
    """Pre-norm self-attention among a few always-present tokens (the perceiver's latents)."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = _Heads(heads)
        self.norm = layer_norm(d_model)
        self.query_key_value = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.heads.split(t) for t in self.query_key_value(self.norm(x)).chunk(3, dim=-1))
        mixed, _ = attend(q, k, v, None)
        return self.out(_Heads.merge(mixed))


class FeedForward(nn.Module):
    """Pre-norm two-layer MLP, width ``2 * d_model``; the caller adds its output."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.norm = layer_norm(d_model)
        self.expand = nn.Linear(d_model, 2 * d_model)
        self.contract = nn.Linear(2 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.contract(F.gelu(self.expand(self.norm(x))))
