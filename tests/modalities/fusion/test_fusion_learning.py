"""Each fusion variant learns a label that only the image carries, finds it among noisy modalities,
and credits the image for it. A model that cannot learn, or looks at the wrong modality, fails."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from modalities.fusion import FusionSettings, create_model, fusion_names, predict
from modalities.fusion.examples import example_batch
from modalities.imaging.settings import ImagingSettings
from polyclinic.study import default_study

SIZE = 32
STUDY = default_study().model_copy(update={"imaging": ImagingSettings(spatial_size=(SIZE, SIZE))})
STEPS = 200


def task(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Noise everywhere; positives' images (always present) carry a bright blob somewhere."""
    data = example_batch(STUDY, n, generator=generator, present=0.7)
    rows, cols = torch.arange(SIZE)[:, None], torch.arange(SIZE)[None, :]
    centre = torch.randint(6, SIZE - 6, (2, n), generator=generator)
    blob = ((rows - centre[0, :, None, None]) ** 2 + (cols - centre[1, :, None, None]) ** 2 < 9).float()
    data["image"] = 0.5 * torch.rand(n, 1, SIZE, SIZE, generator=generator) \
        + 0.5 * blob[:, None] * data["label"][:, None, None, None]
    data["imaging_mask"] = torch.ones(n)
    return data


@pytest.fixture
def one_thread():
    """Tensors this small train fastest on one thread; more only fight other jobs for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trained(variant: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = create_model(STUDY, FusionSettings(fusion=variant, image_grid=2, modality_dropout=0.1))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        data = task(32, generator)
        loss = F.binary_cross_entropy_with_logits(net(data), data["label"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net


def _learnt_and_credits_the_image(net: torch.nn.Module) -> bool:
    test = task(256, torch.Generator().manual_seed(2))
    result = predict(net, test)
    if roc_auc_score(test["label"].numpy(), result.probability.numpy()) <= 0.8:
        return False
    positive = test["label"] == 1
    credit = {name: value[positive].mean().item() for name, value in result.contributions.items()}
    assert credit["imaging"] > 0.1
    assert credit["imaging"] > 3 * max(abs(credit["records"]), abs(credit["genomics"]))
    if result.attention:
        assert result.attention["imaging"].mean() > result.attention["records"].mean()
        assert result.attention["imaging"].mean() > result.attention["genomics"].mean()
    return True


@pytest.mark.parametrize("variant", [name for name in fusion_names() if name != "perceiver"])
@pytest.mark.usefixtures("one_thread")
def test_variant_learns_an_image_signal_and_credits_the_image(variant: str) -> None:
    assert _learnt_and_credits_the_image(_trained(variant, seed=0))


@pytest.mark.usefixtures("one_thread")
def test_perceiver_learns_an_image_signal_from_most_initialisations() -> None:
    """The perceiver stays at chance from some initialisations at this rate (1 in 8 seeds measured, 2 in 8
    before the genomics encoder's weights changed what the fusion draws): 3 of 4 must learn."""
    assert sum(_learnt_and_credits_the_image(_trained("perceiver", seed)) for seed in range(4)) >= 3
