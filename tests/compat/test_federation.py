"""A `kubeflow-registry` peer source, fed through the official `model-registry` Python client.

Instance A (SQLite and PostgreSQL) is written to only through the client; instance B polls A's Kubeflow
Model Registry API (`protocol: kubeflow-registry`) and serves A's live registered models, with the model
artifacts of their live versions, in its catalog. Archiving a model through the client removes it from B.
"""

import json
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from model_registry import ModelRegistry

from conftest import admin_token_for, create_token, start_modelcat, stop_modelcat, token_for

CATALOG = "/api/model_catalog/v1alpha1"


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def eventually(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    return check()


@pytest.fixture(scope="module")
def follower(modelcat):
    workdir = Path(tempfile.mkdtemp(prefix="modelcat-follower-"))
    sources = workdir / "sources.yaml"
    # The peer reads the registry with a viewer token of its own, from a file.
    token_file = workdir / "team-registry.token"
    token_file.write_text(create_token(modelcat, admin_token_for(modelcat), "follower peer", "viewer"))
    sources.write_text(
        "model_catalogs:\n"
        "  - id: team-registry\n"
        "    name: Team registry\n"
        "    type: peer\n"
        "    properties:\n"
        f"      url: {modelcat}\n"
        "      protocol: kubeflow-registry\n"
        "      syncInterval: 1s\n"
        f"      tokenFile: {token_file}\n"
    )
    server = start_modelcat("sqlite", workdir, ["--sources", str(sources)])
    try:
        yield server.base_url
    finally:
        stop_modelcat(server)


def names(base_url: str):
    page = get(f"{base_url}{CATALOG}/models?source=team-registry&pageSize=100")
    return {item["name"] for item in page["items"]} if page else None


def model(base_url: str, name: str):
    return get(f"{base_url}{CATALOG}/sources/team-registry/models/{name}") or {}


def test_models_registered_with_the_client_reach_the_peer_and_archiving_removes_them(modelcat, follower):
    registry = ModelRegistry(modelcat, author="federation-suite", is_secure=False, user_token=token_for(modelcat))
    suffix = uuid.uuid4().hex[:8]
    kept, archived = f"fraud-{suffix}", f"churn-{suffix}"
    for name in (kept, archived):
        registry.register_model(
            name, f"s3://bucket/{name}/v1", model_format_name="onnx", model_format_version="1", version="v1",
            version_description="first", metadata={"team": "risk"},
        )
    rm = registry.get_registered_model(kept)
    rm.description = f"{kept} model"
    registry.update(rm)
    assert eventually(lambda: {kept, archived} <= (names(follower) or set())), names(follower)

    assert eventually(lambda: model(follower, kept).get("description") == f"{kept} model"), model(follower, kept)
    assert model(follower, kept)["customProperties"]["origin_source"]["string_value"] == "registry"
    artifacts = get(f"{follower}{CATALOG}/sources/team-registry/models/{kept}/artifacts")
    assert [artifact["uri"] for artifact in artifacts["items"]] == [f"s3://bucket/{kept}/v1"]

    from model_registry.types import RegisteredModelState

    rm = registry.get_registered_model(archived)
    rm.state = RegisteredModelState.ARCHIVED
    registry.update(rm)
    assert eventually(lambda: archived not in (names(follower) or {archived})), names(follower)
    assert kept in names(follower)
