import pytest

from client.site_config import load_site_config, resolve_state
from modalities.settings import ConfigError


def test_missing_site_toml_means_safe_defaults(tmp_path):
    site = tmp_path / "St Mary's Hospital"
    site.mkdir()
    config, defaulted = load_site_config(site)
    assert defaulted and config.site.id == "st-mary-s-hospital"
    assert config.consent.policy == "opt-in"
    assert resolve_state(site, config, None) == site / ".polyclinic"


def test_site_toml_is_typed_and_unknown_keys_name_the_key(tmp_path):
    (tmp_path / "site.toml").write_text('[site]\nid = "hospital-a"\nstate = "../state"\n'
                                        '[consent]\npolicy = "opt-out"\n[privacy]\nepsilon = 3.0\n')
    config, defaulted = load_site_config(tmp_path)
    assert not defaulted and config.privacy.epsilon == 3.0 and config.consent.policy == "opt-out"
    assert resolve_state(tmp_path, config, None) == tmp_path / "../state"
    assert resolve_state(tmp_path, config, tmp_path / "x") == tmp_path / "x"
    (tmp_path / "site.toml").write_text('[consent]\npolicy = "maybe"\n')
    with pytest.raises(ConfigError, match=r"site.toml.*consent.policy"):
        load_site_config(tmp_path)
    (tmp_path / "site.toml").write_text('[privacy\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_site_config(tmp_path)
