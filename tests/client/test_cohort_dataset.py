import torch

from client.cohort import TRAIN, VALIDATION, CohortManifest
from client.cohort_dataset import CohortDataset
from client.site import Site
from polyclinic.study import default_study


def test_dataset_masks_missing_modalities_and_standardises_on_train_only(federation, tmp_path):
    root, truth = federation
    study = default_study()
    Site(root / truth.sites[2].id, study, tmp_path).run(build_cache=True)  # C: no genomics at all
    everyone = CohortDataset(tmp_path, study)
    train, validation = CohortDataset(tmp_path, study, TRAIN), CohortDataset(tmp_path, study, VALIDATION)
    manifest = CohortManifest.load(tmp_path)
    assert len(everyone) == len(manifest.patients) == len(train) + len(validation)
    sample = everyone[0]
    assert sample["image"].shape == (1, 64, 64) and sample["genome"].shape == (64,)
    assert all(s["genomics_mask"] == 0 and s["genome"].abs().sum() == 0 for s in everyone.samples)
    without_image = [s for s in everyone.samples if s["imaging_mask"] == 0]
    assert without_image and all(s["image"].abs().sum() == 0 for s in without_image)
    records = torch.stack([s["records"] for s in train.samples])
    varying = records.std(0) > 0
    assert torch.allclose(records.mean(0)[varying], torch.zeros(int(varying.sum())), atol=1e-4)
    labels = torch.stack([s["label"] for s in everyone.samples])
    assert labels.tolist() == [float(p.label) for p in manifest.patients]
