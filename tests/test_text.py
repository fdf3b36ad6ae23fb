"""load_text on real files and a real local HTTP server; narrow tokens; `train --text` end to end."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import charformer as cf

from .conftest import REPO, SHIPPED_TEXT, FileServer, tiny_model

run_module = importlib.import_module("charformer.run")  # the books of a train() call
TINY_TRAIN = dict(batch_size=4, eval_interval=10, eval_iters=2, learning_rate=3e-3, seed=3)


def write_bytes(folder: Path, name: str, raw: bytes) -> Path:
    path = folder / name
    path.write_bytes(raw)
    return path


# --- load_text: files ------------------------------------------------------------------------


def test_reads_a_file_as_text_mode_does(tmp_path: Path) -> None:
    raw = "\ufeffline one\r\nline two\rline three\n\r\nend ✓ 𝄞".encode("utf-8")
    path = write_bytes(tmp_path, "mixed.txt", raw)
    text = cf.load_text(path)
    assert text == "line one\nline two\nline three\n\nend ✓ 𝄞"
    # Python's universal newlines (and utf-8-sig for the byte-order mark) read the same text.
    with open(path, encoding="utf-8-sig") as handle:
        assert text == handle.read()
    assert cf.load_text(str(path)) == text
    assert cf.load_text(SHIPPED_TEXT) == SHIPPED_TEXT.read_text(encoding="utf-8")


def test_none_is_tiny_shakespeare() -> None:
    assert cf.load_text(None) == cf.load_tiny_shakespeare()


def test_only_a_leading_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "bom.txt", "\ufeffa\ufeffb".encode("utf-8"))
    assert cf.load_text(path) == "a\ufeffb"


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        (b"hello \xff world", 6),
        (b"\xef\xbb\xbfabc\x80", 6),  # the offset counts the byte-order mark: it is the file's
        ("caf\u00e9 ".encode("utf-8") + b"\xc3", 6),  # a sequence cut short at the end
        ("Ünïcödé".encode("latin-1"), 0),
    ],
)
def test_not_utf8_names_the_first_bad_byte(tmp_path: Path, raw: bytes, offset: int) -> None:
    path = write_bytes(tmp_path, "latin.txt", raw)
    with pytest.raises(ValueError, match="not UTF-8") as caught:
        cf.load_text(path)
    message = str(caught.value)
    assert f"offset {offset} (0-based)" in message and str(path) in message
    assert len(message.splitlines()) == 1
    assert not isinstance(caught.value, UnicodeDecodeError)


@pytest.mark.parametrize("raw", [b"", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, raw: bytes) -> None:
    path = write_bytes(tmp_path, "empty.txt", raw)
    with pytest.raises(ValueError, match="is empty") as caught:
        cf.load_text(path)
    assert str(path) in str(caught.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "lyrics.txt"
    with pytest.raises(FileNotFoundError) as caught:
        cf.load_text(missing)
    assert str(missing) in str(caught.value)
    with pytest.raises(IsADirectoryError, match="folder"):
        cf.load_text(tmp_path)
    with pytest.raises(ValueError, match="a path, an https URL or None"):
        cf.load_text(42)  # type: ignore[arg-type]


def test_too_short_for_the_split_and_block_size(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, "short.txt", b"To be, or not to be: that is the question.\n" * 4)
    text = cf.load_text(path)
    tokenizer = cf.CharTokenizer.from_text(text)
    data = tokenizer.encode_array(text)
    with pytest.raises(ValueError) as caught:
        cf.train_val_split(data, block_size=32)
    message = str(caught.value)
    assert "too short" in message and "split" in message and "block_size=32" in message
    assert "90/10" in message
    train, val = cf.train_val_split(data, block_size=8)  # 176 characters: 17 for val is enough
    assert len(train) + len(val) == len(data)
    # train() and get_batch say the same when handed the short side directly.
    train, val = cf.train_val_split(data)
    model = tiny_model(vocab_size=tokenizer.vocab_size, block_size=32)
    with pytest.raises(ValueError) as caught:
        cf.train(model, train, val, cf.TrainConfig(max_iters=1, **TINY_TRAIN))
    message = str(caught.value)
    assert "val_data" in message and "too short" in message and "split" in message
    assert "block_size=32" in message
    with pytest.raises(ValueError, match="too short.*block_size=32.*split"):
        cf.get_batch(val, 2, 32)


# --- load_text: URLs ---------------------------------------------------------------------------


def test_url_is_downloaded_once_into_the_cache(file_server: FileServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    url = file_server.url("/input.txt")
    text = cf.load_text(url, cache_dir=cache)
    assert text == SHIPPED_TEXT.read_text(encoding="utf-8")
    cached = list(cache.iterdir())
    assert len(cached) == 1 and cached[0].name.endswith("input.txt")  # no temporary files left
    assert cf.load_text(url, cache_dir=cache) == text
    assert file_server.hits == {"/input.txt": 1}  # the cached copy made no request
    # Another URL ending in the same file name gets its own cache file.
    assert cf.load_text(file_server.url("/input.txt?copy=2"), cache_dir=cache) == text
    assert file_server.hits == {"/input.txt": 2}
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 2 and all(name.endswith("-input.txt") for name in names)


def test_url_cache_defaults_to_xdg_cache_home(file_server: FileServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cf.load_text(file_server.url("/input.txt"))
    folder = tmp_path / "xdg" / "charformer" / "texts"
    assert [p.name.endswith("input.txt") for p in folder.iterdir()] == [True]
    monkeypatch.delenv("XDG_CACHE_HOME")
    default = cf.text.default_cache_dir()
    assert default == Path.home() / ".cache" / "charformer" / "texts"
    assert REPO not in default.parents  # never into the repository


def test_url_failures(file_server: FileServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    url = file_server.url("/missing")
    with pytest.raises(cf.DownloadError, match="HTTP 404") as caught:
        cf.load_text(url, cache_dir=cache)
    assert url in str(caught.value)
    assert list(cache.iterdir()) == []  # nothing half-written stays behind
    with pytest.raises(cf.InsecureURLError, match="https"):
        cf.load_text("http://example.com/lyrics.txt", cache_dir=cache)
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        cf.load_text("ftp://example.com/lyrics.txt", cache_dir=cache)


def test_a_body_that_is_not_utf8_is_never_cached(https_server: FileServer, tmp_path: Path, text: str) -> None:
    url = https_server.answer("/latin1.txt", 200, "café au lait\n".encode("latin-1"))
    with pytest.raises(cf.DownloadError) as caught:
        cf.load_text(url, cache_dir=tmp_path)
    message = str(caught.value)
    assert url in message and "HTTP 200" in message and "not UTF-8" in message and "offset 3" in message
    assert "save it as UTF-8" not in message  # a URL cannot be re-saved; nothing was cached
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(cf.DownloadError):
        cf.load_text(url, cache_dir=tmp_path)
    assert https_server.hits["/latin1.txt"] == 2  # asked again: no bad copy in the way


@pytest.mark.parametrize(("raw", "problem"), [(b"", "is empty"), (b"caf\xe9", "not UTF-8")])
def test_errors_about_a_cached_copy_name_it_and_how_to_refresh(
    https_server: FileServer, tmp_path: Path, text: str, raw: bytes, problem: str
) -> None:
    url = https_server.url("/input.txt")
    cached = cf.text.cached_path(url, tmp_path)
    cached.write_bytes(raw)  # a copy damaged, or placed by hand, after it was cached
    with pytest.raises(ValueError) as caught:
        cf.load_text(url, cache_dir=tmp_path)
    message = str(caught.value)
    assert problem in message and str(cached) in message and url in message
    assert "refresh=True" in message and "delete" in message
    assert "input.txt" not in https_server.hits  # the cached copy was read, no request made
    assert cf.load_text(url, cache_dir=tmp_path, refresh=True) == text
    assert cached.read_text(encoding="utf-8") == text and https_server.hits["/input.txt"] == 1


@pytest.mark.parametrize("start", ["<!DOCTYPE html>\n<html>", "\ufeff \n\t<HTML lang='en'>", "<!doctype HTML>"])
def test_a_text_that_looks_like_html_warns(https_server: FileServer, tmp_path: Path, start: str) -> None:
    raw = (start + "<body>ROMEO: but soft</body></html>\n").encode("utf-8")
    page = write_bytes(tmp_path, "page.txt", raw)
    url = https_server.answer("/blob/main/input.txt", 200, raw)
    for source in (str(page), url):
        with pytest.warns(UserWarning, match="looks like an HTML web page.*raw") as caught:
            cf.load_text(source, cache_dir=tmp_path / "cache")
        assert source in str(caught[0].message)


def test_text_mentioning_html_later_does_not_warn(tmp_path: Path) -> None:
    import warnings

    path = write_bytes(tmp_path, "notes.txt", b"notes on <html> tags\n<!DOCTYPE html> is first\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cf.load_text(path).startswith("notes")


def test_an_empty_source_string_says_so() -> None:
    for source in ("", "  "):
        with pytest.raises(ValueError, match="empty string.*file path.*URL.*None"):
            cf.load_text(source)


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for relative in ("relative/cache", "~/cache"):  # the spec: a relative path is invalid, ignore it
        monkeypatch.setenv("XDG_CACHE_HOME", relative)
        assert cf.text.default_cache_dir() == Path.home() / ".cache" / "charformer" / "texts"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "abs"))
    assert cf.text.default_cache_dir() == tmp_path / "abs" / "charformer" / "texts"


# --- narrow tokens -----------------------------------------------------------------------------


def test_encode_array_equals_encode(text: str, tokenizer: cf.CharTokenizer) -> None:
    ids = tokenizer.encode_array(text)
    assert ids.dtype == torch.uint8 and ids.shape == (len(text),)
    assert ids.tolist() == tokenizer.encode(text)
    assert tokenizer.token_dtype == torch.uint8
    empty = tokenizer.encode_array("")
    assert empty.dtype == torch.uint8 and empty.numel() == 0


def test_encode_array_crosses_chunk_boundaries(text: str, tokenizer: cf.CharTokenizer) -> None:
    long_text = text * 4  # 4.5M characters: more than one ENCODE_CHUNK_CHARS chunk
    assert len(long_text) > cf.data.ENCODE_CHUNK_CHARS
    ids = tokenizer.encode_array(long_text)
    assert torch.equal(ids[: len(text)], ids[-len(text):])
    assert ids[: len(text)].tolist() == tokenizer.encode(text)


@pytest.mark.parametrize(
    ("vocab_size", "dtype"), [(256, torch.uint8), (257, torch.int16), (32767, torch.int16),
                              (32768, torch.int32)]
)
def test_wider_vocabularies_get_wider_ids(vocab_size: int, dtype: torch.dtype) -> None:
    # Code points from U+00A0 on: accents, CJK, lone surrogates (legal in a str) and beyond.
    chars = [chr(0xA0 + i) for i in range(vocab_size - 2)] + ["\n", "🎶"]
    tokenizer = cf.CharTokenizer(chars[::-1])  # not sorted: ids are positions, not code points
    sample = "".join(chars[::97]) + "🎶\n" + chars[-3] + chars[0]
    ids = tokenizer.encode_array(sample)
    assert ids.dtype == dtype == tokenizer.token_dtype
    assert ids.tolist() == tokenizer.encode(sample)


def test_encode_array_unknown_characters_fail_as_encode_does(tokenizer: cf.CharTokenizer) -> None:
    for bad in ("naïve", "ROMEO 🎶", "a\udc80"):
        with pytest.raises(ValueError) as from_list:
            tokenizer.encode(bad)
        with pytest.raises(ValueError) as from_array:
            tokenizer.encode_array(bad)
        assert str(from_array.value) == str(from_list.value)
    with pytest.raises(ValueError, match="takes a str"):
        tokenizer.encode_array(b"bytes")  # type: ignore[arg-type]


def test_narrow_data_trains_the_same_weights(text: str, tokenizer: cf.CharTokenizer) -> None:
    narrow = tokenizer.encode_array(text[:60_000])
    wide = narrow.long()
    histories, models = [], []
    for data in (narrow, wide):
        train, val = cf.train_val_split(data, block_size=16)
        assert train.dtype == data.dtype
        model = tiny_model(seed=1, dropout=0.1)
        histories.append(cf.train(model, train, val, cf.TrainConfig(max_iters=20, **TINY_TRAIN)))
        models.append(model)
    for (name, a), (_, b) in zip(models[0].state_dict().items(), models[1].state_dict().items()):
        assert torch.equal(a, b), name
    assert histories[0].to_dict() | {"elapsed": None, "train_seconds": None} == \
        histories[1].to_dict() | {"elapsed": None, "train_seconds": None}
    assert histories[0].final_val_chars == len(narrow) - int(0.9 * len(narrow))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32])
def test_narrow_batches_and_losses_widen_only_the_batch(data: torch.Tensor, dtype: torch.dtype) -> None:
    narrow = data.to(dtype)
    x, y = cf.get_batch(narrow, 4, 8, generator=torch.Generator().manual_seed(5))
    wide_x, wide_y = cf.get_batch(data, 4, 8, generator=torch.Generator().manual_seed(5))
    assert x.dtype == y.dtype == torch.long
    assert torch.equal(x, wide_x) and torch.equal(y, wide_y)
    model = tiny_model()
    val = narrow[-3000:]
    assert cf.whole_split_loss(model, val) == cf.whole_split_loss(model, val.long())
    capped = cf.whole_split_loss(model, val, max_chars=1000)
    assert capped == cf.whole_split_loss(model, val[:1000]) != cf.whole_split_loss(model, val)
    with pytest.raises(ValueError, match="max_chars"):
        cf.whole_split_loss(model, val, max_chars=True)
    evaluators = [cf.Evaluator(d[:-3000], d[-3000:], 16, 2, 4, seed=1) for d in (narrow, data)]
    assert evaluators[0](model) == evaluators[1](model)


def test_the_cap_is_a_million_characters() -> None:
    assert run_module.FINAL_VAL_MAX_CHARS == 1_000_000


def test_end_of_run_val_pass_is_capped(text: str, tokenizer: cf.CharTokenizer, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = tokenizer.encode_array(text[:50_000])
    train, val = cf.train_val_split(data)
    model = tiny_model()
    history = cf.train(model, train, val, cf.TrainConfig(max_iters=10, **TINY_TRAIN))
    assert history.final_val_chars == len(val) == 5000
    assert "whole val split" in capsys.readouterr().out

    monkeypatch.setattr(run_module, "FINAL_VAL_MAX_CHARS", 1200)
    history = cf.train(model, train, val, cf.TrainConfig(max_iters=20, **TINY_TRAIN), history=history)
    assert history.final_val_chars == 1200
    assert history.final_val_loss == cf.whole_split_loss(model, val[:1200])
    assert "val split (its first 1,200 of 5,000 characters)" in capsys.readouterr().out


# --- the command line --------------------------------------------------------------------------


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charformer", *args], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1", **env}, cwd=REPO)


def test_cli_trains_on_your_text_and_samples_from_it(tmp_path: Path) -> None:
    # No newline and no capital letters: the sample's default prompt must come from the vocabulary.
    verse = "ла-ла-ла, a song of mine; twinkle twinkle little star, how i wonder what you are. "
    path = write_bytes(tmp_path, "song.txt", (verse * 40).encode("utf-8"))
    checkpoint_path = tmp_path / "song.pt"
    trained = run_cli("train", "--text", str(path), "--max-iters", "6", "--eval-interval", "3",
                      "--eval-iters", "1", "--sample-chars", "20", "--save", str(checkpoint_path))
    assert trained.returncode == 0, trained.stderr
    assert f"{len(verse) * 40:,} characters, vocabulary of {len(set(verse))}" in trained.stdout
    checkpoint = cf.load_checkpoint(checkpoint_path)
    assert checkpoint.tokenizer.chars == sorted(set(verse))

    sampled = run_cli("sample", str(checkpoint_path), "--chars", "30", "--seed", "2")
    assert sampled.returncode == 0, sampled.stderr
    out = sampled.stdout[:-1]  # the final newline the command adds
    assert out.startswith(" ") and len(out) == 31  # " " is the vocabulary's first character
    assert set(out) <= set(verse)

    refused = run_cli("sample", str(checkpoint_path), "--prompt", "ROMEO:")
    assert refused.returncode == 1 and "not in the vocabulary" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"too short to train on\n" * 3, "too short"), (b"\xfe\xff", "not UTF-8"), (None, "no such text file")],
)
def test_cli_bad_text_is_one_line(tmp_path: Path, raw: bytes | None, expected: str) -> None:
    path = tmp_path / "input.txt"
    if raw is not None:
        path.write_bytes(raw)
    result = run_cli("train", "--text", str(path), "--max-iters", "2")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert expected in result.stderr
    if expected != "too short":
        assert str(path) in result.stderr


def test_cli_trains_on_a_url(tmp_path: Path) -> None:
    verse = "Row, row, row your boat\r\nGently down the stream.\r\n"
    server = FileServer((verse * 30).encode("utf-8"))
    server.thread.start()
    try:
        cache = tmp_path / "xdg"
        url = server.url("/input.txt")
        result = run_cli("train", "--text", url, "--max-iters", "2", "--eval-interval", "2",
                         "--eval-iters", "1", "--sample-chars", "5", XDG_CACHE_HOME=str(cache))
        assert result.returncode == 0, result.stderr
        assert f"{(len(verse) - 2) * 30:,} characters" in result.stdout  # \r\n read as \n
        texts = cache / "charformer" / "texts"
        assert len(list(texts.iterdir())) == 1
        assert cf.load_text(url, cache_dir=texts) == (verse * 30).replace("\r\n", "\n")
        assert server.hits == {"/input.txt": 1}  # read from the copy the command cached
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
