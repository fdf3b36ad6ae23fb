"""python -m benchmarks.streaming: what streaming costs next to `generate`, side by side in one run.

For the notebook's default model on the CPU at a fixed thread count, over interleaved repeats:
the process's CPU seconds (what the work costs, steady on a shared machine) and wall seconds
(median and best) of: `generate`; consuming `stream`; the playground's `generate()` writing
into its view; and the playground's Generate button on an event loop (as in a kernel: a task
that yields between characters). Also the time to the first character: the first token from
`stream`, and the first text the button's view shows. `--quick` is CI's smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import charformer as cf

from .common import notebook_default_config


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Clock:
    """Wall and process-CPU seconds since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def time_generate(model: cf.CharTransformer, chars: int) -> tuple[float, float]:
    clock = Clock()
    model.generate(torch.zeros((1, 1), dtype=torch.long), chars, generator=seeded(0))
    return clock.read()


def time_stream(model: cf.CharTransformer, chars: int) -> tuple[tuple[float, float], float]:
    """(wall, CPU) seconds for all tokens, and wall seconds to the first."""
    clock = Clock()
    tokens = model.stream(torch.zeros((1, 1), dtype=torch.long), chars, generator=seeded(0))
    next(tokens)
    first = clock.read()[0]
    for _ in tokens:
        pass
    return clock.read(), first


def time_playground_code(playground: Any, chars: int) -> tuple[float, float]:
    playground.chars.value = chars
    clock = Clock()
    playground.generate()
    return clock.read()


def time_playground_button(playground: Any, chars: int) -> tuple[tuple[float, float], float, int]:
    """(wall, CPU) seconds until the button's generation ended; wall seconds until the view first
    showed text; how many times the view was redrawn."""
    playground.chars.value = chars
    redraws: list[float] = []

    def on_redraw(_change: Any) -> None:
        redraws.append(time.perf_counter())

    async def press_and_wait() -> Clock:
        clock = Clock()
        playground.generate_button.click()
        while playground.generating:
            await asyncio.sleep(0)
        return clock

    playground.text_view.observe(on_redraw, names="value")
    try:
        clock = asyncio.run(press_and_wait())
        spent = clock.read()
    finally:
        playground.text_view.unobserve(on_redraw, names="value")
    return spent, redraws[0] - clock.wall, len(redraws)


def run(chars: int, repeats: int, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    tokenizer = cf.CharTokenizer.from_text(cf.load_tiny_shakespeare())
    torch.manual_seed(0)
    model = cf.CharTransformer(notebook_default_config(tokenizer.vocab_size))
    playground = cf.SamplingPlayground(model, tokenizer)
    playground.seed.value = 0
    playground.prompt.value = ""  # a newline, as generate's prompt below
    measures: dict[str, list[tuple[float, float]]] = {
        "generate": [], "stream": [], "playground generate()": [], "playground button (event loop)": []}
    first_token: list[float] = []
    first_shown: list[float] = []
    redraws: list[int] = []

    def run_stream() -> tuple[float, float]:
        spent, first = time_stream(model, chars)
        first_token.append(first)
        return spent

    def run_button() -> tuple[float, float]:
        spent, first, count = time_playground_button(playground, chars)
        first_shown.append(first)
        redraws.append(count)
        return spent

    variants: list[tuple[str, Callable[[], tuple[float, float]]]] = [
        ("generate", lambda: time_generate(model, chars)),
        ("stream", run_stream),
        ("playground generate()", lambda: time_playground_code(playground, chars)),
        ("playground button (event loop)", run_button),
    ]
    time_generate(model, min(chars, 50))  # warm-up: first-call allocations
    for repeat in range(repeats):
        # Interleaved, each round starting one variant later: drifting load hits all alike.
        for name, measure in variants[repeat % 4 :] + variants[: repeat % 4]:
            measures[name].append(measure())
    base_cpu = statistics.median(cpu for _, cpu in measures["generate"])
    base_best_cpu = min(cpu for _, cpu in measures["generate"])
    base_best = min(wall for wall, _ in measures["generate"])
    rows = []
    for name, samples in measures.items():
        walls, cpus = [wall for wall, _ in samples], [cpu for _, cpu in samples]
        rows.append({
            "variant": name, "wall_s": walls, "cpu_s": cpus,
            "wall_median_s": statistics.median(walls), "wall_best_s": min(walls),
            "cpu_median_s": statistics.median(cpus), "cpu_best_s": min(cpus),
            "chars_per_cpu_s": chars / statistics.median(cpus),
            "cpu_vs_generate": statistics.median(cpus) / base_cpu,
            "best_cpu_vs_generate": min(cpus) / base_best_cpu,
            "best_wall_vs_generate": min(walls) / base_best,
        })
    return {
        "chars": chars, "repeats": repeats, "threads": threads, "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} thread(s)",
        "model": notebook_default_config(tokenizer.vocab_size).to_dict(),
        "rows": rows,
        "first_token_s": statistics.median(first_token),
        "first_shown_s": statistics.median(first_shown),
        "redraws": statistics.median(redraws),
    }


def report(results: dict[str, Any], print_line: Callable[[str], None] = print) -> None:
    print_line(f"streaming: {results['chars']} characters, {results['threads']} thread(s), "
               f"{results['repeats']} interleaved repeats; torch {results['torch']}")
    print_line(f"{'':32s} {'-------- CPU seconds --------':>29s} {'-------- wall seconds -------':>29s}")
    print_line(f"{'variant':32s} {'median':>7s} {'vs gen':>7s} {'best':>6s} {'vs gen':>7s} "
               f"{'median':>7s} {'best':>6s} {'vs gen':>7s}")
    for row in results["rows"]:
        print_line(f"{row['variant']:32s} {row['cpu_median_s']:7.3f} {row['cpu_vs_generate']:6.3f}x "
                   f"{row['cpu_best_s']:6.3f} {row['best_cpu_vs_generate']:6.3f}x "
                   f"{row['wall_median_s']:7.3f} {row['wall_best_s']:6.3f} "
                   f"{row['best_wall_vs_generate']:6.3f}x")
    print_line(f"time to the first character: {1000 * results['first_token_s']:.1f} ms from stream, "
               f"{1000 * results['first_shown_s']:.1f} ms until the button's view shows it; "
               f"{results['redraws']:.0f} redraws of the view per generation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50 characters, once")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.chars, args.repeats = 50, 1
    results = run(args.chars, args.repeats, args.threads)
    report(results)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
