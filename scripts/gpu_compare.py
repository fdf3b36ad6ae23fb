"""On a CUDA GPU: charformer's training step and sampling against the lecture's code, side by side.

Both models have the gpu preset's size (nanoGPT's shakespeare_char: 6 layers, 6 heads, 384
channels, context 256, batch 64) and the same data. The lecture's side runs as its script does
(float32, one module per head, plain AdamW, `generate` re-running the full window); charformer's
side runs as `cf.train` does on CUDA (TrainStep: bf16 autocast, torch.compile, fused attention and
fused AdamW). Ratios are the lecture's time over charformer's. Run by scripts/gpu-check.sh.

    PYTHONPATH=$PWD python3 scripts/gpu_compare.py [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import torch

import charformer as cf
from benchmarks import baseline as bl
from charformer.step import TrainStep


def timed(step, steps: int) -> float:
    """Median milliseconds per call of `step` over `steps` calls, after 10 untimed ones."""
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    device = torch.device("cuda")
    text = cf.load_tiny_shakespeare()
    tokenizer = cf.CharTokenizer.from_text(text)
    train_data, _ = cf.train_val_split(torch.tensor(tokenizer.encode(text)))
    train_gpu = train_data.to(device)
    settings = cf.resolve_settings("gpu")
    model_config, train_config = cf.configs_from_settings(settings, tokenizer.vocab_size)
    batch, block = train_config.batch_size, model_config.block_size
    print(cf.describe_device(device))
    print(f"size: {model_config.n_layer} layers x {model_config.n_embd} channels, {model_config.n_head} heads, "
          f"context {block}, batch {batch}, dropout {model_config.dropout}")

    torch.manual_seed(0)
    lecture = bl.BigramLanguageModel(tokenizer.vocab_size, model_config.n_embd, model_config.n_head,
                                     model_config.n_layer, block, model_config.dropout).to(device)
    lecture_optimizer = torch.optim.AdamW(lecture.parameters(), lr=1e-3)

    def lecture_step() -> None:
        x, y = bl.get_batch(train_gpu, batch, block)
        _, loss = lecture(x, y)
        lecture_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lecture_optimizer.step()

    torch.manual_seed(0)
    model = cf.CharTransformer(model_config).to(device)
    step = TrainStep(model, train_config, device)
    generator = torch.Generator().manual_seed(0)
    iteration = [0]

    def charformer_step() -> None:
        x, y = cf.get_batch(train_gpu, batch, block, generator=generator)
        step(iteration[0], x, y)
        iteration[0] += 1

    compile_start = time.perf_counter()
    charformer_step()  # the first call compiles
    torch.cuda.synchronize()
    print(f"charformer's first step (compiling): {time.perf_counter() - compile_start:.1f} s; "
          f"precision {step.precision}, compiled {step.forward is not step.eager}")
    lecture_ms = timed(lecture_step, args.steps)
    charformer_ms = timed(charformer_step, args.steps)
    tokens = batch * block
    print("| training step | ms/step (median) | tokens/s | lecture / charformer |")
    print("|---|---|---|---|")
    print(f"| lecture script (fp32, eager) | {lecture_ms:.2f} | {tokens / lecture_ms * 1000:,.0f} | 1.00 |")
    print(f"| charformer TrainStep ({step.precision}, compile) | {charformer_ms:.2f} | "
          f"{tokens / charformer_ms * 1000:,.0f} | {lecture_ms / charformer_ms:.2f} |")

    chars = 500
    prompt = torch.zeros((1, 1), dtype=torch.long, device=device)
    lecture.eval()
    model.eval()
    rows = []
    for label, sample in (
        ("lecture generate (as written)", lambda: lecture.generate(prompt, chars)),
        ("lecture generate under inference_mode", lambda: _inference(lecture.generate, prompt, chars)),
        ("charformer generate", lambda: model.generate(prompt, chars, generator=torch.Generator().manual_seed(1))),
    ):
        sample()  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        sample()
        torch.cuda.synchronize()
        rows.append((label, (time.perf_counter() - start) / chars * 1000))
    print(f"| sampling {chars} characters | ms/char | lecture as written / this |")
    print("|---|---|---|")
    for label, ms in rows:
        print(f"| {label} | {ms:.2f} | {rows[0][1] / ms:.2f} |")


def _inference(generate, prompt: torch.Tensor, chars: int) -> torch.Tensor:
    with torch.inference_mode():
        return generate(prompt, chars)


if __name__ == "__main__":
    main()
