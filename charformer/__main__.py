"""python -m charformer: a short train-and-sample run on Tiny Shakespeare, from the terminal."""

from __future__ import annotations

import argparse

import torch

import charformer as cf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m charformer", description=__doc__)
    parser.add_argument("--max-iters", type=int, default=500, help="training steps (default 500)")
    parser.add_argument("--eval-interval", type=int, default=100)
    parser.add_argument("--eval-iters", type=int, default=50)
    parser.add_argument("--device", choices=cf.device.DEVICE_KINDS, default=None)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--sample-chars", type=int, default=500)
    parser.add_argument("--data-dir", default=None, help="folder holding input.txt")
    parser.add_argument("--save", default=None, help="write a checkpoint here at the end")
    args = parser.parse_args(argv)

    device = cf.pick_device(args.device)
    print(cf.describe_device(device))
    text = cf.load_tiny_shakespeare(args.data_dir)
    tokenizer = cf.CharTokenizer.from_text(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_data, val_data = cf.train_val_split(data)
    print(f"{len(text):,} characters, vocabulary of {tokenizer.vocab_size}")

    torch.manual_seed(args.seed)
    model = cf.CharTransformer(cf.ModelConfig(vocab_size=tokenizer.vocab_size)).to(device)
    print(f"{model.num_parameters():,} parameters")
    config = cf.TrainConfig(
        max_iters=args.max_iters, eval_interval=args.eval_interval, eval_iters=args.eval_iters,
        seed=args.seed,
    )
    cf.train(model, train_data, val_data, config, device=device, tokenizer=tokenizer,
             checkpoint_path=args.save)
    context = torch.zeros((1, 1), dtype=torch.long, device=device)
    generator = torch.Generator().manual_seed(args.seed)
    sample = model.generate(context, args.sample_chars, generator=generator)
    print(tokenizer.decode(sample[0].tolist()))


if __name__ == "__main__":
    main()
