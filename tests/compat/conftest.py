"""Runs a real modelcat server per backend for the compatibility suites.

Each test module gets a fresh server on a free port, once on SQLite (a temporary file) and once on
PostgreSQL (a fresh database on the server in MODELCAT_TEST_POSTGRES_URL, dropped afterwards). Without
that variable the PostgreSQL run is skipped, except under CI, where it fails.

MODELCAT_BIN names the binary (default: the release build in CARGO_TARGET_DIR or target/).

Servers run with authentication on, as by default: each suite reads the bootstrap admin token the server
writes to its data directory, creates an editor token with it over the API, and hands that to the
official clients through their own token options (`token_for(base_url)`).
"""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modelcat_binary() -> str:
    if os.environ.get("MODELCAT_BIN"):
        return os.environ["MODELCAT_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "modelcat")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"modelcat exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"modelcat did not become ready:\n{log_path.read_text()}")


class PostgresDatabase:
    """A throwaway database on the test PostgreSQL server."""

    def __init__(self, server_url: str):
        import psycopg

        self.psycopg = psycopg
        self.server_url = server_url
        self.name = f"modelcat_compat_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"')
        parts = urllib.parse.urlsplit(server_url)
        self.url = urllib.parse.urlunsplit(parts._replace(path=f"/{self.name}"))

    def drop(self) -> None:
        with self.psycopg.connect(self.server_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Server:
    """A running modelcat: its base URL, process, throwaway database and an editor token."""

    def __init__(self, base_url, process, database):
        self.base_url = base_url
        self.process = process
        self.database = database
        self.admin_token = None
        self.token = None


# Editor and admin tokens of the running servers, by base URL.
TOKENS = {}
ADMIN_TOKENS = {}


def token_for(base_url: str) -> str:
    """An editor token of the server at `base_url`."""
    return TOKENS[base_url]


def admin_token_for(base_url: str) -> str:
    """The bootstrap admin token of the server at `base_url`."""
    return ADMIN_TOKENS[base_url]


def create_token(base_url: str, admin_token: str, name: str, role: str) -> str:
    """Creates a token over the API with `admin_token` and returns its plaintext."""
    request = urllib.request.Request(
        f"{base_url}/api/modelcat/v1/tokens",
        data=json.dumps({"name": name, "role": role}).encode(),
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())["token"]


DEFAULT_CONFIG = "api:\n  default_page_size: 100\n"


def start_modelcat(backend: str, workdir: Path, extra_args=(), config_text: str = DEFAULT_CONFIG) -> Server:
    """Starts modelcat on `backend` ("sqlite" or "postgres") with its data under `workdir` and the server
    configuration `config_text`."""
    database = None
    if backend == "postgres":
        server_url = os.environ.get("MODELCAT_TEST_POSTGRES_URL")
        if not server_url:
            if os.environ.get("CI"):
                pytest.fail("MODELCAT_TEST_POSTGRES_URL must be set under CI")
            pytest.skip("MODELCAT_TEST_POSTGRES_URL is not set")
        database = PostgresDatabase(server_url)
        database_url = database.url
    else:
        database_url = f"sqlite://{workdir / 'registry.db'}"
    port = free_port()
    log_path = workdir / "modelcat.log"
    config = workdir / "modelcat.yaml"
    config.write_text(config_text)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [modelcat_binary(), "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
             "--database-url", database_url, "--data-dir", str(workdir / "data"), *extra_args],
            stdout=log, stderr=subprocess.STDOUT,
            env={key: value for key, value in os.environ.items() if key != "MODELCAT_ADMIN_TOKEN"},
        )
    server = Server(f"http://127.0.0.1:{port}", process, database)
    try:
        wait_ready(server.base_url, process, log_path)
        # The bootstrap admin token, written once (mode 0600) when the server met a fresh database.
        token_file = workdir / "data" / "admin-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        server.admin_token = token_file.read_text().strip()
        server.token = create_token(server.base_url, server.admin_token, "compat-suite", "editor")
        TOKENS[server.base_url] = server.token
        ADMIN_TOKENS[server.base_url] = server.admin_token
    except Exception:
        stop_modelcat(server)
        raise
    return server


def stop_modelcat(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
    if server.database is not None:
        server.database.drop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def modelcat(request):
    """Yields the base URL of a running modelcat on the parametrized backend."""
    workdir = Path(tempfile.mkdtemp(prefix="modelcat-compat-"))
    server = start_modelcat(request.param, workdir)
    try:
        yield server.base_url
    finally:
        stop_modelcat(server)
