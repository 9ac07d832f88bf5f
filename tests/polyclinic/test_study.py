import pytest

from modalities.settings import ConfigError
from polyclinic.study import default_study, load_study


def test_default_study_matches_the_synthetic_vocabulary():
    study = default_study()
    assert len(study.genomics.gene_panel) == 64 and study.records.target_codes


def test_partial_study_file_keeps_defaults_and_rejects_typos(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('name = "mine"\n[imaging]\nspatial-size = [32, 32]\n')
    study = load_study(path)
    assert study.name == "mine" and study.imaging.spatial_size == (32, 32)
    assert study.genomics == default_study().genomics
    path.write_text('[imaging]\nspatial-sise = [32, 32]\n')
    with pytest.raises(ConfigError, match=r"imaging\.spatial-sise"):
        load_study(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_study(tmp_path / "absent.toml")


def test_the_default_panel_comes_with_its_public_reference_and_another_panel_without_it(tmp_path):
    study = default_study()
    assert set(study.genomics.reference) == set(study.genomics.gene_panel)
    path = tmp_path / "study.toml"
    path.write_text('[genomics]\ngene-panel = ["BRCA1", "TP53"]\n')
    assert load_study(path).genomics.reference is None
    path.write_text('[genomics]\ngene-panel = ["BRCA1", "TP53"]\n'
                    '[genomics.reference]\nBRCA1 = 6.5\nTP53 = 8.0\n')
    assert load_study(path).genomics.reference_profile() == (6.5, 8.0)
