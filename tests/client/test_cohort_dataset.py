import pytest
import torch

from client.cache import FeatureCache
from client.cohort import TRAIN, VALIDATION, CohortManifest
from client.cohort_dataset import CohortDataset
from client.model_inputs import assemble_sample
from client.site import Site
from polyclinic.study import default_study


def test_dataset_masks_missing_modalities_and_uses_no_statistic_of_other_patients(federation, tmp_path):
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
    assert all(s["genome_missing"].eq(1).all() for s in everyone.samples)
    without_image = [s for s in everyone.samples if s["imaging_mask"] == 0]
    assert without_image and all(s["image"].abs().sum() == 0 for s in without_image)
    labels = torch.stack([s["label"] for s in everyone.samples])
    assert labels.tolist() == [float(p.label) for p in manifest.patients]
    # A patient's inputs are its own cached features, whichever split (and so other patients) it is with.
    by_pseudonym = dict(zip((p.pseudonym for p in everyone.patients), everyone.samples, strict=True))
    cache = FeatureCache(tmp_path / "cache")
    for split in (train, validation):
        for patient, sample in zip(split.patients, split.samples, strict=True):
            for key, value in sample.items():
                torch.testing.assert_close(value, by_pseudonym[patient.pseudonym][key])
            if "records" in patient.entries:
                cached = cache.load(patient.entries["records"])["records"]
                torch.testing.assert_close(sample["records"], cached)


def test_one_patient_is_assembled_alone_with_masks_for_what_is_missing():
    study = default_study()
    genes = len(study.genomics.gene_panel)
    genome = torch.arange(genes, dtype=torch.float32)
    flags = torch.zeros(genes)
    flags[5] = 1.0
    features = {"genomics": {"genome": genome, "genome_missing": flags}, "imaging": None}
    inputs = assemble_sample(study, features)
    assert set(inputs) == {"image", "imaging_mask", "records", "records_mask", "genome", "genome_missing",
                           "genomics_mask"}
    assert inputs["genomics_mask"] == 1 and inputs["imaging_mask"] == 0 and inputs["records_mask"] == 0
    torch.testing.assert_close(inputs["genome"], genome)
    torch.testing.assert_close(inputs["genome_missing"], flags)
    assert inputs["image"].shape == (1, 64, 64) and inputs["image"].abs().sum() == 0
    assert inputs["records"].abs().sum() == 0
    nothing = assemble_sample(study, {})
    assert nothing["genome_missing"].eq(1).all() and nothing["genomics_mask"] == 0


def test_features_of_another_study_are_a_clear_error():
    study = default_study()
    with pytest.raises(ValueError, match=r"'genome' has shape \(3,\), the study expects \(64,\).*prepare"):
        assemble_sample(study, {"genomics": {"genome": torch.zeros(3), "genome_missing": torch.zeros(3)}})
    with pytest.raises(ValueError, match=r"no 'records'.*rebuild"):
        assemble_sample(study, {"records": {"genome": torch.zeros(3)}})
    with pytest.raises(ValueError, match=r"unknown modalities \['ecg'\]"):
        assemble_sample(study, {"ecg": {}})
