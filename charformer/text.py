"""load_text(): your own UTF-8 text, from a file or an https URL (downloaded once into a cache)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .data import load_tiny_shakespeare
from .download import check_url, download
from .errors import CharformerError, DownloadError


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/charformer/texts (if absolute, as the XDG spec says), else ~/.cache/charformer/texts."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "charformer" / "texts"


def cached_path(url: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache file for `url`: its last segment after a hash of the whole URL (no two URLs share one)."""
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:80] or "text"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return folder / f"{digest}-{safe_name}"


def decode_text(raw: bytes, name: str, fix: str | None = None) -> str:
    """Strict UTF-8 as `open(path, encoding="utf-8-sig")` reads it; `fix`, the way out, ends each error."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{name} is not UTF-8 text: the byte at offset {error.start} (0-based) is "
            f"0x{raw[error.start]:02x} ({error.reason}); {fix or 'save it as UTF-8 and try again'}"
        ) from None
    text = text.removeprefix("\ufeff")
    if "\r" in text:  # a scan, not a copy, when there is nothing to replace (the common case)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text:
        raise ValueError(f"{name} is empty: there is no text to train on" + (f"; {fix}" if fix else ""))
    return text


def _download_text(url: str, path: Path) -> str:
    """Fetch `url` into the cache file `path`, keeping it only if it decodes (an error otherwise)."""
    texts: list[str] = []
    try:
        download(url, path, check=lambda part: texts.append(
            decode_text(part.read_bytes(), "the answer (HTTP 200)", "nothing was cached")))
    except DownloadError as error:
        cause = error.__cause__  # an OSError of its own: the folder could not be written in
        if not isinstance(cause, OSError) or isinstance(cause, CharformerError):
            raise
        raise DownloadError(f"cannot use the cache folder {path.parent} for {url} ({cause}): pass cache_dir= a "
                            "folder you can write to, or download the file yourself and pass its path") from cause
    return texts[0]


def load_text(
    source: str | os.PathLike[str] | None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> str:
    """The text of a UTF-8 file, or of an https URL downloaded once into `cache_dir` (`refresh=True`
    fetches it again); None is Tiny Shakespeare. A text that starts like an HTML page warns (a
    page's URL instead of the raw file's is the usual mistake)."""
    if source is None:
        return load_tiny_shakespeare()
    if isinstance(source, str) and not source.strip():
        raise ValueError("source is an empty string: pass a file path, an https URL or None (Tiny Shakespeare)")
    if isinstance(source, str) and "://" in source:
        check_url(source)  # a wrong scheme or plain http is refused before the cache is touched
        path = cached_path(source, cache_dir)
        if refresh or not path.is_file():
            return _warn_if_html(_download_text(source, path), source)
        return _warn_if_html(decode_text(path.read_bytes(), f"the cached copy {path} of {source}",
                             f"fetch it again with load_text(url, refresh=True), or delete {path}"), source)
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
    return _warn_if_html(decode_text(raw, str(path)), source)


def _warn_if_html(text: str, source: str | os.PathLike[str]) -> str:
    """`text`, with a warning if it starts like a web page (after whitespace or a BOM)."""
    if text[:4096].lstrip(" \t\r\n\ufeff").lower().startswith(("<!doctype html", "<html")):
        warnings.warn(f"{source} looks like an HTML web page, not a plain text: use the raw file's "
                      "address (on GitHub, the 'Raw' button's URL) or the file itself", stacklevel=3)
    return text
