"""download(): fetch a file with requests, verify its SHA-256, and only then put it in place."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tempfile
import time
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
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, allow_http: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        if allow_http or _is_loopback(parts.hostname):
            return
        raise InsecureURLError(
            f"refusing plain http:// download of {url}: the file could be altered in transit. "
            "Use https://, or pass allow_http=True if you trust this network."
        )
    raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}: use https://")


class _Retryable(Exception):
    """A failure worth another try: a 5xx answer, a broken connection, a timeout."""


def _fetch_once(url: str, part: Path, timeout: float, session: requests.Session) -> str:
    """Stream `url` into `part`; return the hex SHA-256 of what was written."""
    digest = hashlib.sha256()
    try:
        with session.get(url, stream=True, timeout=timeout) as response:
            if response.status_code >= 500:
                raise _Retryable(f"server error HTTP {response.status_code}")
            if response.status_code >= 400:
                raise DownloadError(f"HTTP {response.status_code} {response.reason}")
            with open(part, "wb") as handle:
                for chunk in response.iter_content(_CHUNK_BYTES):
                    handle.write(chunk)
                    digest.update(chunk)
                handle.flush()
                os.fsync(handle.fileno())
    except requests.TooManyRedirects as exc:
        raise DownloadError(f"too many redirects ({exc})") from exc
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError) as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
    except requests.RequestException as exc:
        raise DownloadError(f"{type(exc).__name__}: {exc}") from exc
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    allow_http: bool = False,
    backoff: float = 0.5,
) -> Path:
    """Download `url` to `dest` atomically: `dest` holds either the verified file or what it held before.

    Retries (waiting `backoff`, then twice as long each time) only what may pass: 5xx answers,
    connection errors and timeouts. A 4xx answer or a wrong checksum fails at once.
    """
    dest = Path(dest)
    _check_url(url, allow_http)
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    retries = as_int("retries", retries, 0)  # numpy ints too, not bools
    expected = sha256.lower() if sha256 is not None else None

    if expected is not None and dest.is_file() and sha256_of(dest) == expected:
        return dest

    def failure(cause: str) -> DownloadError:
        return DownloadError(
            f"could not download {url}: {cause}. "
            f"You can download it yourself and place it at {dest}"
        )

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise failure(f"cannot create folder {dest.parent} ({exc})") from exc

    session = requests.Session()
    session.max_redirects = _MAX_REDIRECTS
    last_cause = "no attempt made"
    try:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            handle, part_name = tempfile.mkstemp(
                prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
            )
            os.close(handle)
            part = Path(part_name)
            try:
                actual = _fetch_once(url, part, timeout, session)
                if expected is not None and actual != expected:
                    raise DownloadError(
                        f"checksum mismatch: expected SHA-256 {expected}, got {actual}"
                    )
                os.replace(part, dest)
                return dest
            except _Retryable as exc:
                last_cause = str(exc)
            except DownloadError as exc:
                raise failure(str(exc)) from exc
            except OSError as exc:
                raise failure(f"cannot write {part} ({exc})") from exc
            finally:
                part.unlink(missing_ok=True)
    finally:
        session.close()
    raise failure(f"{last_cause} (gave up after {retries + 1} attempts)")
