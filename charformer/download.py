"""download(): fetch a file with requests, verify its SHA-256, and only then put it in place."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .checks import as_int
from .errors import DownloadError, InsecureURLError

_CHUNK_BYTES = 1 << 16
_MAX_REDIRECTS = 10


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_loopback(host: str | None) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_http: bool = False, redirected_from: str | None = None) -> None:
    """https anywhere, http only to this machine (or with `allow_http`): the rule for every hop."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}: use https://")
    if parts.scheme == "http" and not (allow_http or _is_loopback(parts.hostname)):
        hop = f"the redirect from {redirected_from} to " if redirected_from else ""
        raise InsecureURLError(
            f"refusing plain http:// download of {hop}{url}: the file could be altered in transit. "
            "Use https://, or, if you trust this network, cf.download(..., allow_http=True) it and load that file."
        )


class _Retryable(Exception):
    """A failure worth another try: a 5xx answer, a broken connection, a timeout."""


def _fetch_once(url: str, part: Path, timeout: float, session: requests.Session, allow_http: bool) -> str:
    """Stream `url` into `part`, each redirect checked before it is followed; the SHA-256 written."""
    digest = hashlib.sha256()
    current = url
    try:
        for _ in range(_MAX_REDIRECTS + 1):
            # requests resolves the next hop (response.next) but does not send it: checked first.
            with session.get(current, stream=True, timeout=timeout, allow_redirects=False) as response:
                where = "" if current == url else f" from {current} (redirected)"
                if response.next is not None:
                    check_url(response.next.url, allow_http, redirected_from=current)
                    current = response.next.url
                    continue
                if response.status_code >= 500:
                    raise _Retryable(f"server error HTTP {response.status_code}{where}")
                if response.status_code != 200:
                    raise DownloadError(f"HTTP {response.status_code} {response.reason}{where}")
                with open(part, "wb") as handle:
                    for chunk in response.iter_content(_CHUNK_BYTES):
                        handle.write(chunk)
                        digest.update(chunk)
                    if not handle.tell():
                        raise DownloadError(f"HTTP 200 with an empty body{where}")
                    handle.flush()
                    os.fsync(handle.fileno())
                return digest.hexdigest()
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError) as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
    except requests.RequestException as exc:
        raise DownloadError(f"{type(exc).__name__}: {exc}") from exc
    raise DownloadError(f"too many redirects (more than {_MAX_REDIRECTS}), the last to {current}")


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    allow_http: bool = False,
    backoff: float = 0.5,
    check: Callable[[Path], object] | None = None,
) -> Path:
    """Download `url` to `dest` atomically: `dest` holds either the verified file or what it held
    before. Every redirect is checked (`check_url`); `check(path)` may refuse the file (ValueError);
    only 5xx answers, connection errors and timeouts are retried, waiting twice as long each time."""
    dest = Path(dest)
    check_url(url, allow_http)
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    retries = as_int("retries", retries, 0)  # numpy ints too, not bools
    expected = sha256.lower() if sha256 is not None else None

    if expected is not None and dest.is_file() and sha256_of(dest) == expected:
        return dest

    def failure(cause: str) -> DownloadError:
        return DownloadError(f"could not download {url}: {cause}; download it yourself and place it at {dest}")

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        handle, part_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise failure(f"cannot write in folder {dest.parent} ({exc})") from exc
    os.close(handle)
    part = Path(part_name)
    last_cause = "no attempt made"
    try:
        with requests.Session() as session:
            for attempt in range(retries + 1):
                if attempt:
                    time.sleep(backoff * 2 ** (attempt - 1))
                try:
                    actual = _fetch_once(url, part, timeout, session, allow_http)
                    if expected is not None and actual != expected:
                        raise DownloadError(f"checksum mismatch: expected SHA-256 {expected}, got {actual}")
                    if check is not None:
                        check(part)
                    os.replace(part, dest)
                    return dest
                except _Retryable as exc:
                    last_cause = str(exc)
                except InsecureURLError:
                    raise
                except (DownloadError, ValueError) as exc:
                    raise failure(str(exc)) from exc
                except OSError as exc:
                    raise failure(f"cannot write {part} ({exc})") from exc
    finally:
        part.unlink(missing_ok=True)
    raise failure(f"{last_cause} (gave up after {retries + 1} attempts)")
