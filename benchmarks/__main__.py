"""python -m benchmarks: charformer against the lecture-style baseline, side by side in one process.

Prints a table and a JSON object. `--quick` runs a few steps of everything (CI's smoke test);
its numbers are not meant to be read.

Like for like: both sides of every comparison run at the same thread count; sampling is compared
against the baseline as the lecture writes it (no no_grad: autograd graphs are built) and under
`torch.inference_mode`; the training step names each side's AdamW (the baseline's PyTorch default
is the for-loop implementation on the CPU, charformer's is fused) and adds the baseline with
fused AdamW, so the optimizer phase can be compared on equal terms.
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: tables, not progress bars

import argparse
import json
import math
import multiprocessing
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import charformer as cf
from charformer.evaluate import whole_split_loss
from charformer.step import make_optimizer

from . import baseline as bl
from .common import BATCH, LECTURE, SEED_RECIPE_ITERS, baseline_step, charformer_step, load, notebook_default_config, notebook_default_train
from .memory import peak_rss_child

SEED_RECIPE_EVALS = 51  # at 0, 100, ..., 4900 and at the end


def matmul_peak(threads: int, size: int = 512, repeats: int = 60) -> float:
    """float32 GFLOP/s of a square matmul with `threads` threads: the ceiling for this machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        for _ in range(5):
            a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9
    finally:
        torch.set_num_threads(previous)


def step_flops(config: cf.ModelConfig, batch: int) -> float:
    """Forward + backward FLOPs of one step: 6 per weight per token, plus attention's two products."""
    c, t, layers = config.n_embd, config.block_size, config.n_layer
    matmul_weights = layers * 12 * c * c + c * config.vocab_size
    attention = layers * 2 * 2 * t * c  # QK^T and AV, per token, forward
    return 3 * batch * t * (2 * matmul_weights + attention)


def time_steps(step: Callable[[], dict[str, float]], steps: int, warmup: int) -> dict[str, float]:
    """Median seconds of each phase over `steps` calls of `step` (after `warmup` calls)."""
    for _ in range(warmup):
        step()
    samples = [step() for _ in range(steps)]
    return {phase: statistics.median(s[phase] for s in samples) for phase in samples[0]}


def with_threads(threads: int, fn: Callable[[], Any]) -> Any:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn()
    finally:
        torch.set_num_threads(previous)


# Which AdamW each side steps with (PyTorch's default on CPU tensors is neither foreach nor fused).
BASELINE_ADAMW = "default (for-loop)"
CHARFORMER_ADAMW = "fused"


def bench_training_steps(train: torch.Tensor, vocab: int, steps: int, warmup: int,
                         thread_options: list[int]) -> list[dict[str, Any]]:
    """Each variant at each thread count; "vs base" compares with the baseline at the same count."""
    rows = []
    for threads in thread_options:
        for name, adamw, fused in (("baseline (per-head modules)", BASELINE_ADAMW, None),
                                   ("baseline, fused AdamW (per-head modules)", CHARFORMER_ADAMW, True)):
            torch.manual_seed(0)
            base = bl.BigramLanguageModel(vocab, **LECTURE)
            base_opt = torch.optim.AdamW(base.parameters(), lr=1e-3, fused=fused)
            timing = with_threads(threads, lambda: time_steps(baseline_step(base, base_opt, train), steps, warmup))
            rows.append({"variant": name, "adamw": adamw, "threads": threads, **timing,
                         "tokens": BATCH * LECTURE["block_size"],
                         "flops": step_flops(cf.ModelConfig(vocab_size=vocab, **LECTURE), BATCH)})
        for name, model_config, train_config in (
            ("charformer explicit", cf.ModelConfig(vocab_size=vocab, attention="explicit", **LECTURE), cf.TrainConfig()),
            ("charformer fused", cf.ModelConfig(vocab_size=vocab, attention="fused", **LECTURE), cf.TrainConfig()),
            (f"notebook default (T={notebook_default_config(vocab).block_size})",
             notebook_default_config(vocab), notebook_default_train()),
        ):
            torch.manual_seed(0)
            model = cf.CharTransformer(model_config)
            model.train()
            optimizer = make_optimizer(model, train_config, torch.device("cpu"))
            generator = torch.Generator().manual_seed(0)
            step = charformer_step(model, optimizer, train, train_config, generator)
            timing = with_threads(threads, lambda: time_steps(step, steps, warmup))
            rows.append({"variant": name, "adamw": CHARFORMER_ADAMW, "threads": threads, **timing,
                         "tokens": BATCH * model_config.block_size,
                         "flops": step_flops(model_config, BATCH)})
    for row in rows:
        row["tokens_per_s"] = row["tokens"] / row["total"]
        row["gflops"] = row["flops"] / row["total"] / 1e9
        base = next(r for r in rows if r["threads"] == row["threads"] and r["adamw"] == BASELINE_ADAMW)
        row["vs_baseline_same_threads"] = row["tokens_per_s"] / (base["tokens"] / base["total"])
    return rows


def briefly_trained(train: torch.Tensor, val: torch.Tensor, vocab: int, iters: int) -> tuple[cf.CharTransformer, bl.BigramLanguageModel]:
    """Models a few hundred steps in, so per-window losses spread as they do mid-training.

    Untimed, at 1 thread: on an oversubscribed machine two OpenMP threads can be 30x slower.
    """
    torch.manual_seed(0)
    model = cf.CharTransformer(notebook_default_config(vocab))
    config = cf.TrainConfig(max_iters=iters, eval_interval=iters, eval_iters=1, num_threads=1)
    cf.train(model, train, val, config)
    torch.manual_seed(0)
    base = bl.BigramLanguageModel(vocab, **LECTURE)
    with_threads(1, lambda: bl.train(base, train, val, max_iters=iters, eval_interval=iters, eval_iters=1))
    return model, base


def bench_evaluation(model: cf.CharTransformer, base: bl.BigramLanguageModel, train: torch.Tensor,
                     val: torch.Tensor, eval_iters_options: list[int], threads: int,
                     baseline_eval_iters: int) -> dict[str, Any]:
    """Both sides at `threads` threads."""
    splits = {"train": train, "val": val}
    start = time.perf_counter()
    with_threads(threads, lambda: bl.estimate_loss(base, splits, baseline_eval_iters, BATCH))
    baseline_seconds = time.perf_counter() - start
    # The baseline's own spread: the std of single-batch val losses over sqrt(eval_iters).
    batch_losses = []
    with torch.no_grad():
        base.eval()
        for _ in range(baseline_eval_iters):
            x, y = bl.get_batch(val, BATCH, base.block_size)
            batch_losses.append(base(x, y)[1].item())
        base.train()
    baseline_stderr = statistics.stdev(batch_losses) / math.sqrt(len(batch_losses))
    rows = []
    for eval_iters in eval_iters_options:
        evaluator = cf.Evaluator(train, val, model.config.block_size, eval_iters, BATCH, seed=1)
        start = time.perf_counter()
        estimate = with_threads(threads, lambda: evaluator(model))
        seconds = time.perf_counter() - start
        rows.append({"eval_iters": eval_iters, "val_windows": len(evaluator.val_starts),
                     "train_windows": len(evaluator.train_starts),
                     "seconds": seconds, "val_loss": estimate.val_loss, "val_stderr": estimate.val_stderr,
                     "time_ratio_vs_baseline": seconds / baseline_seconds})
    start = time.perf_counter()
    whole = with_threads(threads, lambda: whole_split_loss(model, val))
    whole_seconds = time.perf_counter() - start
    return {"threads": threads, "baseline_seconds": baseline_seconds, "baseline_eval_iters": baseline_eval_iters,
            "baseline_val_stderr": baseline_stderr, "charformer": rows,
            "whole_val_split": {"loss": whole, "bits_per_char": whole / math.log(2), "seconds": whole_seconds}}


def bench_end_to_end(train: torch.Tensor, val: torch.Tensor, vocab: int, iters: int,
                     eval_interval: int) -> dict[str, Any]:
    """A shortened seed recipe for both, timed whole, then scaled to 5000 steps and 51 evaluations.

    Both sides at the thread count the charformer config sets (notebook_default_train: 1).
    """
    evals = iters // eval_interval + 1
    threads = notebook_default_train(iters).num_threads or torch.get_num_threads()
    torch.manual_seed(0)
    base = bl.BigramLanguageModel(vocab, **LECTURE)
    start = time.perf_counter()
    with_threads(threads, lambda: bl.train(base, train, val, max_iters=iters, eval_interval=eval_interval))
    base_seconds = time.perf_counter() - start
    # Split the baseline's time into steps and evaluations to extrapolate each honestly.
    splits = {"train": train, "val": val}
    start = time.perf_counter()
    with_threads(threads, lambda: bl.estimate_loss(base, splits, 200, BATCH))
    base_eval = time.perf_counter() - start
    base_steps = (base_seconds - evals * base_eval) / iters

    torch.manual_seed(0)
    model = cf.CharTransformer(notebook_default_config(vocab))
    config = notebook_default_train(iters)
    config = cf.TrainConfig(**{**config.to_dict(), "eval_interval": eval_interval})
    start = time.perf_counter()
    history = cf.train(model, train, val, config)
    ours_seconds = time.perf_counter() - start
    # train_seconds covers the steps and evaluations; the one final pass over the whole val
    # split comes after, once per run, so it is added once rather than scaled per step.
    final_pass = ours_seconds - history.train_seconds
    eval_gaps = history.elapsed  # cumulative seconds at each evaluation
    ours_eval = with_threads(config.num_threads or torch.get_num_threads(), lambda: _time_one_eval(model, train, val, config))
    ours_steps = (history.train_seconds - evals * ours_eval) / iters
    base_full = base_steps * SEED_RECIPE_ITERS + base_eval * SEED_RECIPE_EVALS
    ours_full = ours_steps * SEED_RECIPE_ITERS + ours_eval * SEED_RECIPE_EVALS + final_pass
    return {"iters_run": iters, "evaluations_run": evals, "threads": threads,
            "baseline": {"seconds": base_seconds, "step": base_steps, "eval": base_eval, "extrapolated_5000": base_full},
            "charformer": {"seconds": ours_seconds, "step": ours_steps, "eval": ours_eval,
                           "final_whole_val_pass": final_pass, "extrapolated_5000": ours_full,
                           "elapsed_at_evals": eval_gaps},
            "wall_ratio": ours_full / base_full}


def _time_one_eval(model: cf.CharTransformer, train: torch.Tensor, val: torch.Tensor, config: cf.TrainConfig) -> float:
    evaluator = cf.Evaluator(train, val, model.config.block_size, config.eval_iters, BATCH, config.seed)
    start = time.perf_counter()
    evaluator(model)
    return time.perf_counter() - start


def bench_sampling(vocab: int, tokens: int, contexts: list[int], thread_options: list[int]) -> list[dict[str, Any]]:
    """Both generate functions with the same thread count, for each count and context; the
    baseline both as the lecture calls it (autograd on) and under torch.inference_mode."""
    rows = []
    for threads, block in ((t, b) for t in thread_options for b in contexts):
        shape = {**LECTURE, "block_size": block}
        torch.manual_seed(0)
        base = bl.BigramLanguageModel(vocab, **shape)
        model = cf.CharTransformer(cf.ModelConfig(vocab_size=vocab, **shape))
        prompt = torch.zeros((1, 1), dtype=torch.long)
        start = time.perf_counter()
        with_threads(threads, lambda: base.generate(prompt, tokens))
        base_seconds = time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode():
            with_threads(threads, lambda: base.generate(prompt, tokens))
        base_inference_seconds = time.perf_counter() - start
        start = time.perf_counter()
        with_threads(threads, lambda: model.generate(prompt, tokens, generator=torch.Generator().manual_seed(0)))
        ours_seconds = time.perf_counter() - start
        rows.append({"context": block, "tokens": tokens, "threads": threads,
                     "baseline_chars_per_s": tokens / base_seconds,
                     "baseline_inference_mode_chars_per_s": tokens / base_inference_seconds,
                     "charformer_chars_per_s": tokens / ours_seconds,
                     "speedup": base_seconds / ours_seconds,
                     "speedup_vs_inference_mode": base_inference_seconds / ours_seconds})
    return rows


def bench_memory(steps: int) -> list[dict[str, Any]]:
    """Peak RSS of a process that loads the data and trains `steps` steps, and training's share."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for variant in ("baseline", "charformer"):
        queue = context.Queue()
        process = context.Process(target=peak_rss_child, args=(variant, steps, queue))
        process.start()
        rows.append(queue.get(timeout=600))
        process.join()
    return rows


def print_table(results: dict[str, Any]) -> None:
    peak = results["matmul_peak_gflops"]
    print(f"\nmachine: {results['machine']}; torch {results['torch']}; matmul peak "
          + ", ".join(f"{value:.0f} GFLOP/s ({threads} thread(s))" for threads, value in peak.items()))
    print("\n1. training step (median ms per phase; vs base: tokens/s over the lecture baseline's at the same threads)")
    print(f"{'variant':41} {'AdamW':>18} {'thr':>3} {'batch':>6} {'fwd':>6} {'bwd':>6} {'opt':>6} {'total':>7} {'tok/s':>7} {'GFLOP/s':>8} {'%peak':>6} {'vs base':>7}")
    for row in results["training_step"]:
        ms = {k: 1000 * row[k] for k in ("batch", "forward", "backward", "optimizer", "total")}
        print(f"{row['variant']:41} {row['adamw']:>18} {row['threads']:>3} {ms['batch']:6.2f} {ms['forward']:6.2f} {ms['backward']:6.2f} "
              f"{ms['optimizer']:6.2f} {ms['total']:7.2f} {row['tokens_per_s']:7.0f} {row['gflops']:8.1f} "
              f"{100 * row['gflops'] / peak[str(row['threads'])]:5.0f}% {row['vs_baseline_same_threads']:6.2f}x")
    ev = results["evaluation"]
    print(f"\n2. one evaluation (train + val), both at {ev['threads']} thread(s): baseline {ev['baseline_eval_iters']} batches/split "
          f"{ev['baseline_seconds']:.2f} s, val stderr {ev['baseline_val_stderr']:.4f}")
    for row in ev["charformer"]:
        print(f"   charformer eval_iters={row['eval_iters']:>3} ({row['val_windows']} val + {row['train_windows']} train windows): "
              f"{row['seconds']:.2f} s ({row['time_ratio_vs_baseline']:.2f}x baseline), val stderr {row['val_stderr']:.4f}")
    whole = ev["whole_val_split"]
    print(f"   whole val split: {whole['loss']:.4f} nats = {whole['bits_per_char']:.4f} bits/char in {whole['seconds']:.2f} s")
    e2e = results["end_to_end"]
    print(f"\n3. seed recipe end to end, both at {e2e['threads']} thread(s), from {e2e['iters_run']} steps + {e2e['evaluations_run']} evaluations, "
          f"extrapolated to 5000 + 51: baseline {e2e['baseline']['extrapolated_5000']:.0f} s, charformer "
          f"{e2e['charformer']['extrapolated_5000']:.0f} s ({e2e['wall_ratio']:.2f}x)")
    print("\n4. sampling (baseline as the lecture writes it, autograd on / under torch.inference_mode)")
    for row in results["sampling"]:
        print(f"   context {row['context']:>3}, {row['tokens']} chars, {row['threads']} thread(s): baseline "
              f"{row['baseline_chars_per_s']:.0f} / {row['baseline_inference_mode_chars_per_s']:.0f} chars/s, "
              f"charformer {row['charformer_chars_per_s']:.0f} chars/s "
              f"({row['speedup']:.2f}x / {row['speedup_vs_inference_mode']:.2f}x)")
    print("\n5. peak memory (process RSS)")
    for row in results["memory"]:
        above = row["training_peak_above_loaded_mib"]
        extra = "n/a" if above is None else f"+{above:.1f} MiB"
        print(f"   {row['variant']:12} process peak {row['peak_rss_mib']:.0f} MiB; training's peak above the loaded data {extra}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few steps of everything (smoke test)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts to measure both sides at (default: 1 and all cores)")
    args = parser.parse_args(argv)
    quick = args.quick
    train, val, tokenizer = load()
    vocab = tokenizer.vocab_size
    thread_options = sorted(set(args.threads or [1, torch.get_num_threads()]))
    if thread_options[0] < 1:
        parser.error(f"--threads must be >= 1, got {thread_options[0]}")
    max_threads = thread_options[-1]
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores".strip(),
        "torch": torch.__version__, "python": platform.python_version(), "quick": quick,
        "max_threads": max_threads,
        "matmul_peak_gflops": {str(t): matmul_peak(t, repeats=5 if quick else 60) for t in thread_options},
    }
    results["training_step"] = bench_training_steps(
        train, vocab, steps=3 if quick else 60, warmup=1 if quick else 10, thread_options=thread_options)
    model, base = briefly_trained(train, val, vocab, iters=5 if quick else 500)
    results["evaluation"] = bench_evaluation(
        model, base, train, val, [2] if quick else [25, 50, 80, 100, 200], threads=1,
        baseline_eval_iters=2 if quick else 200)
    results["end_to_end"] = bench_end_to_end(
        train, val, vocab, iters=4 if quick else 300, eval_interval=2 if quick else 100)
    results["sampling"] = bench_sampling(vocab, tokens=20 if quick else 5000, contexts=[32, 256],
                                         thread_options=thread_options)
    results["memory"] = bench_memory(steps=2 if quick else 50)
    print_table(results)
    print("\n" + json.dumps(results, default=float))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1, default=float)


if __name__ == "__main__":
    main()
