"""The official `model-registry` Python client (0.3.x) against modelcat, on SQLite and PostgreSQL.

Covers what the issue asks of the high-level client (construction, register_model with metadata of every
type, the get_* chain, update, pagers, duplicate versions), the generated async API (`mr_openapi`) for what
the high-level client does not wrap, and experiments/runs by plain HTTP, which this client version lacks.
"""

import asyncio
import uuid

import pytest
import requests
from model_registry import ModelRegistry
from model_registry.exceptions import StoreError

from conftest import admin_token_for, create_token, token_for

BASE = "/api/model_registry/v1alpha3"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def registry(modelcat):
    return ModelRegistry(modelcat, author="compat-suite", is_secure=False, user_token=token_for(modelcat))


def test_register_model_with_metadata_of_every_type(registry):
    name = unique("mnist")
    metadata = {"framework": "pytorch", "epochs": 12, "accuracy": 0.987, "validated": True, "tag": ""}
    rm = registry.register_model(
        name, "s3://bucket/mnist/v1", model_format_name="onnx", model_format_version="1",
        version="v1", version_description="first", storage_key="aws-conn", storage_path="mnist/v1",
        metadata=metadata,
    )
    assert rm.id and rm.name == name and rm.owner == "compat-suite"

    fetched = registry.get_registered_model(name)
    assert fetched.id == rm.id and fetched.state.value == "LIVE"

    version = registry.get_model_version(name, "v1")
    assert version.author == "compat-suite" and version.description == "first"
    assert version.custom_properties == metadata

    artifact = registry.get_model_artifact(name, "v1")
    assert artifact.uri == "s3://bucket/mnist/v1"
    assert artifact.model_format_name == "onnx" and artifact.model_format_version == "1"
    assert artifact.storage_key == "aws-conn" and artifact.storage_path == "mnist/v1"


def test_missing_things_are_none(registry):
    assert registry.get_registered_model(unique("absent")) is None
    name = unique("present")
    registry.register_model(name, "s3://b/p", model_format_name="onnx", model_format_version="1", version="v1")
    assert registry.get_model_version(name, "v9") is None


def test_duplicate_version_is_refused(registry):
    name = unique("dup")
    registry.register_model(name, "s3://b/1", model_format_name="onnx", model_format_version="1", version="v1")
    with pytest.raises(StoreError, match="already exists"):
        registry.register_model(name, "s3://b/2", model_format_name="onnx", model_format_version="1", version="v1")
    registry.register_model(name, "s3://b/2", model_format_name="onnx", model_format_version="1", version="v2")
    assert [mv.name for mv in registry.get_model_versions(name)] == ["v1", "v2"]


def test_update_each_entity(registry):
    name = unique("upd")
    registry.register_model(name, "s3://b/u", model_format_name="onnx", model_format_version="1", version="v1")

    rm = registry.get_registered_model(name)
    rm.description = "updated model"
    rm.custom_properties = {"stage": "prod"}
    updated = registry.update(rm)
    assert updated.description == "updated model" and updated.custom_properties == {"stage": "prod"}
    assert registry.get_registered_model(name).description == "updated model"

    mv = registry.get_model_version(name, "v1")
    mv.description = "updated version"
    assert registry.update(mv).description == "updated version"

    ma = registry.get_model_artifact(name, "v1")
    ma.uri = "s3://b/moved"
    assert registry.update(ma).uri == "s3://b/moved"
    assert registry.get_model_artifact(name, "v1").uri == "s3://b/moved"


def test_pagers(registry):
    prefix = unique("page")
    names = [f"{prefix}-{index}" for index in range(7)]
    for name in names:
        registry.register_model(name, "s3://b/x", model_format_name="onnx", model_format_version="1", version="v1")

    seen = [rm.name for rm in registry.get_registered_models().page_size(2).order_by_id().descending()]
    mine = [name for name in seen if name.startswith(prefix)]
    assert mine == list(reversed(names))
    assert len(seen) == len(set(seen))

    ascending = [rm.name for rm in registry.get_registered_models().page_size(3).order_by_creation_time()]
    assert [name for name in ascending if name.startswith(prefix)] == names

    for version in ["v2", "v3", "v4"]:
        registry.register_model(names[0], "s3://b/y", model_format_name="onnx", model_format_version="1", version=version)
    versions = [mv.name for mv in registry.get_model_versions(names[0]).page_size(2)]
    assert versions == ["v1", "v2", "v3", "v4"]


def test_generated_api_for_serving_and_artifact_types(modelcat, registry):
    import mr_openapi
    from mr_openapi import (
        ArtifactCreate, ArtifactTypeQueryParam, DataSetCreate, DocArtifactCreate, InferenceServiceCreate,
        InferenceServiceUpdate, MetricCreate, ParameterCreate, ServeModelCreate, ServingEnvironmentCreate,
    )

    name = unique("served")
    registry.register_model(name, "s3://b/s", model_format_name="onnx", model_format_version="1", version="v1")
    rm = registry.get_registered_model(name)
    mv = registry.get_model_version(name, "v1")

    async def scenario():
        async with mr_openapi.ApiClient(mr_openapi.Configuration(host=modelcat, access_token=token_for(modelcat))) as client:
            api = mr_openapi.ModelRegistryServiceApi(client)
            env = await api.create_serving_environment(ServingEnvironmentCreate(name=unique("env")))
            found_env = await api.find_serving_environment(name=env.name)
            assert found_env.id == env.id

            isvc_name = unique("isvc")
            isvc = await api.create_inference_service(InferenceServiceCreate(
                name=isvc_name, registeredModelId=rm.id, servingEnvironmentId=env.id, runtime="vllm"))
            if isvc is None:
                # model-registry <= 0.3.14 declares only 200 for this POST and drops the 201 body that
                # upstream and modelcat send; look the service up instead.
                isvc = await api.find_inference_service(name=isvc_name, parent_resource_id=env.id)
            assert isvc.desired_state.value == "DEPLOYED"
            assert (await api.get_inference_service_model(isvc.id)).id == rm.id
            assert (await api.get_inference_service_version(isvc.id)).id == mv.id
            updated = await api.update_inference_service(isvc.id, InferenceServiceUpdate(modelVersionId=mv.id, runtime="kserve"))
            assert updated.runtime == "kserve" and updated.model_version_id == mv.id
            listed = await api.get_environment_inference_services(env.id)
            assert [item.id for item in listed.items] == [isvc.id]

            serve = await api.create_inference_service_serve(isvc.id, ServeModelCreate(modelVersionId=mv.id))
            assert serve.model_version_id == mv.id and serve.name
            serves = await api.get_inference_service_serves(isvc.id)
            assert serves.size == 1 and serves.next_page_token == ""

            # model-registry <= 0.3.14 types Metric.step as an integer (v1alpha3), later versions as a string (v1).
            step = 3 if "int" in str(MetricCreate.model_fields["step"].annotation) else "3"
            created = []
            for body in [
                DocArtifactCreate(artifactType="doc-artifact", name=unique("doc"), uri="https://docs/x"),
                DataSetCreate(artifactType="dataset-artifact", name=unique("ds"), uri="s3://data", digest="sha256:1", sourceType="s3"),
                MetricCreate(artifactType="metric", name=unique("metric"), value=0.91, step=step, timestamp="1700000000000"),
                ParameterCreate(artifactType="parameter", name=unique("param"), value="0.001", parameterType="number"),
            ]:
                artifact = await api.create_artifact(ArtifactCreate(actual_instance=body))
                created.append(artifact.actual_instance)
            by_type = await api.get_artifacts(artifact_type=ArtifactTypeQueryParam.METRIC, page_size="100")
            metric_ids = {item.actual_instance.id for item in by_type.items}
            assert created[2].id in metric_ids
            assert all(item.actual_instance.artifact_type == "metric" for item in by_type.items)
            fetched = await api.get_artifact(created[3].id)
            assert fetched.actual_instance.parameter_type.value == "number"

    asyncio.run(scenario())


def authorized(modelcat) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token_for(modelcat)}"
    return session


def test_experiments_and_runs_over_http(modelcat):
    session = authorized(modelcat)
    experiment = session.post(f"{modelcat}{BASE}/experiments", json={"name": unique("exp"), "owner": "me"})
    assert experiment.status_code == 201, experiment.text
    experiment = experiment.json()
    run = session.post(f"{modelcat}{BASE}/experiments/{experiment['id']}/experiment_runs", json={"name": "run-1"})
    assert run.status_code == 201, run.text
    run = run.json()
    assert run["status"] == "RUNNING" and run["experimentId"] == experiment["id"]
    for step, value in enumerate([0.5, 0.7, 0.9], start=1):
        logged = session.post(f"{modelcat}{BASE}/experiment_runs/{run['id']}/artifacts",
                              json={"artifactType": "metric", "name": "accuracy", "value": value, "step": step})
        assert logged.status_code in (200, 201), logged.text
    history = session.get(f"{modelcat}{BASE}/experiment_runs/{run['id']}/metric_history", params={"name": "accuracy"}).json()
    assert [item["value"] for item in history["items"]] == [0.5, 0.7, 0.9]
    steps = session.get(f"{modelcat}{BASE}/experiment_runs/{run['id']}/metric_history", params={"stepIds": "1,3"}).json()
    assert [item["step"] for item in steps["items"]] == [1, 3]
    artifacts = session.get(f"{modelcat}{BASE}/experiment_runs/{run['id']}/artifacts").json()
    assert artifacts["size"] == 1 and artifacts["items"][0]["value"] == 0.9
    finished = session.patch(f"{modelcat}{BASE}/experiment_runs/{run['id']}", json={"status": "FINISHED", "endTimeSinceEpoch": "1700000000000"})
    assert finished.json()["status"] == "FINISHED"
    found = session.get(f"{modelcat}{BASE}/experiment_run", params={"name": "run-1", "parentResourceId": experiment["id"]})
    assert found.status_code == 200 and found.json()["id"] == run["id"]
    duplicate = session.post(f"{modelcat}{BASE}/experiments", json={"name": experiment["name"]})
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "Conflict"


def test_error_bodies_match_upstream(modelcat):
    session = authorized(modelcat)
    response = session.post(f"{modelcat}{BASE}/registered_models", json={"name": unique("x"), "ext_id": "1"})
    assert response.status_code == 400
    assert response.json() == {"code": "Bad Request", "message": 'json: unknown field "ext_id"'}
    response = session.post(f"{modelcat}{BASE}/model_versions", json={"registeredModelId": "1"})
    assert response.status_code == 422
    assert response.json() == {"code": "Bad Request", "message": "required field 'name' is zero value."}
    root = session.get(modelcat, allow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui"
    unknown = session.get(f"{modelcat}/nowhere")
    assert unknown.status_code == 404 and unknown.json()["code"] == "Not Found"


def test_the_registry_needs_a_token_and_a_viewer_cannot_write(modelcat, registry):
    anonymous = requests.get(f"{modelcat}{BASE}/registered_models")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.json()["code"] == "Unauthorized"
    # Catalog reads stay anonymous by default.
    assert requests.get(f"{modelcat}/api/model_catalog/v1alpha1/sources").status_code == 200

    name = unique("read-only")
    registry.register_model(name, "s3://b/r", model_format_name="onnx", model_format_version="1", version="v1")
    viewer_token = create_token(modelcat, admin_token_for(modelcat), "compat viewer", "viewer")
    viewer = ModelRegistry(modelcat, author="viewer", is_secure=False, user_token=viewer_token)
    assert viewer.get_registered_model(name).name == name
    with pytest.raises(Exception) as refused:
        viewer.register_model(unique("refused"), "s3://b/x", model_format_name="onnx", model_format_version="1",
                              version="v1")
    assert "403" in str(refused.value) or "Forbidden" in str(refused.value), refused.value
    forbidden = requests.post(f"{modelcat}{BASE}/registered_models", json={"name": unique("x")},
                              headers={"Authorization": f"Bearer {viewer_token}"})
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "Forbidden"
    assert viewer_token not in forbidden.text
