"""``late`` adds one term per present modality: what a modality adds to the logit does not depend on which
other modalities the patient has, and a patient with nothing gets the prior."""

from __future__ import annotations

import itertools

import pytest
import torch

from modalities.fusion import FusionModel, FusionSettings, create_model
from modalities.fusion.examples import example_batch
from polyclinic.study import default_study

PATTERNS = list(itertools.product((0.0, 1.0), repeat=3))


def logits_by_pattern(variant: str) -> tuple[FusionModel, dict[tuple[float, ...], torch.Tensor]]:
    """Every patient of one batch under each of the 8 presence patterns (the data itself unchanged)."""
    torch.manual_seed(0)
    net = create_model(default_study(), FusionSettings(fusion=variant, d_model=8, heads=2)).eval()
    data = example_batch(default_study(), 6, generator=torch.Generator().manual_seed(1), present=1.0)
    with torch.no_grad():
        return net, {p: net.fuse(data, torch.tensor(p).expand(6, 3)).logits for p in PATTERNS}


def term_of(modality: int, logits: dict[tuple[float, ...], torch.Tensor]) -> list[torch.Tensor]:
    """What adding ``modality`` changes, once for each pattern of the other two."""
    return [logits[p] - logits[(*p[:modality], 0.0, *p[modality + 1:])] for p in PATTERNS if p[modality]]


@pytest.mark.parametrize("modality", [0, 1, 2])
def test_a_modality_adds_the_same_term_whatever_else_is_present(modality: int) -> None:
    _, logits = logits_by_pattern("late")
    terms = term_of(modality, logits)
    assert terms[0].abs().max() > 1e-3, "a term of zero would make the check empty"
    for other in terms[1:]:
        torch.testing.assert_close(other, terms[0])


def test_the_check_tells_late_from_early_fusion() -> None:
    _, logits = logits_by_pattern("concat")
    terms = term_of(1, logits)
    assert max((t - terms[0]).abs().max().item() for t in terms[1:]) > 1e-3


def test_the_logit_is_the_prior_plus_the_terms_of_the_present_modalities() -> None:
    net, logits = logits_by_pattern("late")
    prior = logits[(0.0, 0.0, 0.0)]
    assert torch.allclose(prior, prior[0].expand_as(prior)) and prior[0] == net.fusion.offsets.bias
    full = prior + sum(term_of(m, logits)[0] for m in range(3))
    torch.testing.assert_close(logits[(1.0, 1.0, 1.0)], full)
