"""load_text(): your own UTF-8 text, from a file or an https URL (downloaded once into a cache)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .data import load_tiny_shakespeare
from .download import download

_URL_SCHEMES = ("http", "https")


def default_cache_dir() -> Path:
    """Where downloaded texts are kept: $XDG_CACHE_HOME/charformer/texts, else ~/.cache/charformer/texts."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "charformer" / "texts"


def _is_url(source: str) -> bool:
    return "://" in source and urlsplit(source).scheme.lower() != ""


def cached_path(url: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache file for `url`: its last path segment, prefixed by a hash of the whole URL so that
    two URLs ending in the same name never share a file."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:80] or "text"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return folder / f"{digest}-{safe_name}"


def decode_text(raw: bytes, name: str) -> str:
    """Strict UTF-8 with Python's universal newlines: a leading byte-order mark is dropped, and
    "\\r\\n" and a lone "\\r" both become "\\n" (what `open(path, encoding="utf-8")` does)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{name} is not UTF-8 text: the byte at offset {error.start} (0-based) is "
            f"0x{raw[error.start]:02x} ({error.reason}); save it as UTF-8 and try again"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:  # a scan, not a copy, when there is nothing to replace (the common case)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text:
        raise ValueError(f"{name} is empty: there is no text to train on")
    return text


def load_text(
    source: str | os.PathLike[str] | None, *, cache_dir: str | os.PathLike[str] | None = None
) -> str:
    """The text of a UTF-8 file, or of an https URL downloaded once into a per-user cache; None
    is Tiny Shakespeare (`load_tiny_shakespeare()`), so `text_source = None` means the default.

    A URL is fetched with `download` (atomic: the cache holds the whole file or nothing) into
    `cache_dir` (default: `default_cache_dir()`, never the repository); a cached copy is read
    without a network call, so delete it to fetch again. Plain http:// is refused except to this
    machine, as `download` does (InsecureURLError). See `decode_text` for how bytes become text.
    """
    if source is None:
        return load_tiny_shakespeare()
    if isinstance(source, str) and _is_url(source):
        scheme = urlsplit(source).scheme.lower()
        if scheme not in _URL_SCHEMES:
            raise ValueError(f"unsupported URL scheme {scheme!r} in {source!r}: use https://")
        path = cached_path(source, cache_dir)
        if not path.is_file():
            download(source, path)
        return decode_text(path.read_bytes(), source)
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(
            f"source must be a path, an https URL or None (Tiny Shakespeare), got {type(source).__name__}"
        )
    path = Path(source).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; load_text wants a text file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such text file", str(path)) from None
    return decode_text(raw, str(path))
