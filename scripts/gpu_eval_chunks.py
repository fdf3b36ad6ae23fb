"""One evaluation of the gpu preset's model on CUDA at chunks of 64 to 1024 windows (PYTHONPATH=$PWD python3 scripts/gpu_eval_chunks.py)."""
import time
import torch
import charformer as cf

device = torch.device("cuda")
text = cf.load_tiny_shakespeare()
tok = cf.CharTokenizer.from_text(text)
train, val = cf.train_val_split(torch.tensor(tok.encode(text)))
train, val = train.to(device), val.to(device)
mc, tc = cf.configs_from_settings(cf.resolve_settings("gpu"), tok.vocab_size)
torch.manual_seed(0)
model = cf.CharTransformer(mc).to(device)
autocast = torch.autocast("cuda", dtype=torch.bfloat16)
for chunk in (64, 128, 256, 512, 1024):
    ev = cf.Evaluator(train, val, mc.block_size, tc.eval_iters, tc.batch_size, tc.seed, chunk_windows=chunk)
    ev(model, autocast)
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        t = time.perf_counter(); est = ev(model, autocast); torch.cuda.synchronize(); times.append(time.perf_counter() - t)
    print(f"chunk {chunk:5d} windows: median {sorted(times)[2]*1000:.1f} ms per evaluation "
          f"({len(ev.train_starts)} train + {len(ev.val_starts)} val windows), val {est.val_loss:.4f}")
