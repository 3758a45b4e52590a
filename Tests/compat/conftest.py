"""Starts a real `shoal node` on a free loopback port for the libSQL client compatibility suite."""
import os
import re
import signal
import subprocess
import tempfile
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def node_url():
    binary = os.environ.get("SHOAL_BIN", os.path.join(ROOT, ".build", "debug", "shoal"))
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing: build it with `swift build --product shoal` first")
    data = tempfile.mkdtemp(prefix="shoal-compat-")
    process = subprocess.Popen(
        [binary, "node", "--no-auth", "--port", "0", "--data", data, "--create-on-first-use"],
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
    yield url
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("shoal node did not stop within 20 s of SIGTERM")
    assert process.returncode == 0, f"shoal node exited with {process.returncode}"


@pytest.fixture
def database_url(node_url):
    """A fresh database for one test: /db/compat/<unique>."""
    return f"{node_url}/db/compat/t{uuid.uuid4().hex[:12]}"
