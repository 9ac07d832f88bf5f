"""SuperNode authentication on a real SuperLink: only registered hospital keys get in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from loopback import REPO, wait_for

from privacy.certificates import new_node_key, write_node_key_pair

pytestmark = pytest.mark.slow


def _register_script(loopback):
    """deploy/register.py exactly as the compose `register` service runs it."""
    result = subprocess.run([sys.executable, str(REPO / "deploy" / "register.py"),
                             str(loopback.pki.public / "supernodes"), "--superlink", loopback.address,
                             "--root-certificates", str(loopback.pki.public / "ca.pem")],
                            env=loopback.env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_registered_supernodes_come_online(loopback, tmp_path):
    ids = _register_script(loopback)
    assert sorted(ids) == sorted(loopback.hospitals) and all(ids.values())
    assert _register_script(loopback) == {h: None for h in loopback.hospitals}  # idempotent
    assert set(loopback.nodes().items()) == {(i, "registered") for i in ids.values()}
    for hospital in loopback.hospitals:
        loopback.start_supernode(hospital, tmp_path / hospital, tmp_path / "state" / hospital, executor=False)
    loopback.wait_online(list(ids.values()))
    assert loopback.nodes() == {i: "online" for i in ids.values()}


def test_an_unregistered_supernode_is_turned_away(loopback, tmp_path):
    registered = loopback.register("hospital-a")
    loopback.start_supernode("hospital-a", tmp_path / "a", tmp_path / "sa", executor=False)
    rogue_key = tmp_path / "rogue" / "auth.key"
    write_node_key_pair(rogue_key, rogue_key.with_suffix(".pub"), new_node_key())
    # hospital-b's TLS material but a key the SuperLink has never seen; hospital-b is not registered either
    rogue = loopback.start_supernode("hospital-b", tmp_path / "b", tmp_path / "sb", auth_key=rogue_key,
                                     executor=False)
    wait_for(lambda: rogue.process.poll() is not None, 30, "rogue SuperNode exit", rogue.log)
    assert rogue.process.returncode != 0
    assert "Failed to activate SuperNode" in rogue.text()
    assert "No SuperNode found with the given public key" in loopback.started[0].text()
    loopback.wait_online([registered])
    assert loopback.nodes() == {registered: "online"}


def test_a_supernode_whose_key_was_unregistered_cannot_come_back(loopback, tmp_path):
    node_id = loopback.register("hospital-c")
    assert loopback.flwr_json("supernode", "unregister", str(node_id), "polyclinic")["success"]
    node = loopback.start_supernode("hospital-c", tmp_path / "c", tmp_path / "sc", executor=False)
    wait_for(lambda: node.process.poll() is not None, 30, "unregistered SuperNode exit", node.log)
    assert node.process.returncode != 0
    assert loopback.nodes().get(node_id) != "online"
