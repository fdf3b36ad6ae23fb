"""A big text: encode throughput, and the peak memory of loading, encoding and training on it.

  python -m benchmarks.big_text --mb 200 --json big_text.json

Writes a synthetic text (characters drawn from Tiny Shakespeare's character frequencies) to
/tmp, never to the repository, then measures in fresh child processes, one per variant:
  narrow: cf.load_text -> CharTokenizer.from_text -> encode_array (uint8) -> cf.train
  list:   cf.load_text -> CharTokenizer.from_text -> torch.tensor(encode(text), dtype=long) -> cf.train
(the list-and-int64 path the package and the notebook used before). Each child keeps the text
alive while it trains, as the notebook does, and reports its peak RSS (VmHWM) after each phase.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

import charformer as cf

from .memory import _status_kib

VARIANTS = ("narrow", "list")


def write_synthetic_text(path: Path, n_bytes: int, seed: int = 0, chunk: int = 1 << 23) -> Path:
    """`n_bytes` of ASCII characters drawn independently with Tiny Shakespeare's frequencies."""
    counts = Counter(cf.load_tiny_shakespeare())
    chars = sorted(counts)
    codes = np.array([ord(c) for c in chars], dtype=np.uint8)
    probabilities = np.array([counts[c] for c in chars], dtype=np.float64)
    probabilities /= probabilities.sum()
    rng = np.random.default_rng(seed)
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as handle:
        for start in range(0, n_bytes, chunk):
            handle.write(rng.choice(codes, size=min(chunk, n_bytes - start), p=probabilities).tobytes())
    os.replace(part, path)
    return path


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def child(path: Path, variant: str, steps: int, threads: int) -> dict[str, Any]:
    """One variant in this (fresh) process: phase by phase, seconds and peak RSS so far."""
    torch.set_num_threads(threads)
    phases: list[dict[str, Any]] = []
    clock = time.perf_counter()

    def mark(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases.append({"phase": name, "seconds": round(now - clock, 2),
                       "rss_mib": _mib(_status_kib("VmRSS")), "peak_rss_mib": _mib(_status_kib("VmHWM"))})
        clock = time.perf_counter()

    mark("start (python, torch, charformer imported)")
    text = cf.load_text(path)
    mark("load_text")
    tokenizer = cf.CharTokenizer.from_text(text)
    mark("CharTokenizer.from_text")
    if variant == "narrow":
        data = tokenizer.encode_array(text)
    else:
        data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    mark("encode_array" if variant == "narrow" else "torch.tensor(encode(text), dtype=long)")
    model_config = cf.ModelConfig(vocab_size=tokenizer.vocab_size)
    train_data, val_data = cf.train_val_split(data, block_size=model_config.block_size)
    torch.manual_seed(0)
    model = cf.CharTransformer(model_config)
    config = cf.TrainConfig(max_iters=steps, eval_interval=steps, eval_iters=2, seed=0)
    history = cf.train(model, train_data, val_data, config)
    mark(f"train_val_split + cf.train ({steps} steps, end-of-run val pass)")
    return {
        "variant": variant, "threads": threads, "characters": len(text), "dtype": str(data.dtype),
        "data_mib": _mib(data.numel() * data.element_size() // 1024),
        "final_val_chars": history.final_val_chars, "phases": phases,
        "peak_rss_mib": phases[-1]["peak_rss_mib"],
    }


def measure_encode(threads: int, repeats: int = 10, tries: int = 3) -> dict[str, Any]:
    """Characters per second of encode_array and of encode on Tiny Shakespeare x `repeats`."""
    torch.set_num_threads(threads)
    text = cf.load_tiny_shakespeare() * repeats
    tokenizer = cf.CharTokenizer.from_text(text)
    rates: dict[str, float] = {}
    for name, encode in (("encode_array", tokenizer.encode_array), ("encode", tokenizer.encode)):
        best = float("inf")
        for _ in range(tries):
            start = time.perf_counter()
            encode(text)
            best = min(best, time.perf_counter() - start)
        rates[name] = len(text) / best
    return {"threads": threads, "characters": len(text),
            "encode_array_chars_per_s": round(rates["encode_array"]),
            "encode_chars_per_s": round(rates["encode"]),
            "speedup": round(rates["encode_array"] / rates["encode"], 2)}


def run_child(path: Path, variant: str, steps: int, threads: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.big_text", "--child", variant, "--path", str(path),
               "--steps", str(steps), "--threads", str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{variant} child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.big_text", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200.0, help="size of the synthetic text (MB)")
    parser.add_argument("--path", type=Path, default=None, help="the text (default: /tmp/charformer-big-<mb>mb.txt)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--skip-encode", action="store_true", help="skip the encode throughput")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    path = args.path or Path(f"/tmp/charformer-big-{args.mb:g}mb.txt")
    if args.child is not None:
        print(json.dumps(child(path, args.child, args.steps, args.threads[0])))
        return 0

    n_bytes = int(args.mb * 1_000_000)
    if not (path.is_file() and path.stat().st_size == n_bytes):
        write_synthetic_text(path, n_bytes)
    results: dict[str, Any] = {"text": str(path), "bytes": n_bytes, "cpu_count": os.cpu_count(),
                               "encode": [], "memory": []}
    if not args.skip_encode:
        for threads in args.threads:
            row = measure_encode(threads)
            results["encode"].append(row)
            print(f"encode at {threads} thread(s), {row['characters']:,} characters: encode_array "
                  f"{row['encode_array_chars_per_s'] / 1e6:.1f}M chars/s, encode "
                  f"{row['encode_chars_per_s'] / 1e6:.1f}M chars/s ({row['speedup']}x)")
    for threads in args.threads:
        for variant in args.variants:
            row = run_child(path, variant, args.steps, threads)
            results["memory"].append(row)
            print(f"\n{variant} ({row['dtype']}, {row['data_mib']} MiB of tokens), {threads} thread(s), "
                  f"{row['characters']:,} characters; end-of-run val pass over {row['final_val_chars']:,}")
            for phase in row["phases"]:
                print(f"  {phase['phase']:<60} {phase['seconds']:>7.2f} s  rss {phase['rss_mib']:>8.1f} MiB"
                      f"  peak {phase['peak_rss_mib']:>8.1f} MiB")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
