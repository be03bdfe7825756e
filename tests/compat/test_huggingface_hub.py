"""The official `huggingface_hub` 2.x client against modelcat's Hub-compatible API (hf-compat.md §12).

A fake Hub (`modelcat fake-hub`) serves the fixtures and 2,500 generated models; modelcat mirrors them
through an `hf` catalog source, then every client call below goes to modelcat only. A last run in a
subprocess with HF_HUB_OFFLINE=1 is answered from the client's cache, and the `model-registry` client's
`register_hf_model` registers a mirrored model with HF_ENDPOINT pointing at modelcat.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, modelcat_binary, start_modelcat, stop_modelcat, token_for

GENERATED = 2500
EXPECTED = GENERATED + 4


def start_fake_hub(workdir: Path):
    log = open(workdir / "fake-hub.log", "w")
    process = subprocess.Popen(
        [modelcat_binary(), "fake-hub", "--listen", f"127.0.0.1:{free_port()}", "--models", str(GENERATED)],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("fake Hub listening on "):
        raise RuntimeError(f"fake Hub did not start: {line!r}")
    return process, line.split()[-1]


def listed(base_url: str) -> int:
    from huggingface_hub import HfApi

    return len(list(HfApi(endpoint=base_url, token=False).list_models()))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def mirror(request):
    """Yields the base URL of a modelcat that has mirrored the fake Hub."""
    workdir = Path(tempfile.mkdtemp(prefix="modelcat-hf-"))
    hub, hub_url = start_fake_hub(workdir)
    sources = workdir / "sources.yaml"
    sources.write_text(textwrap.dedent(f"""\
        model_catalogs:
          - id: hub
            name: Hub mirror
            type: hf
            includedModels: [org/*, other/x, gen/*]
            properties: {{url: "{hub_url}", syncInterval: 1h, maxConcurrency: 16}}
        """))
    server = start_modelcat(request.param, workdir, ["--sources", str(sources)])
    try:
        base_url = server.base_url
        deadline = time.monotonic() + 120
        while True:
            with urllib.request.urlopen(f"{base_url}/api/model_catalog/v1alpha1/status") as response:
                hub_source = next(s for s in json.load(response)["sources"] if s["id"] == "hub")
            # The catalog follows the store through the change log; the Hub listing publishes what a sync
            # staged at most once a second: wait for both.
            if hub_source["status"] == "available" and hub_source["models"] == EXPECTED and listed(base_url) == EXPECTED:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the mirror did not sync: {hub_source}")
            time.sleep(0.2)
        yield base_url
    finally:
        stop_modelcat(server)
        hub.terminate()
        hub.wait(timeout=10)


@pytest.fixture(scope="module")
def api(mirror):
    from huggingface_hub import HfApi

    return HfApi(endpoint=mirror, token=False)


@pytest.fixture(autouse=True)
def client_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")


def test_client_is_2x():
    import huggingface_hub

    assert huggingface_hub.__version__.startswith("2."), huggingface_hub.__version__


def test_list_models_search_author_filter_sort(api):
    found = list(api.list_models(search="m", author="org", filter=["bert", "license:mit"], sort="downloads", limit=10))
    assert [model.id for model in found] == ["org/m1"]
    assert all("bert" in model.tags and "license:mit" in model.tags for model in found)
    by_downloads = list(api.list_models(author="org", sort="downloads"))
    downloads = [model.downloads for model in by_downloads]
    assert downloads == sorted(downloads, reverse=True) and len(downloads) == 3
    for sort in ["likes", "last_modified", "created_at", "trending_score"]:
        assert len(list(api.list_models(sort=sort, limit=7))) == 7
    trending = list(api.list_models(sort="trending_score", limit=7))
    scores = [model.trending_score for model in trending]
    assert None not in scores and scores == sorted(scores, reverse=True) and scores[0] > scores[-1]


def test_list_models_paginates_to_the_end(api):
    ids = [model.id for model in api.list_models()]
    assert len(ids) == EXPECTED and len(set(ids)) == EXPECTED
    assert len(list(api.list_models(limit=5))) == 5


def test_list_models_projections(api):
    [model] = list(api.list_models(expand=["author", "downloadsAllTime"], limit=1))
    assert model.author and model.downloads is None and model.downloads_all_time is not None
    [full] = list(api.list_models(author="org", search="m1", full=True, cardData=True, fetch_config=True))
    assert len(full.sha) == 40 and full.last_modified is not None
    assert {sibling.rfilename for sibling in full.siblings} >= {"README.md", "config.json"}
    assert full.card_data["license"] == "mit" and full.config["model_type"] == "bert"
    [tagged] = list(api.list_models(pipeline_tag="image-classification"))
    assert tagged.id == "other/x"
    gated = list(api.list_models(gated=True, expand=["gated"]))
    assert [model.id for model in gated] == ["org/gated"] and gated[0].gated == "manual"


def test_invalid_expand_is_a_bad_request(api):
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as raised:
        list(api.list_models(expand=["nope"]))
    assert raised.value.response.status_code == 400


def test_model_info(api):
    info = api.model_info("org/m1")
    assert len(info.sha) == 40 and info.last_modified.tzinfo is not None
    assert {sibling.rfilename for sibling in info.siblings} >= {"README.md", "config.json"}
    assert info.card_data.license == "mit"
    assert api.model_info("org/m1", revision="v1.0").sha == info.sha
    assert api.model_info("org/m1", revision=info.sha).sha == info.sha
    detailed = api.model_info("org/m1", files_metadata=True)
    assert all(sibling.size is not None and sibling.blob_id for sibling in detailed.siblings)
    projected = api.model_info("org/m1", expand=["sha", "siblings"])
    assert projected.sha == info.sha and projected.downloads is None
    assert api.model_info("org/gated").gated == "manual"


def test_errors_map_to_client_exceptions(api):
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/does-not-exist")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/m1", revision="v9")
    with pytest.raises(GatedRepoError):
        api.file_exists("org/gated", "config.json")


def test_exists_checks(api):
    assert api.repo_exists("org/m1") and not api.repo_exists("org/nope")
    assert api.revision_exists("org/m1", "v1.0") and not api.revision_exists("org/m1", "v9")
    assert api.file_exists("org/m1", "config.json") and not api.file_exists("org/m1", "nope.json")


def test_files_tree_and_refs(api):
    assert "config.json" in api.list_repo_files("org/m1")
    tree = list(api.list_repo_tree("org/m1", recursive=True))
    files = [item for item in tree if hasattr(item, "blob_id")]
    assert files and all(item.blob_id and item.size is not None for item in files)
    assert {item.path for item in tree} >= {"onnx", "onnx/model.onnx"}
    assert [item.path for item in api.list_repo_tree("org/m1", path_in_repo="onnx")] == ["onnx/model.onnx"]
    refs = api.list_repo_refs("org/m1")
    assert [branch.name for branch in refs.branches] == ["main"]
    assert [tag.name for tag in refs.tags] == ["v1.0"]
    infos = api.get_paths_info("org/m1", ["config.json", "onnx"])
    assert sorted(info.path for info in infos) == ["config.json", "onnx"]


def test_downloads_card_and_safetensors(api, mirror, tmp_path):
    from huggingface_hub import ModelCard, hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    cache = tmp_path / "cache"
    config = api.hf_hub_download("org/m1", "config.json", cache_dir=cache)
    assert json.loads(Path(config).read_text())["model_type"] == "bert"
    readme = hf_hub_download("org/m1", "README.md", endpoint=mirror, cache_dir=cache)
    assert "/snapshots/" in readme and "license: mit" in Path(readme).read_text()
    with pytest.raises(RemoteEntryNotFoundError):
        api.hf_hub_download("org/m1", "nope.json", cache_dir=cache)
    metadata = api.get_safetensors_metadata("org/m1")
    assert metadata.parameter_count == {"F32": 64}
    sharded = api.get_safetensors_metadata("org/m2")
    assert sharded.sharded and sharded.parameter_count == {"F32": 64}


def test_model_card_load(mirror, tmp_path):
    script = "from huggingface_hub import ModelCard; print(ModelCard.load('org/m1').data.license)"
    assert run_client(script, mirror, tmp_path / "cache").strip() == "mit"


def test_offline_run_is_served_from_the_cache(mirror, tmp_path):
    cache = tmp_path / "cache"
    script = textwrap.dedent("""\
        from huggingface_hub import hf_hub_download
        for name in ["README.md", "config.json"]:
            print(hf_hub_download("org/m1", name))
    """)
    online = run_client(script, mirror, cache).split()
    # Offline, pointed at a port nothing listens on: any request would fail.
    offline = run_client(script, f"http://127.0.0.1:{free_port()}", cache, HF_HUB_OFFLINE="1").split()
    assert online == offline and len(offline) == 2


def test_register_hf_model_through_the_mirror(mirror, tmp_path):
    pytest.importorskip("model_registry")
    script = textwrap.dedent(f"""\
        from model_registry import ModelRegistry
        registry = ModelRegistry("{mirror}", author="compat-suite", is_secure=False, user_token="{token_for(mirror)}")
        model = registry.register_hf_model("org/m1", "config.json", version="v1",
                                           model_format_name="safetensors", model_format_version="1")
        version = registry.get_model_version(model.name, "v1")
        artifact = registry.get_model_artifact(model.name, "v1")
        print(model.name, version.author, artifact.uri)
    """)
    name, author, uri = run_client(script, mirror, tmp_path / "cache").split()
    assert (name, author) == ("org/m1", "org")
    assert uri.startswith(mirror) and uri.endswith("/org/m1/resolve/main/config.json")


def run_client(script: str, endpoint: str, cache: Path, **extra_env) -> str:
    """Runs a client script in a fresh interpreter with HF_ENDPOINT set before the import."""
    env = dict(os.environ, HF_ENDPOINT=endpoint, HF_HUB_CACHE=str(cache), HF_HOME=str(cache.parent / "home"),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1", **extra_env)
    env.pop("HF_TOKEN", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout
