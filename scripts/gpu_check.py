"""The GPU preset through cf.train in a fresh process, then sampling speed: one table row each.

Run by scripts/gpu-check.sh (which runs the `cuda` tests first). Prints the device, the row for
benchmarks/RESULTS.md, and the sampling timing; writes nothing else.
"""

from __future__ import annotations

import time

import torch

import charformer as cf


def main() -> None:
    started = time.perf_counter()
    device = cf.pick_device("cuda")
    print(cf.describe_device(device))
    text = cf.load_tiny_shakespeare()
    tokenizer = cf.CharTokenizer.from_text(text)
    train_data, val_data = cf.train_val_split(torch.tensor(tokenizer.encode(text)))
    settings = cf.resolve_settings("gpu")
    model_config, train_config = cf.configs_from_settings(settings, tokenizer.vocab_size)
    print(repr(train_config))
    print(repr(model_config))
    torch.manual_seed(train_config.seed)
    model = cf.CharTransformer(model_config).to(device)

    train_start = time.perf_counter()
    history = cf.train(model, train_data, val_data, train_config, device=device)
    train_wall = time.perf_counter() - train_start
    gaps = [b - a for a, b in zip(history.elapsed, history.elapsed[1:])]
    warmup = gaps[0] - sorted(gaps[1:])[len(gaps[1:]) // 2] if len(gaps) > 1 else float("nan")
    print("| steps | best val (step) | whole-split val at the end | cf.train wall s | train_seconds | first interval minus a typical one (compile) |")
    print(f"| {history.iteration} | {history.best_val_loss:.4f} ({history.best_iter}) | "
          f"{history.final_val_loss:.4f} | {train_wall:.1f} | {history.train_seconds:.1f} | {warmup:.1f} |")

    context = torch.zeros((1, 1), dtype=torch.long, device=device)
    for label, chars in (("warm-up", 100), ("timed", 5000)):
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(context, chars, generator=torch.Generator().manual_seed(1))
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        print(f"sampling {label}: {chars} characters in {seconds:.2f} s ({seconds / chars * 1000:.2f} ms per character)")
    print(f"gpu_check.py total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
