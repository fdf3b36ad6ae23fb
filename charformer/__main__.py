"""python -m charformer: train a short run, or sample from a saved one, from the terminal.

  python -m charformer train --max-iters 500 --save runs/short.pt
  python -m charformer train --resume runs/short.pt --max-iters 800    # continue it exactly
  python -m charformer train --text my_lyrics.txt --max-iters 500 --save runs/lyrics.pt
  python -m charformer sample runs/short.pt --prompt "ROMEO:" --chars 500 --temperature 0.8 --top-k 20 --seed 1
  torchrun --standalone --nproc_per_node=2 -m charformer train --max-iters 500 --save runs/ddp.pt
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import torch

import charformer as cf
from charformer.data import default_prompt
from charformer.distributed import is_main_process, launched, launched_by_torchrun

SEED_HELP = "an integer from 0 to 4294967295 (2**32 - 1), for train and sample alike (default 1337)"


def seed(text: str) -> int:
    """--seed's type: one range for both commands, small enough for any torch or numpy generator."""
    value = int(text)  # argparse turns a ValueError into "invalid seed value"
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..4294967295")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Both commands' arguments: `train` (the default) and `sample`."""
    parser = argparse.ArgumentParser(prog="python -m charformer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    train = subparsers.add_parser("train", help="a short train-and-sample run (the default command)")
    train.add_argument("--max-iters", type=int, default=None,
                       help="training steps (default 500; with --resume, the run's own)")
    train.add_argument("--eval-interval", type=int, default=100)
    train.add_argument("--eval-iters", type=int, default=50)
    train.add_argument("--device", choices=cf.device.DEVICE_KINDS, default=None)
    train.add_argument("--seed", type=seed, default=1337, help=SEED_HELP)
    train.add_argument("--sample-chars", type=int, default=500)
    train.add_argument("--data-dir", default=None, help="folder holding Tiny Shakespeare's input.txt")
    train.add_argument("--text", default=None, metavar="PATH_OR_URL",
                       help="train on this UTF-8 file or https URL instead of Tiny Shakespeare")
    train.add_argument("--save", default=None, help="write a checkpoint here at the end")
    train.add_argument("--resume", default=None, metavar="CHECKPOINT",
                       help="continue the run in this checkpoint exactly, with its settings (and "
                            "--max-iters if given) on the same text; written back there unless --save")
    sample = subparsers.add_parser("sample", help="print text sampled from a saved run")
    sample.add_argument("checkpoint", help="a .pt file written by charformer (e.g. runs/cpu-001.pt)")
    sample.add_argument("--prompt", default=None,
                        help="text to start from (default: a newline, or the vocabulary's first "
                             "character if it has no newline)")
    sample.add_argument("--chars", type=int, default=500, help="new characters to sample (default 500)")
    sample.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    sample.add_argument("--top-k", type=int, default=None,
                        help="sample among the k likeliest (0 or unset: off, as in the playground)")
    sample.add_argument("--seed", type=seed, default=1337, help=SEED_HELP)
    sample.add_argument("--device", choices=cf.device.DEVICE_KINDS, default="cpu")
    return parser


def train_command(args: argparse.Namespace) -> None:
    """Under torchrun, every rank trains one shared model (data parallel); only rank 0 prints and saves."""
    # The arguments are checked (by building the config) before anything is loaded or built.
    resumed = cf.load_checkpoint(args.resume) if args.resume is not None else None
    if resumed is not None:  # the run's own settings, vocabulary and model; train() loads the rest
        if resumed.train_config is None:
            raise cf.CheckpointError(f"checkpoint {args.resume} holds no training settings to resume")
        max_iters = resumed.train_config.max_iters if args.max_iters is None else args.max_iters
        config = cf.TrainConfig.from_dict({**resumed.train_config.to_dict(), "max_iters": max_iters})
    else:
        config = cf.TrainConfig(
            max_iters=500 if args.max_iters is None else args.max_iters,
            eval_interval=args.eval_interval, eval_iters=args.eval_iters, seed=args.seed,
        )
    if args.sample_chars < 0:
        raise ValueError(f"--sample-chars must be >= 0, got {args.sample_chars}")
    # Ranks other than 0 print nothing (their stderr, for errors, stays).
    with launched(cf.pick_device(args.device)) as device, open(os.devnull, "w") as devnull, (
            contextlib.nullcontext() if is_main_process() else contextlib.redirect_stdout(devnull)):
        _train_and_sample(args, config, device, resumed)


def _train_and_sample(args: argparse.Namespace, config: cf.TrainConfig, device: torch.device,
                      resumed: cf.Checkpoint | None) -> None:
    print(cf.describe_device(device))
    if args.text is not None and args.data_dir is not None:
        raise ValueError("pass --text (your own text) or --data-dir (Tiny Shakespeare), not both")
    text = cf.load_text(args.text) if args.text is not None else cf.load_tiny_shakespeare(args.data_dir)
    if resumed is not None:
        tokenizer, model_config = resumed.tokenizer, resumed.model_config
    else:
        tokenizer = cf.CharTokenizer.from_text(text)
        model_config = cf.ModelConfig(vocab_size=tokenizer.vocab_size)
    data = tokenizer.encode_array(text)  # 1 byte a character for up to 256 distinct characters
    del text
    train_data, val_data = cf.train_val_split(data, block_size=model_config.block_size)
    print(f"{len(data):,} characters, vocabulary of {tokenizer.vocab_size}")

    torch.manual_seed(args.seed)
    model = cf.CharTransformer(model_config).to(device)
    print(f"{model.num_parameters():,} parameters")
    history = cf.train(model, train_data, val_data, config, device=device, tokenizer=tokenizer,
                       checkpoint_path=args.save or args.resume, resume_from=args.resume)
    if history.interrupted:
        print(resume_hint(args))
    context = torch.zeros((1, 1), dtype=torch.long, device=device)
    generator = torch.Generator().manual_seed(args.seed)
    sample = model.generate(context, args.sample_chars, generator=generator)
    print(tokenizer.decode(sample[0].tolist()))


def resume_hint(args: argparse.Namespace) -> str:
    """The command that continues an interrupted CLI run from its checkpoint."""
    checkpoint = args.save or args.resume
    if checkpoint is None:
        return "no checkpoint was written: pass --save PATH to be able to resume"
    source = [f"--text {args.text}"] if args.text else [f"--data-dir {args.data_dir}"] if args.data_dir else []
    return " ".join(["continue with: python -m charformer train --resume", str(checkpoint), *source,
                     *([f"--max-iters {args.max_iters}"] if args.max_iters is not None else [])])


def sample_command(args: argparse.Namespace) -> None:
    """Only the text goes to stdout: the prompt, then the sampled characters."""
    if args.chars < 0:
        raise ValueError(f"--chars must be >= 0, got {args.chars}")
    if args.prompt is not None and not args.prompt:
        raise ValueError("--prompt must hold at least one character")
    if args.top_k is not None and args.top_k < 0:
        raise ValueError(f"--top-k must be >= 0 (0: off), got {args.top_k}")
    checkpoint = cf.load_checkpoint(args.checkpoint, device=cf.pick_device(args.device))
    tokenizer, model = checkpoint.tokenizer, checkpoint.model
    if args.prompt is None:
        args.prompt = default_prompt(tokenizer)
    try:
        prompt = tokenizer.encode(args.prompt)  # the model crops its context to block_size itself
    except ValueError as error:
        raise ValueError(f"--prompt has characters the vocabulary of {args.checkpoint} lacks: {error}") from None
    device = next(model.parameters()).device
    idx = torch.tensor([prompt], dtype=torch.long, device=device)
    generator = torch.Generator().manual_seed(args.seed)
    out = model.generate(idx, args.chars, temperature=args.temperature, top_k=args.top_k or None,  # 0: off
                         generator=generator)
    new_text = tokenizer.decode(out[0, len(prompt):].tolist())
    sys.stdout.write(args.prompt + new_text + "\n")
    sys.stdout.flush()  # a closed pipe (`| head`) raises here, inside main's handling


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "sample", "-h", "--help"):
        argv.insert(0, "train")  # `python -m charformer --max-iters 500` still trains
    args = build_parser().parse_args(argv)
    command = train_command if args.command == "train" else sample_command
    rank = f"rank {os.environ['RANK']}: " if launched_by_torchrun() else ""
    try:
        command(args)
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 1
    except (cf.CharformerError, ValueError, RuntimeError, OSError) as error:
        print(f"{rank}error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:  # under torchrun: Ctrl-C on a rank stopped them all
        print(f"{rank}interrupted: {interrupt}", file=sys.stderr)
        if args.command == "train" and os.environ.get("RANK", "0") == "0":
            print(resume_hint(args), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
