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


# --- every hop checked, only a 200 with a body is the file (issue 25) ---------------------------


def remote_http_url(server: FileServer, path: str) -> str:
    """`server`'s `path` by way of 0.0.0.0: not a loopback address by the rule (so refused), yet
    on Linux it reaches this machine, so a request that should not happen is counted, not sent out."""
    return f"http://0.0.0.0:{server.httpd.server_address[1]}{path}"


def fetch_with(function: str, url: str, folder: Path) -> object:
    if function == "download":
        return cf.download(url, folder / "x.txt", **FAST)
    return cf.load_text(url, cache_dir=folder)


@pytest.mark.parametrize("function", ["download", "load_text"])
@pytest.mark.parametrize("first_hop", ["https", "http-loopback"])
def test_a_redirect_to_remote_http_is_refused_before_any_request(
    file_server: FileServer, https_server: FileServer, tmp_path: Path, function: str, first_hop: str
) -> None:
    target = remote_http_url(file_server, "/input.txt")
    start = https_server if first_hop == "https" else file_server
    url = start.answer("/moved", 302, Location=target)
    with pytest.raises(cf.InsecureURLError) as caught:
        fetch_with(function, url, tmp_path / "out")
    assert url in str(caught.value) and target in str(caught.value)  # both hops named
    assert "/input.txt" not in file_server.hits  # refused before any connection to it
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []
    # The same redirect, allowed, does reach the target: the count above could have failed.
    cf.download(url, tmp_path / "allowed.txt", allow_http=True, **FAST)
    assert file_server.hits["/input.txt"] == 1


def test_redirects_within_the_rule_are_followed(
    file_server: FileServer, https_server: FileServer, tmp_path: Path, text: str
) -> None:
    relative = https_server.answer("/relative", 301, Location="/input.txt")
    to_loopback_http = https_server.answer("/to-loopback", 307, Location=file_server.url("/input.txt"))
    assert cf.load_text(relative, cache_dir=tmp_path) == text
    assert cf.load_text(to_loopback_http, cache_dir=tmp_path) == text
    assert https_server.hits["/input.txt"] == 1 and file_server.hits["/input.txt"] == 1


@pytest.mark.parametrize(
    ("status", "body", "headers", "cause"),
    [
        (204, b"", {}, "HTTP 204"),
        (304, b"", {}, "HTTP 304"),
        (200, b"", {}, "HTTP 200 with an empty body"),
        (300, b"pick one", {"Location": "/input.txt"}, "HTTP 300"),  # not a redirect requests follows
        (206, b"partial", {}, "HTTP 206"),
    ],
)
@pytest.mark.parametrize("function", ["download", "load_text"])
def test_only_a_200_answer_with_a_body_is_the_file(
    https_server: FileServer, tmp_path: Path, function: str, status: int, body: bytes,
    headers: dict[str, str], cause: str
) -> None:
    url = https_server.answer("/odd", status, body, **headers)
    for attempt in (1, 2):  # nothing is cached, so the second call asks again (and fails again)
        with pytest.raises(cf.DownloadError) as caught:
            fetch_with(function, url, tmp_path)
        assert url in str(caught.value) and cause in str(caught.value)
        assert leftovers(tmp_path) == []
        assert https_server.hits["/odd"] == attempt  # not retried: it would not pass


def test_a_status_after_a_redirect_names_the_hop(https_server: FileServer, tmp_path: Path) -> None:
    url = https_server.answer("/moved", 302, Location="/missing")
    with pytest.raises(cf.DownloadError, match=r"HTTP 404 .*from https://127\.0\.0\.1:\d+/missing"):
        cf.download(url, tmp_path / "x.txt", **FAST)


@pytest.mark.parametrize("where", ["under a regular file", "/proc"])
def test_an_unusable_folder_is_a_download_error_naming_it(
    https_server: FileServer, tmp_path: Path, where: str
) -> None:
    # Read-only by permission would not stop root; a folder under a regular file, and /proc
    # (where no file can be made by anyone), are unusable whoever runs the tests.
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / "a-file" / "cache" if where != "/proc" else Path("/proc")
    url = https_server.url("/input.txt")
    with pytest.raises(cf.DownloadError) as caught:
        cf.download(url, folder / "input.txt", **FAST)
    assert str(folder) in str(caught.value) and "place it at" in str(caught.value)
    with pytest.raises(cf.DownloadError) as caught:
        cf.load_text(url, cache_dir=folder)
    message = str(caught.value)
    assert str(folder) in message and "cache_dir" in message and "yourself" in message
    assert "\n" not in message
