"""Shared fixtures: the shipped text, its vocabulary and tensors, tiny models, real HTTP and HTTPS
servers (the HTTPS one with a self-signed certificate made by openssl at test time)."""

from __future__ import annotations

import http.server
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import charformer as cf

REPO = Path(__file__).resolve().parent.parent
SHIPPED_TEXT = REPO / "data" / "input.txt"

# The tests replay runs bit for bit, also in child processes, and train's automatic thread count
# moves (and the last digits with it) while other processes take cores
# (charformer.threads.ThreadChoice): so 1 thread here and in every process the tests start.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def text() -> str:
    return SHIPPED_TEXT.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def tokenizer(text: str) -> cf.CharTokenizer:
    return cf.CharTokenizer.from_text(text)


@pytest.fixture(scope="session")
def data(text: str, tokenizer: cf.CharTokenizer) -> torch.Tensor:
    return torch.tensor(tokenizer.encode(text), dtype=torch.long)


@pytest.fixture(scope="session")
def splits(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return cf.train_val_split(data)


def tiny_config(**overrides: object) -> cf.ModelConfig:
    values: dict[str, object] = dict(
        vocab_size=65, block_size=16, n_embd=32, n_head=4, n_layer=2, dropout=0.0
    )
    values.update(overrides)
    return cf.ModelConfig(**values)  # type: ignore[arg-type]


def tiny_model(seed: int = 0, **overrides: object) -> cf.CharTransformer:
    torch.manual_seed(seed)
    return cf.CharTransformer(tiny_config(**overrides))


class FileServer:
    """A real HTTP (or, given a certificate and key, HTTPS) server on 127.0.0.1 whose paths each
    misbehave in one way; `answer` adds a path with a fixed status, headers and body."""

    def __init__(self, payload: bytes, tls_files: tuple[Path, Path] | None = None) -> None:
        self.payload = payload
        self.hits: dict[str, int] = {}
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.scheme = "https" if tls_files else "http"
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _send_body(self, body: bytes, length: int | None = None) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                hits = server.hits[path]
                body = server.payload
                if path in server.answers:
                    status, headers, fixed_body = server.answers[path]
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if status not in (204, 304):  # these carry no body, not even a length
                        self.send_header("Content-Length", str(len(fixed_body)))
                    self.end_headers()
                    self.wfile.write(fixed_body if status not in (204, 304) else b"")
                elif path == "/input.txt":
                    self._send_body(body)
                elif path == "/close-mid-body":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                elif path == "/short-body":
                    self._send_body(body[:1000], length=len(body))
                    self.close_connection = True
                elif path == "/error-500-once":
                    if hits == 1:
                        self.send_response(500)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    else:
                        self._send_body(body)
                elif path == "/error-500-always":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/missing":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/redirect-loop":
                    self.send_response(302)
                    self.send_header("Location", "/redirect-loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/stall":
                    time.sleep(3.0)
                    self._send_body(body)
                elif path == "/other-file":
                    self._send_body(body[::-1])
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls_files:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls_files)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def answer(self, path: str, status: int, body: bytes = b"", **headers: str) -> str:
        """Serve `path` with this status, body and headers from now on; return its URL."""
        self.answers[path] = (status, {name.replace("_", "-"): value for name, value in headers.items()}, body)
        return self.url(path)


def serving(server: FileServer) -> Iterator[FileServer]:
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    yield from serving(FileServer(SHIPPED_TEXT.read_bytes()))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def https_server(tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    """An HTTPS FileServer whose self-signed certificate requests trusts (REQUESTS_CA_BUNDLE)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
    yield from serving(FileServer(SHIPPED_TEXT.read_bytes(), tls_files))
