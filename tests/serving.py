"""The real server in a subprocess on a loopback port, for tests that talk to it over HTTP."""

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

STARTUP_TIMEOUT_S = 180


@dataclasses.dataclass
class Server:
    url: str  # e.g. http://127.0.0.1:PORT
    process: subprocess.Popen
    log_path: str

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as response:
            return json.load(response)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(model_dir, log_dir, *args: str):
    """`python -m alignjax.serve --model model_dir *args` on a free port, ready (GET /health answers) on entry,
    stopped on exit. Its log goes to `log_dir`/serve-PORT.log."""
    port = free_port()
    log_path = os.path.join(str(log_dir), f"serve-{port}.log")
    command = [sys.executable, "-m", "alignjax.serve", "--model", str(model_dir), "--port", str(port), *args]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.process.returncode}:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /health within {STARTUP_TIMEOUT_S} s:\n{server.log()[-3000:]}")
