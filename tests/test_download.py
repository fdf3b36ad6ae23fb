"""download() against a real local HTTP server that misbehaves in every way the issue lists."""

from __future__ import annotations

from pathlib import Path

import pytest

import charformer as cf
from charformer.download import sha256_of

from .conftest import FileServer

FAST = dict(timeout=1.0, retries=2, backoff=0.01)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_downloads_and_verifies(file_server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "nested" / "deeper" / "input.txt"
    path = cf.download(file_server.url("/input.txt"), dest, sha256=cf.TINY_SHAKESPEARE_SHA256, **FAST)
    assert path == dest
    assert sha256_of(dest) == cf.TINY_SHAKESPEARE_SHA256
    assert leftovers(dest.parent) == ["input.txt"]


def test_existing_good_file_makes_no_request(file_server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "input.txt"
    cf.download(file_server.url("/input.txt"), dest, sha256=cf.TINY_SHAKESPEARE_SHA256, **FAST)
    cf.download(file_server.url("/input.txt"), dest, sha256=cf.TINY_SHAKESPEARE_SHA256, **FAST)
    assert file_server.hits == {"/input.txt": 1}


def test_existing_wrong_file_is_replaced(file_server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "input.txt"
    dest.write_text("not shakespeare")
    cf.download(file_server.url("/input.txt"), dest, sha256=cf.TINY_SHAKESPEARE_SHA256, **FAST)
    assert sha256_of(dest) == cf.TINY_SHAKESPEARE_SHA256


@pytest.mark.parametrize(
    ("path", "cause"),
    [
        ("/close-mid-body", "gave up after 3 attempts"),
        ("/short-body", "gave up after 3 attempts"),
        ("/error-500-always", "HTTP 503"),
        ("/redirect-loop", "redirect"),
        ("/stall", "gave up after 3 attempts"),
        ("/other-file", "checksum mismatch"),
        ("/missing", "HTTP 404"),
    ],
)
def test_every_failure_is_a_clean_download_error(
    file_server: FileServer, tmp_path: Path, path: str, cause: str
) -> None:
    dest = tmp_path / "input.txt"
    url = file_server.url(path)
    kwargs = dict(FAST, timeout=0.5) if path == "/stall" else FAST
    with pytest.raises(cf.DownloadError) as caught:
        cf.download(url, dest, sha256=cf.TINY_SHAKESPEARE_SHA256, **kwargs)
    message = str(caught.value)
    assert url in message
    assert cause in message
    assert str(dest) in message  # where to place the file by hand
    assert isinstance(caught.value, OSError)
    assert leftovers(tmp_path) == []  # no partial file, no temp file
    # The good case right after a bad one still works.
    cf.download(file_server.url("/input.txt"), dest, sha256=cf.TINY_SHAKESPEARE_SHA256, **FAST)
    assert leftovers(tmp_path) == ["input.txt"]


def test_retries_only_what_may_pass(file_server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "input.txt"
    cf.download(file_server.url("/error-500-once"), dest, sha256=cf.TINY_SHAKESPEARE_SHA256, **FAST)
    assert file_server.hits["/error-500-once"] == 2
    assert sha256_of(dest) == cf.TINY_SHAKESPEARE_SHA256
    with pytest.raises(cf.DownloadError):
        cf.download(file_server.url("/missing"), tmp_path / "x.txt", **FAST)
    assert file_server.hits["/missing"] == 1  # a 4xx is not retried
    with pytest.raises(cf.DownloadError):
        cf.download(file_server.url("/error-500-always"), tmp_path / "y.txt", **FAST)
    assert file_server.hits["/error-500-always"] == 3  # 1 try + 2 retries


def test_failed_download_keeps_the_previous_file(file_server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "input.txt"
    dest.write_text("previous contents")
    with pytest.raises(cf.DownloadError):
        cf.download(file_server.url("/other-file"), dest, sha256=cf.TINY_SHAKESPEARE_SHA256, **FAST)
    assert dest.read_text() == "previous contents"
    assert leftovers(tmp_path) == ["input.txt"]


def test_plain_http_refused_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(cf.DownloadError) as caught:
        cf.download("http://example.com/input.txt", tmp_path / "input.txt")
    assert isinstance(caught.value, ValueError)
    assert "http://example.com/input.txt" in str(caught.value)
    assert leftovers(tmp_path) == []


def test_plain_http_to_a_name_resolving_to_loopback_needs_opt_in(
    file_server: FileServer, tmp_path: Path
) -> None:
    port = file_server.httpd.server_address[1]
    url = f"http://localhost:{port}/input.txt"
    cf.download(url, tmp_path / "input.txt", sha256=cf.TINY_SHAKESPEARE_SHA256, **FAST)
    # 0.0.0.0 is not a loopback address: refused without the opt-in, attempted with it
    # (and then fails to connect, since nothing listens on port 9).
    with pytest.raises(cf.InsecureURLError):
        cf.download("http://0.0.0.0:9/x", tmp_path / "x", **FAST)
    with pytest.raises(cf.DownloadError) as caught:
        cf.download("http://0.0.0.0:9/x", tmp_path / "x", allow_http=True, **FAST)
    assert not isinstance(caught.value, cf.InsecureURLError)


@pytest.mark.parametrize("url", ["ftp://example.com/file", "file:///etc/passwd", "not a url"])
def test_unsupported_schemes_are_invalid_arguments(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError):
        cf.download(url, tmp_path / "x")


def test_bad_arguments(file_server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        cf.download(file_server.url("/input.txt"), tmp_path / "x", timeout=0)
    with pytest.raises(ValueError):
        cf.download(file_server.url("/input.txt"), tmp_path / "x", retries=-1)


def test_load_tiny_shakespeare_downloads_when_missing(
    file_server: FileServer, tmp_path: Path, text: str
) -> None:
    folder = tmp_path / "data"
    loaded = cf.load_tiny_shakespeare(folder, url=file_server.url("/input.txt"))
    assert loaded == text
    assert file_server.hits == {"/input.txt": 1}
    # A damaged copy is detected by its checksum and fetched again.
    (folder / "input.txt").write_text("damaged")
    assert cf.load_tiny_shakespeare(folder, url=file_server.url("/input.txt")) == text
    assert file_server.hits == {"/input.txt": 2}


def test_load_tiny_shakespeare_follows_env_var(
    file_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("CHARFORMER_DATA", str(tmp_path / "from-env"))
    assert cf.load_tiny_shakespeare(url=file_server.url("/input.txt")) == text
    assert (tmp_path / "from-env" / "input.txt").is_file()


def test_load_tiny_shakespeare_uses_the_shipped_copy_offline(text: str) -> None:
    # No server at all: the repository's data/ copy is used as is.
    assert cf.load_tiny_shakespeare(url="https://127.0.0.1:9/unreachable") == text
