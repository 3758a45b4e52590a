"""Starts a real `shoal node` on a free loopback port for the libSQL client compatibility suite."""
import json
import os
import re
import signal
import subprocess
import tempfile
import urllib.request
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start_node(arguments):
    """Starts `shoal node` with `arguments`; returns the process and the URL it printed."""
    binary = os.environ.get("SHOAL_BIN", os.path.join(ROOT, ".build", "debug", "shoal"))
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing: build it with `swift build --product shoal` first")
    data = tempfile.mkdtemp(prefix="shoal-compat-")
    process = subprocess.Popen(
        [binary, "node", "--no-auth", "--port", "0", "--data", data] + arguments,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = None
    for line in process.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        process.kill()
        pytest.fail("shoal node did not start")
    return process, url


def _stop_node(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("shoal node did not stop within 20 s of SIGTERM")
    assert process.returncode == 0, f"shoal node exited with {process.returncode}"


@pytest.fixture(scope="session")
def node_url():
    """The primary node (location fra); databases are created on first use."""
    process, url = _start_node(["--location", "fra", "--create-on-first-use"])
    yield url
    _stop_node(process)


@pytest.fixture(scope="session")
def replica_node_url():
    """A second node (location ams) that keeps replicas of databases on the first."""
    process, url = _start_node(["--location", "ams"])
    yield url
    _stop_node(process)


@pytest.fixture
def database_url(node_url):
    """A fresh database for one test: /db/compat/<unique>."""
    return f"{node_url}/db/compat/t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def replicated_database(node_url, replica_node_url):
    """A fresh database on the primary node and its replica on the replica node: (primary URL,
    replica URL)."""
    name = f"t{uuid.uuid4().hex[:12]}"
    primary = f"{node_url}/db/compat/{name}"
    body = json.dumps({"primary_url": primary}).encode()
    create = urllib.request.Request(
        f"{replica_node_url}/v1/namespaces/compat/{name}/create",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(create) as answer:
        assert answer.status == 200
    return primary, f"{replica_node_url}/db/compat/{name}"
