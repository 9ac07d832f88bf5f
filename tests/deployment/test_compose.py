"""docker-compose.yml agrees with the loopback harness, the keys it mounts and the installed Flower.

No Docker engine here: the file is parsed (PyYAML, installed with flwr) and every command is compared with
the harness's command builders, every key path with a real ``polyclinic keys init``, every flag with the
installed binaries' ``--help``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from loopback import (
    BIN,
    FLOWER_ENV,
    HOSPITALS,
    REPO,
    executor_command,
    init_keys,
    keys_argv,
    registration,
    superlink_command,
    supernode_command,
)

from privacy.certificates import CA_CERT, SERVER_CERT

PKI = Path("/pki")
SUPERLINK = "superlink:8000"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """What the ``keys`` service writes, written here by the same command."""
    return init_keys(tmp_path_factory.mktemp("compose") / "pki", HOSPITALS)


def _mounts(service: dict) -> dict[str, str]:
    """Mount target -> source."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def _local_file(service: dict, path: str, pki) -> Path:
    """The file a container path names, in the locally generated key folders."""
    for target, source in _mounts(service).items():
        if path.startswith(target + "/") and source.startswith("pki-"):
            return pki.root / source.removeprefix("pki-") / path.removeprefix(target + "/")
    raise AssertionError(f"{path} is not on a key volume of this service")


def test_commands_are_the_harness_commands(services):
    assert services["superlink"]["command"] == superlink_command(PKI, host="0.0.0.0", port=8000,
                                                                 database="/state/superlink.db")
    assert services["serverapp"]["command"] == executor_command(PKI, SUPERLINK)
    for hospital in HOSPITALS:
        assert services[hospital]["command"] == supernode_command(PKI, superlink=SUPERLINK, host="0.0.0.0",
                                                                  port=9094, site_dir="/site",
                                                                  state_dir="/state")
        assert services[f"{hospital}-clientapp"]["command"] == executor_command(PKI, f"{hospital}:9094")
    keys = services["keys"]["command"]
    assert keys[:2] == ["sh", "-c"]
    init = shlex.join(["polyclinic", *keys_argv("/pki", HOSPITALS)])
    assert keys[2] == f"{init} && chown -R polyclinic /pki"


def test_register_step_runs_the_script_the_harness_uses(services):
    command = services["register"]["command"]
    assert command[:2] == ["python", "/deploy/register.py"]
    args = registration.build_parser().parse_args(command[2:])
    assert args.superlink == SUPERLINK and str(args.root_certificates) == "/pki/ca.pem"
    mounts = _mounts(services["register"])
    assert (REPO / mounts["/deploy/register.py"]).resolve() == REPO / "deploy" / "register.py"
    assert str(args.keys).startswith("/pki/") and mounts["/pki"] == "pki-public"


def test_every_key_path_in_a_command_exists_after_keys_init(services, pki):
    checked = 0
    for name, service in services.items():
        for arg in service["command"]:
            for path in re.findall(r"/pki/[\w./-]+", arg):
                if name != "keys":
                    assert _local_file(service, path, pki).exists(), f"{name}: {path}"
                    checked += 1
    assert checked >= 3 + 1 + 1 + 5 * 3 + 3  # superlink, serverapp, register, supernodes, clientapps


def test_keys_step_mounts_exactly_the_folders_keys_init_writes(services, pki):
    mounts = _mounts(services["keys"])
    assert sorted(Path(t).name for t in mounts) == sorted(p.name for p in pki.root.iterdir())
    assert all(source == f"pki-{Path(target).name}" for target, source in mounts.items())


def test_private_keys_reach_only_the_process_that_uses_them(services):
    users = {}
    for name, service in services.items():
        for source in _mounts(service).values():
            users.setdefault(source, set()).add(name)
    assert users["pki-ca"] == {"keys"}
    assert users["pki-superlink"] == {"keys", "superlink"}
    for hospital in HOSPITALS:
        assert users[f"pki-{hospital}"] == {"keys", hospital}
        clientapp = _mounts(services[f"{hospital}-clientapp"])
        assert clientapp["/pki"] == "pki-public"


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_certificates_name_the_services_that_are_dialled(services, pki, hospital):
    roots = Store([x509.load_pem_x509_certificate((pki.public / CA_CERT).read_bytes())])
    for folder, host in [(pki.superlink, SUPERLINK.split(":")[0]), (pki.hospital(hospital), hospital)]:
        leaf = x509.load_pem_x509_certificate((folder / SERVER_CERT).read_bytes())
        PolicyBuilder().store(roots).build_server_verifier(x509.DNSName(host)).verify(leaf, [])


def test_hospital_data_and_state_reach_the_clientapp_where_node_config_says(services):
    for hospital in HOSPITALS:
        node_config = services[hospital]["command"][services[hospital]["command"].index("--node-config") + 1]
        assert node_config == "site-dir='/site' state-dir='/state'"
        volumes = services[f"{hospital}-clientapp"]["volumes"]
        site = next(v for v in volumes if ":/site:" in v)
        assert site.endswith(":/site:ro"), "site data is mounted read-only"
        assert f"{hospital}-state:/state" in volumes
        assert "/site" not in _mounts(services[hospital]), "the SuperNode never needs patient data"


def test_volumes_and_networks_are_declared_and_used(compose, services):
    named = {s for svc in services.values() for s in _mounts(svc).values() if not s.startswith(("./", "$"))}
    assert named == set(compose["volumes"])
    networks = {n for svc in services.values() for n in svc.get("networks", [])}
    assert networks == set(compose["networks"])
    for hospital in HOSPITALS:
        assert compose["networks"][hospital] == {"internal": True}
        assert services[f"{hospital}-clientapp"]["networks"] == [hospital]


def test_order_keys_superlink_register_supernodes(services):
    assert services["superlink"]["depends_on"] == {"keys": {"condition": "service_completed_successfully"}}
    assert services["register"]["depends_on"] == {"superlink": {"condition": "service_healthy"}}
    assert services["superlink"]["healthcheck"]["test"][-1].endswith("('127.0.0.1', 8000), 2)")
    registered = {"register": {"condition": "service_completed_successfully"}}
    for hospital in HOSPITALS:
        for name in (hospital, f"{hospital}-clientapp"):
            assert services[name]["depends_on"] == registered


def test_every_flower_process_has_the_flower_environment(services):
    for name, service in services.items():
        assert service["environment"] == FLOWER_ENV, name


@pytest.mark.parametrize("dockerfile", ["server/Dockerfile", "client/Dockerfile"])
def test_dockerfiles_pin_cpu_torch_first_and_copy_every_package(dockerfile, services):
    assert {s["build"]["dockerfile"] for s in services.values()} == {"server/Dockerfile", "client/Dockerfile"}
    lines = [line.strip() for line in (REPO / dockerfile).read_text().splitlines()]
    assert lines[next(i for i, line in enumerate(lines) if not line.startswith("#") and line)] == \
        "FROM python:3.11-slim"
    torch = lines.index("RUN pip install --no-cache-dir torch==2.13.0")
    assert torch < lines.index("RUN pip install --no-cache-dir .")
    env = " ".join(line for line in lines if line.startswith(("ENV", "FLWR_")))
    assert all(f"{k}={v}" in env for k, v in FLOWER_ENV.items())
    copied = {line.split()[1] for line in lines if line.startswith("COPY")}
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert {p.rstrip("*") for p in packages["include"]} <= copied
    assert all((REPO / source).exists() for source in copied)


def _help(executable: str) -> str:
    result = subprocess.run([str(BIN / executable), "--help"], capture_output=True, text=True, timeout=60,
                            env={"PATH": str(BIN), **FLOWER_ENV}, check=False)
    return result.stdout + result.stderr


@pytest.mark.parametrize("executable", ["flower-superlink", "flower-supernode", "flower-superexec"])
def test_every_flag_exists_in_the_installed_flower(services, executable):
    flags = {a.split("=")[0] for s in services.values() if s["command"][0] == executable
             for a in s["command"] if a.startswith("--")}
    assert flags
    text = _help(executable)
    missing = sorted(f for f in flags if not re.search(rf"{re.escape(f)}\b", text))
    assert not missing, f"{executable} --help does not list {missing}"
