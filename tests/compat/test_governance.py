"""Governance end to end over HTTP, on SQLite and PostgreSQL, as three users would run it: a submitter
registers a model with the official `model-registry` client and submits it; a reviewer and an approver
approve it (a high-risk model needs both) up to production; an alias names the champion. An admin's
webhook receives every event, each verified by the independent `standardwebhooks` package (a body changed
by one byte is refused). Then the receiver goes down, a change commits, the server is killed with
SIGKILL before it could deliver, and after a restart the event arrives: none is lost.

Not yet covered here (not built yet): evaluations, model signatures, deployments and evidence bundles.
"""

import http.server
import json
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from model_registry import ModelRegistry
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import create_token, free_port, start_modelcat, stop_modelcat, wait_ready

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
    workdir = Path(tempfile.mkdtemp(prefix="modelcat-governance-"))
    running = start_modelcat(request.param, workdir, config_text=CONFIG)
    try:
        yield running
    finally:
        stop_modelcat(running)


def test_a_model_earns_production_and_every_event_arrives_signed(server):
    base = server.base_url
    admin = Session(base, server.admin_token)
    users = {name: Session(base, create_token(base, server.admin_token, name, "editor"))
             for name in ["submitter", "reviewer", "approver"]}
    receiver = Receiver(free_port())
    receiver.start()
    secret = admin.call("POST", "/api/modelcat/v1/webhooks", {"url": receiver.url}, expect=201)["secret"]
    verifier = Webhook(secret)

    # The submitter registers with the official client and completes the artifact's facts.
    name = f"credit-risk-{uuid.uuid4().hex[:8]}"
    client = ModelRegistry(base, author="submitter", is_secure=False, user_token=users["submitter"].http.headers["Authorization"][7:])
    model = client.register_model(name, "s3://models/credit/v1", model_format_name="onnx", model_format_version="1",
                                  version="v1")
    artifact = client.get_model_artifact(name, "v1")
    artifact.custom_properties = {"sha256": "c0ffee" * 10 + "beef", "size": 4096, "license": "apache-2.0"}
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
    assert refused["refusals"][0]["rule"] == "approvals"
    assert "needs 2 distinct approvals" in refused["refusals"][0]["reason"]
    review(approver)
    for state in ["approved_staging", "staging"]:
        move(approver, state)
    review(reviewer)
    review(approver)
    for state in ["approved_prod", "production"]:
        move(submitter, state)
    assert client.get_model_version(name, "v1").state.value == "LIVE"
    status = reviewer.call("GET", f"{GOVERNANCE}/model_versions/{version}")
    assert status["state"] == "production" and status["submittedBy"] == "token:submitter"

    # Every transition reached the webhook, each verified independently.
    transitions = wait_until("5 transition events", lambda: len(receiver.of_type("model_version.transitioned")) == 5
                             and receiver.of_type("model_version.transitioned"))
    for headers, body in receiver.deliveries:
        verifier.verify(body, headers)
    moves = sorted(json.loads(body)["data"]["to"] for _, body in transitions)
    assert moves == sorted(["submitted", "approved_staging", "staging", "approved_prod", "production"])
    assert len(receiver.of_type("model_version.approved")) == 4
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
