"""The records encoder: a few tokens per patient from the whole feature vector."""

from __future__ import annotations

import pytest
import torch

from modalities.records.encoder import RecordsEncoder


def test_tokens_have_the_asked_shape_and_see_every_column() -> None:
    encoder = RecordsEncoder(features=21, d_model=16, tokens=4)
    records = torch.randn(5, 21, generator=torch.Generator().manual_seed(0))
    tokens = encoder(records)
    assert tokens.shape == (5, 4, 16)
    for column in (0, 20):
        changed = records.clone()
        changed[:, column] += 1.0
        assert not torch.allclose(encoder(changed), tokens)


def test_each_sample_is_encoded_on_its_own() -> None:
    encoder = RecordsEncoder(features=21, d_model=16)
    records = torch.randn(3, 21, generator=torch.Generator().manual_seed(1))
    changed = records.clone()
    changed[1:] = 0.0
    torch.testing.assert_close(encoder(records)[0], encoder(changed)[0])


def test_wrong_width_names_the_expected_layout() -> None:
    with pytest.raises(ValueError, match=r"expected a \(B, 21\) tensor .*feature_names.*got \(2, 20\)"):
        RecordsEncoder(features=21, d_model=16)(torch.zeros(2, 20))
