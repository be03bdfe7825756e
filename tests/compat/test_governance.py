"""Governance end to end over HTTP, on SQLite and PostgreSQL, as three users would run it: a submitter
registers a model with the official `model-registry` client and submits it; a reviewer and an approver
approve it (a high-risk model needs both) up to `approved_prod`. The production gate refuses, with its
reasons, until the evaluations pass (one fails first) and a signature made by the PyPI `model-signing`
package over the model's files verifies against the configured key. The version is deployed with a
90/10 split beside a staging canary and rolled back; its evidence bundle is exported (API and CLI) and
verified offline, and a changed byte, a wrong key and an extra file each fail verification.

An admin's webhook receives every event, each verified by the independent `standardwebhooks` package (a
body changed by one byte is refused). Then the receiver goes down, a change commits, the server is killed
with SIGKILL before it could deliver, and after a restart the event arrives: none is lost.
"""

import hashlib
import http.server
import io
import json
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from pathlib import Path

import model_signing
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_registry import ModelRegistry
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import create_token, free_port, modelcat_binary, start_modelcat, stop_modelcat, wait_ready

CONFIG = """api:
  default_page_size: 100
webhooks:
  allowed_networks: ["127.0.0.0/8"]
  retry_schedule_secs: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
  poll_interval_ms: 50
"""
GOVERNANCE = "/api/governance/v1"


class Receiver:
    """A webhook endpoint on a fixed port, recording every delivery; it can go down and come back."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hook"
        self.deliveries = []
        self.server = None

    def start(self):
        deliveries = self.deliveries

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                deliveries.append(({key.lower(): value for key, value in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def of_type(self, event_type: str):
        return [(headers, body) for headers, body in self.deliveries if json.loads(body)["type"] == event_type]


def wait_until(what, check, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Session:
    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body=None, expect=200):
        response = self.http.request(method, f"{self.base_url}{path}", json=body, timeout=10)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None


@pytest.fixture(params=["sqlite", "postgres"])
def server(request):
    """A server that trusts the release key in `workdir/release-key.pem` for model signatures."""
    workdir = Path(tempfile.mkdtemp(prefix="modelcat-governance-"))
    key = ec.generate_private_key(ec.SECP256R1())
    (workdir / "release-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    (workdir / "release-key.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    config = CONFIG + f"governance:\n  trusted_keys:\n    - {{id: release, public_key_file: {workdir / 'release-key.pub'}}}\n"
    running = start_modelcat(request.param, workdir, config_text=config)
    running.workdir = workdir
    try:
        yield running
    finally:
        stop_modelcat(running)


def model_files(directory: Path, seed: str) -> tuple[Path, str, int]:
    """A model directory with one weights file; its digest and size."""
    directory.mkdir(parents=True)
    weights = f"weights of {seed}\n".encode() * 64
    (directory / "weights.bin").write_bytes(weights)
    return directory, hashlib.sha256(weights).hexdigest(), len(weights)


def sign_model(directory: Path, private_key: Path) -> bytes:
    """A model-signing bundle over the directory's files, signed with the key (the `key` method)."""
    signature = directory.parent / f"{directory.name}.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private_key).sign(directory, signature)
    return signature.read_bytes()


def evidence_verify(bundle: Path, key: Path):
    return subprocess.run([modelcat_binary(), "evidence", "verify", str(bundle), "--trusted-key", str(key)],
                          capture_output=True, text=True, timeout=30)


def test_a_model_earns_production_and_every_event_arrives_signed(server):
    base = server.base_url
    admin = Session(base, server.admin_token)
    users = {name: Session(base, create_token(base, server.admin_token, name, "editor"))
             for name in ["submitter", "reviewer", "approver"]}
    receiver = Receiver(free_port())
    receiver.start()
    secret = admin.call("POST", "/api/modelcat/v1/webhooks", {"url": receiver.url}, expect=201)["secret"]
    verifier = Webhook(secret)

    # An admin defines the evaluations a high-risk model needs.
    suite = {"metrics": [
        {"name": "accuracy", "category": "task", "direction": "higher_is_better", "thresholds": {"medium": 0.8, "high": 0.9}},
        {"name": "toxicity", "category": "safety", "direction": "lower_is_better", "thresholds": {"high": 0.01}},
        {"name": "demographic_parity_gap", "category": "bias", "direction": "lower_is_better", "thresholds": {"high": 0.05}},
    ]}
    admin.call("PUT", f"{GOVERNANCE}/evaluation_suites/release", suite)

    # The submitter registers with the official client and completes the artifact's facts.
    name = f"credit-risk-{uuid.uuid4().hex[:8]}"
    client = ModelRegistry(base, author="submitter", is_secure=False, user_token=users["submitter"].http.headers["Authorization"][7:])
    model_dir, digest, size = model_files(server.workdir / "models" / "v1", "v1")
    model = client.register_model(name, "s3://models/credit/v1", model_format_name="onnx", model_format_version="1",
                                  version="v1")
    artifact = client.get_model_artifact(name, "v1")
    artifact.custom_properties = {"sha256": digest, "size": size, "license": "apache-2.0"}
    client.update(artifact)
    version = client.get_model_version(name, "v1").id
    submitter, reviewer, approver = users["submitter"], users["reviewer"], users["approver"]
    for user in ["reviewer", "approver"]:
        submitter.call("PUT", f"/api/modelcat/v1/registered_models/{model.id}/permissions/user:token:{user}",
                       {"level": "edit"})
    submitter.call("PATCH", f"{GOVERNANCE}/registered_models/{model.id}", {"riskTier": "high", "owners": ["user:token:submitter"]})

    def move(user, to, expect=200):
        return user.call("POST", f"{GOVERNANCE}/model_versions/{version}/transitions", {"to": to, "comment": f"to {to}"},
                         expect=expect)

    def review(user, decision="approve", expect=200):
        return user.call("POST", f"{GOVERNANCE}/model_versions/{version}/reviews", {"decision": decision}, expect=expect)

    move(submitter, "submitted")
    review(submitter, expect=403)
    review(reviewer)
    refused = move(submitter, "approved_staging", expect=422)
    assert [refusal["rule"] for refusal in refused["refusals"]] == ["high-risk-two-approvers"]
    assert refused["refusals"][0]["details"] == ["1 distinct approval in this review round"]
    review(approver)
    for state in ["approved_staging", "staging"]:
        move(approver, state)
    review(reviewer)
    review(approver)
    move(submitter, "approved_prod")

    # Production waits for passing evaluations and a verified signature, and says so.
    refused = move(submitter, "production", expect=422)
    assert [refusal["rule"] for refusal in refused["refusals"]] == ["evaluations-passing", "signature-verified"]
    assert "no result for release/toxicity" in refused["refusals"][0]["details"]
    dataset = "sha256:" + hashlib.sha256(b"holdout-2026").hexdigest()

    def evaluate(results, expect=201):
        body = {"suite": "release", "datasetDigest": dataset, "datasetName": "holdout-2026",
                "results": [{"metric": metric, "value": value} for metric, value in results.items()]}
        return submitter.call("POST", f"{GOVERNANCE}/model_versions/{version}/evaluations", body, expect=expect)["items"]

    recorded = evaluate({"accuracy": 0.93, "toxicity": 0.04, "demographic_parity_gap": 0.02})
    assert {item["metric"]: item["passed"] for item in recorded} == {
        "accuracy": True, "toxicity": False, "demographic_parity_gap": True}
    claimed = {"suite": "release", "datasetDigest": dataset, "results": [{"metric": "toxicity", "value": 0.5, "passed": True}]}
    submitter.call("POST", f"{GOVERNANCE}/model_versions/{version}/evaluations", claimed, expect=400)
    refused = move(submitter, "production", expect=422)
    assert refused["refusals"][0]["details"] == ["release/toxicity is 0.04, above the maximum 0.01 for a high-risk model"]
    evaluate({"toxicity": 0.004})
    bundle = sign_model(model_dir, server.workdir / "release-key.pem")
    signed = submitter.http.post(f"{base}{GOVERNANCE}/model_versions/{version}/signatures", data=bundle, timeout=10)
    assert signed.status_code == 201, signed.text
    assert signed.json()["status"] == "verified" and signed.json()["keyId"] == "release"
    assert {resource["digest"] for resource in signed.json()["resources"]} == {digest}
    move(submitter, "production")
    assert client.get_model_version(name, "v1").state.value == "LIVE"
    status = reviewer.call("GET", f"{GOVERNANCE}/model_versions/{version}")
    assert status["state"] == "production" and status["submittedBy"] == "token:submitter"

    # A second version, in staging, takes a 10% canary share beside v1; then the split is rolled back.
    canary_dir, canary_digest, canary_size = model_files(server.workdir / "models" / "v2", "v2")
    client.register_model(name, "s3://models/credit/v2", model_format_name="onnx", model_format_version="1", version="v2")
    canary_artifact = client.get_model_artifact(name, "v2")
    canary_artifact.custom_properties = {"sha256": canary_digest, "size": canary_size, "license": "apache-2.0"}
    client.update(canary_artifact)
    canary = client.get_model_version(name, "v2").id
    submitter.call("POST", f"{GOVERNANCE}/model_versions/{canary}/transitions", {"to": "submitted"})
    for user in [reviewer, approver]:
        user.call("POST", f"{GOVERNANCE}/model_versions/{canary}/reviews", {"decision": "approve"})
    for state in ["approved_staging", "staging"]:
        submitter.call("POST", f"{GOVERNANCE}/model_versions/{canary}/transitions", {"to": state})
    environment = admin.call("POST", "/api/model_registry/v1/serving_environments", {"name": "prod-eu"}, expect=201)["id"]
    deployments = f"{GOVERNANCE}/serving_environments/{environment}/deployments"

    def deploy(splits, expect=201):
        body = {"registeredModelId": model.id, "splits": [{"modelVersionId": v, "weight": w} for v, w in splits]}
        return submitter.call("POST", deployments, body, expect=expect)

    first = deploy([(version, 100)])
    canary_split = deploy([(version, 90), (canary, 10)])
    greedy = deploy([(version, 50), (canary, 50)], expect=422)
    assert greedy["refusals"][0]["rule"] == "serve-released-versions"
    deploy([(version, 90), (canary, 20)], expect=400)
    services = admin.call("GET", "/api/model_registry/v1/inference_services?pageSize=100")["items"]
    weights = {service["modelVersionId"]: service["customProperties"]["traffic_weight"]["int_value"] for service in services}
    assert weights == {version: "90", canary: "10"}
    back = submitter.call("POST", f"{GOVERNANCE}/serving_environments/{environment}/rollback",
                          {"registeredModelId": model.id}, expect=201)
    assert back["restores"] == first["id"] and [s["weight"] for s in back["splits"]] == [100]
    history = reviewer.call("GET", f"{deployments}?registeredModelId={model.id}")["items"]
    assert [item["status"] for item in history] == ["active", "rolled_back", "superseded"]
    assert history[1]["id"] == canary_split["id"]

    # The evidence bundle verifies offline, from the API and from the CLI; tampering is caught.
    response = reviewer.http.get(f"{base}{GOVERNANCE}/model_versions/{version}/evidence", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-tar"
    exported = server.workdir / "evidence.tar"
    exported.write_bytes(response.content)
    server_key = server.workdir / "data" / "audit-key.pub"
    verified = evidence_verify(exported, server_key)
    assert verified.returncode == 0, verified.stderr
    assert "evidence bundle valid" in verified.stdout
    with tarfile.open(exported) as archive:
        names = archive.getnames()
        decisions = json.load(archive.extractfile("policy-decisions.json"))
        evaluations = json.load(archive.extractfile("evaluations.json"))
    assert {"model-card.json", "artifacts.json", "audit.json", "transitions.json", "reviews.json"} <= set(names)
    assert [decision["to"] for decision in decisions][-1] == "production"
    assert evaluations["report"]["failed"] == [] and len(evaluations["report"]["results"]) == 4
    database_url = server.process.args[server.process.args.index("--database-url") + 1]
    cli_bundle = server.workdir / "evidence-cli.tar"
    subprocess.run([modelcat_binary(), "evidence", "export", "--version", version, "--output", str(cli_bundle),
                    "--database-url", database_url, "--data-dir", str(server.workdir / "data")],
                   check=True, capture_output=True, timeout=60)
    assert evidence_verify(cli_bundle, server_key).returncode == 0
    tampered = bytearray(exported.read_bytes())
    tampered[600] ^= 0x01
    (server.workdir / "tampered.tar").write_bytes(bytes(tampered))
    failed = evidence_verify(server.workdir / "tampered.tar", server_key)
    assert failed.returncode != 0 and "NOT valid" in failed.stderr, failed.stderr
    stranger = server.workdir / "stranger.pub"
    stranger.write_text(hashlib.sha256(b"another server").hexdigest() + "\n")
    wrong_key = evidence_verify(exported, stranger)
    assert wrong_key.returncode != 0 and "not among the trusted keys" in wrong_key.stderr
    extra = io.BytesIO(exported.read_bytes())
    with tarfile.open(fileobj=extra, mode="a") as archive:
        note = b"approved by everyone"
        info = tarfile.TarInfo("notes.txt")
        info.size = len(note)
        archive.addfile(info, io.BytesIO(note))
    (server.workdir / "extra.tar").write_bytes(extra.getvalue())
    unsigned = evidence_verify(server.workdir / "extra.tar", server_key)
    assert unsigned.returncode != 0 and "notes.txt is not listed" in unsigned.stderr, unsigned.stderr

    # Every transition reached the webhook, each verified independently.
    transitions = wait_until("8 transition events", lambda: len(receiver.of_type("model_version.transitioned")) == 8
                             and receiver.of_type("model_version.transitioned"))
    for headers, body in receiver.deliveries:
        verifier.verify(body, headers)
    moves = sorted(json.loads(body)["data"]["to"] for _, body in transitions if json.loads(body)["data"]["modelVersionId"] == version)
    assert moves == sorted(["submitted", "approved_staging", "staging", "approved_prod", "production"])
    wait_until("the other governance events", lambda: [len(receiver.of_type(kind)) for kind in [
        "model_version.approved", "model_version.evaluation_failed", "model_version.evaluation_recorded",
        "model_version.signature_verified", "deployment.changed", "deployment.rolled_back"]] == [6, 1, 1, 1, 2, 1])
    headers, body = receiver.deliveries[0]
    tampered = bytearray(body)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(WebhookVerificationError):
        verifier.verify(bytes(tampered), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(body, headers)

    # The receiver goes down; a change commits; the server is killed before it could deliver it.
    receiver.stop()
    delivered_before = len(receiver.deliveries)
    submitter.call("PUT", f"{GOVERNANCE}/registered_models/{model.id}/aliases/champion", {"modelVersionId": version})
    webhook_id = admin.call("GET", "/api/modelcat/v1/webhooks")["items"][0]["id"]
    wait_until("a failed attempt", lambda: any(
        delivery["state"] == "pending" and delivery["attempts"] >= 1
        for delivery in admin.call("GET", f"/api/modelcat/v1/webhooks/{webhook_id}/deliveries")["items"]))
    server.process.kill()
    server.process.wait()
    receiver.start()
    time.sleep(0.5)
    assert len(receiver.deliveries) == delivered_before, "nothing was delivered while the server was down"
    log_path = Path(server.process.args[server.process.args.index("--data-dir") + 1]).parent / "modelcat.log"
    with open(log_path, "a") as log:
        server.process = subprocess.Popen(server.process.args, stdout=log, stderr=log)
    wait_ready(base, server.process, log_path)
    alias = wait_until("the alias event after the restart", lambda: receiver.of_type("registered_model.alias_changed"))
    headers, body = alias[0]
    verifier.verify(body, headers)
    assert json.loads(body)["data"]["alias"] == "champion"

    # No event was lost: every delivery in the log was delivered, and the receiver saw each event.
    log = admin.call("GET", f"/api/modelcat/v1/webhooks/{webhook_id}/deliveries?limit=500")["items"]
    wait_until("every delivery delivered", lambda: all(
        delivery["state"] == "delivered"
        for delivery in admin.call("GET", f"/api/modelcat/v1/webhooks/{webhook_id}/deliveries?limit=500")["items"]))
    received_ids = {headers["webhook-id"] for headers, _ in receiver.deliveries}
    assert {delivery["eventId"] for delivery in log} <= received_ids
