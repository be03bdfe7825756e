"""A Python client generated from modelcat's own OpenAPI document (PyPI openapi-python-client) follows the
change feed and reads the status: the document is usable, not only present.

The client is generated at test time from the document the running server serves
(`/api/modelcat/v1/openapi.yaml`), into a temporary directory, and imported from there.
"""

import importlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from conftest import start_modelcat, stop_modelcat


@pytest.fixture(scope="module")
def generated():
    workdir = Path(tempfile.mkdtemp(prefix="modelcat-client-"))
    server = start_modelcat("sqlite", workdir)
    try:
        with urllib.request.urlopen(f"{server.base_url}/api/modelcat/v1/openapi.yaml", timeout=10) as response:
            document = workdir / "modelcat.openapi.yaml"
            document.write_bytes(response.read())
        output = workdir / "modelcat_client"
        generator = Path(sys.executable).parent / "openapi-python-client"
        result = subprocess.run(
            [str(generator), "generate", "--path", str(document), "--output-path", str(output), "--meta", "none"],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "warning" not in result.stdout.lower(), f"the document generates cleanly:\n{result.stdout}"
        sys.path.insert(0, str(workdir))
        package = importlib.import_module("modelcat_client")
        yield server, package
    finally:
        stop_modelcat(server)


def register(server, name: str) -> None:
    request = urllib.request.Request(
        f"{server.base_url}/api/model_registry/v1alpha3/registered_models",
        data=json.dumps({"name": name}).encode(),
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def test_the_generated_client_reads_the_status(generated):
    server, package = generated
    get_status = importlib.import_module("modelcat_client.api.default.get_status")
    client = package.AuthenticatedClient(base_url=f"{server.base_url}/api/modelcat/v1", token=server.admin_token)
    status = get_status.sync(client=client)
    assert status is not None, "the answer parses as the documented Status"
    assert status.load.loaded is True
    assert status.replica.caught_up in (True, False)
    assert any(source.id == "registry" for source in status.sources), status


def test_the_generated_client_follows_the_change_feed(generated):
    server, package = generated
    snapshot = importlib.import_module("modelcat_client.api.default.get_snapshot")
    changes = importlib.import_module("modelcat_client.api.default.get_changes")
    client = package.AuthenticatedClient(base_url=f"{server.base_url}/api/modelcat/v1", token=server.admin_token)
    # The snapshot ends with the cursor to follow from.
    answer = snapshot.sync_detailed(client=client)
    assert answer.status_code == 200
    end = json.loads(answer.content.decode().strip().splitlines()[-1])
    cursor = end["end"]["cursor"]
    register(server, "followed-by-a-generated-client")
    seen = []
    for _ in range(20):
        page = changes.sync(client=client, since=cursor, wait=2)
        assert page is not None and not hasattr(page, "code"), page
        seen += [(change.op, change.name) for change in page.changes]
        cursor = page.cursor
        if ("upsert", "followed-by-a-generated-client") in [(str(op.value) if hasattr(op, "value") else op, name)
                                                            for op, name in seen]:
            break
    names = [name for _, name in seen]
    assert "followed-by-a-generated-client" in names, seen
    # A bad cursor is a documented 400 in the modelcat envelope.
    bad = changes.sync(client=client, since="not-a-cursor")
    assert bad is not None and bad.code == "bad_request", bad
