"""The character-level transformer: causal multi-head attention blocks, and sampling from them."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .checks import as_int, as_real, check_token_dtype
from .config import ModelConfig
from .cores import threads_now, using_threads
from .modes import eval_flags, inference_context, switched_mode


def sinusoidal_positions(block_size: int, n_embd: int) -> torch.Tensor:
    """Fixed position codes from *Attention Is All You Need*: sin on even channels, cos on odd."""
    position = torch.arange(block_size, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = torch.exp(
        torch.arange(0, n_embd, 2, dtype=torch.float32) * (-math.log(10000.0) / n_embd)
    )  # (ceil(C/2),)
    table = torch.zeros(block_size, n_embd)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: n_embd // 2])
    return table  # (T, C)


class CausalSelfAttention(nn.Module):
    """All heads at once: one projection makes every head's query, key and value."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.head_size = config.head_size
        self.fused = config.attention == "fused"
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(
        self, x: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, C = x.shape
        q, k, v = (  # 3 x (B, T, C) -> 3 x (B, nh, T, hs)
            t.view(B, T, self.n_head, self.head_size).transpose(1, 2) for t in self.qkv(x).split(C, dim=2)
        )
        weights = None
        if self.fused and not need_weights:
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
            )  # (B, nh, T, hs)
        else:  # softmax(Q K^T / sqrt(d)) V under the causal mask, as the notebook derives it
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_size)  # (B, nh, T, T)
            scores = scores.masked_fill(~self.causal_mask[:T, :T], float("-inf"))
            weights = F.softmax(scores, dim=-1)  # (B, nh, T, T)
            y = self.attn_dropout(weights) @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.proj(y)), weights


class FeedForward(nn.Module):
    """Per-position MLP: widen 4x, ReLU (or GELU), project back."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.activation = F.relu if config.activation == "relu" else F.gelu
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.activation(self.fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: communicate (attention), then compute (MLP), each residual."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd)
        self.mlp = FeedForward(config)

    def forward(
        self, x: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(self.ln1(x), need_weights)
        x = x + attended
        x = x + self.mlp(self.ln2(x))
        return x, weights  # (B, T, C)


class CharTransformer(nn.Module):
    """A GPT-style decoder over characters: embeddings, `n_layer` blocks, LayerNorm, linear head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise ValueError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        # "learned": a trained table; "sinusoidal": a fixed one; "none": no positions at all
        # (a causal decoder can still infer position from how much context it sees).
        if config.positional == "learned":
            self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        elif config.positional == "sinusoidal":
            table = sinusoidal_positions(config.block_size, config.n_embd)
            self.register_buffer("pos_table", table, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size)
        self.apply(self._init_weights)
        # Each block adds two residual branches; scaling their output projections keeps the
        # residual stream's variance from growing with depth (GPT-2).
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check_idx(self, idx: torch.Tensor, cropped: bool = False) -> torch.Tensor:
        """`idx` (B, T) as int64; longer than block_size only where it will be `cropped` (sampling)."""
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
            raise ValueError("idx must be a 2-D tensor of token ids, shape (batch, time)")
        check_token_dtype("idx", idx)
        if idx.size(1) < 1:
            raise ValueError("idx must hold at least one token per row")
        if idx.size(1) > self.config.block_size and not cropped:
            raise ValueError(
                f"sequence length {idx.size(1)} exceeds block_size {self.config.block_size}"
            )
        return idx.long()

    def _embed(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        x = self.tok_emb(idx)  # (B, T, C)
        if self.config.positional == "learned":
            x = x + self.pos_emb.weight[:T]  # (T, C) broadcast over the batch
        elif self.config.positional == "sinusoidal":
            x = x + self.pos_table[:T]  # (T, C)
        return self.drop(x)  # (B, T, C)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab) for every position; the mean cross-entropy when `targets` is given."""
        idx = self._check_idx(idx)
        if targets is not None:
            if not isinstance(targets, torch.Tensor) or targets.shape != idx.shape:
                raise ValueError(
                    f"targets must be a tensor of the same shape as idx {tuple(idx.shape)}, got "
                    f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__}"
                )
            check_token_dtype("targets", targets)
        logits = self.head(self.ln_f(self._hidden_states(idx)))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1).long())
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """Every layer's softmax attention weights, (n_layer, B, n_head, T, T), in eval mode."""
        idx = self._check_idx(idx)
        maps = []
        with switched_mode(self, False):
            x = self._embed(idx)
            for block in self.blocks:
                x, weights = block(x, need_weights=True)
                maps.append(weights)
        return torch.stack(maps)  # (L, B, nh, T, T)

    def _hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """The residual stream after the last block, before the final LayerNorm: (B, T, C)."""
        x = self._embed(idx)  # (B, T, C)
        for block in self.blocks:
            x, _ = block(x)
        return x

    def _sampling_arguments(
        self, idx: torch.Tensor, max_new_tokens: int, temperature: float, top_k: int | None
    ) -> tuple[torch.Tensor, int, float, int | None]:
        """The checked arguments of generate and stream, top_k clamped to the vocabulary."""
        vocab_size = self.config.vocab_size
        max_new_tokens = as_int("max_new_tokens", max_new_tokens, 0)
        temperature = as_real("temperature", temperature)
        if temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
        top_k = None if top_k is None else min(as_int("top_k", top_k, 1), vocab_size)  # None: off
        idx = self._check_idx(idx, cropped=True)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= vocab_size):
            raise ValueError(f"idx holds token ids outside the vocabulary (0..{vocab_size - 1})")
        return idx, max_new_tokens, temperature, top_k

    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Extend `idx` (B, T) by `max_new_tokens` sampled tokens (temperature 0: greedy), in eval and
        inference mode, on the cores free as it starts (the previous mode and count are restored)."""
        idx, max_new_tokens, temperature, top_k = self._sampling_arguments(
            idx, max_new_tokens, temperature, top_k
        )
        with switched_mode(self, False), inference_context(idx.device), using_threads(threads_now(idx.device)):
            if idx.device.type == "xla":
                out = self._generate_fixed_shape(idx, max_new_tokens, temperature, top_k, generator)
            else:  # one preallocated buffer; only the last position's logits at each step
                out = self._buffer(idx, max_new_tokens)
                for t in range(idx.size(1), out.size(1)):
                    self._sample_at(out, t, temperature, top_k, generator)
        return out.clone()  # a normal tensor, usable outside inference mode

    def stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[int]:
        """Each new token id of one sequence (`idx` (1, T)) as soon as it is sampled, as `generate`
        samples it; eval and inference mode (and the thread count) hold only while a token is sampled."""
        idx, max_new_tokens, temperature, top_k = self._sampling_arguments(
            idx, max_new_tokens, temperature, top_k
        )
        if idx.size(0) != 1:
            raise ValueError(
                f"stream samples one sequence: idx must have shape (1, T), got {tuple(idx.shape)}"
            )
        return self._stream_tokens(idx, max_new_tokens, temperature, top_k, generator)

    def _stream_tokens(
        self, idx: torch.Tensor, max_new_tokens: int, temperature: float,
        top_k: int | None, generator: torch.Generator | None,
    ) -> Iterator[int]:
        out, T0 = self._buffer(idx, max_new_tokens), idx.size(1)
        modules, threads = list(self.modules()), threads_now(idx.device)  # the cores free as it starts
        for t in range(T0, T0 + max_new_tokens):
            with eval_flags(modules), inference_context(idx.device), using_threads(threads):
                token = int(self._sample_at(out, t, temperature, top_k, generator))
            yield token  # outside both contexts: the caller's modes hold while it has the token

    @staticmethod
    def _buffer(idx: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """(B, T + max_new_tokens) token ids, the prompt `idx` (B, T) at the start."""
        out = torch.empty((idx.size(0), idx.size(1) + max_new_tokens), dtype=torch.long, device=idx.device)
        out[:, :idx.size(1)] = idx
        return out

    def _sample_at(
        self, out: torch.Tensor, t: int, temperature: float,
        top_k: int | None, generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Write position `t` of `out` (B, >t) from up to block_size tokens before it; return them (B,)."""
        context = out[:, max(0, t - self.config.block_size) : t]  # (B, <= block_size)
        last = self._hidden_states(context)[:, -1, :]  # (B, C): only the last position is needed
        tokens = sample_next(self.head(self.ln_f(last)), temperature, top_k, generator)  # (B,)
        out[:, t] = tokens
        return tokens

    def _generate_fixed_shape(
        self, idx: torch.Tensor, max_new_tokens: int, temperature: float,
        top_k: int | None, generator: torch.Generator | None,
    ) -> torch.Tensor:
        """XLA: every step runs one (B, block_size) window, so the graph compiles once (the causal
        mask hides the padding on the right while it fills)."""
        block_size = self.config.block_size
        B, T0 = idx.shape
        device = idx.device
        filled = min(T0, block_size)
        window = torch.zeros((B, block_size), dtype=torch.long, device=device)
        window[:, :filled] = idx[:, T0 - filled :]
        new_tokens = []
        for _ in range(max_new_tokens):
            last = torch.tensor([filled - 1], device=device)
            hidden = self._hidden_states(window).index_select(1, last).squeeze(1)  # (B, C)
            token = sample_next(self.head(self.ln_f(hidden)), temperature, top_k, generator)  # (B,)
            new_tokens.append(token.cpu())
            if filled < block_size:
                window = window.index_copy(1, torch.tensor([filled], device=device), token[:, None])
                filled += 1
            else:
                window = torch.cat([window[:, 1:], token[:, None]], dim=1)  # (B, T)
            if device.type == "xla":  # (tests run this path on the CPU too)
                import torch_xla

                torch_xla.sync()  # else each step's graph holds every step before it
        generated = torch.stack(new_tokens, dim=1) if new_tokens else idx.new_zeros((B, 0)).cpu()
        return torch.cat([idx.cpu(), generated], dim=1).to(device)


def sample_next(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One token id per row of `logits` (B, V): argmax at temperature 0, else a multinomial draw."""
    if temperature == 0:
        return logits.argmax(dim=-1)  # (B,)
    # Shift so the largest logit is 0 before dividing: a tiny temperature then gives -inf, never NaN.
    logits = logits.float()
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature  # (B, V)
    if top_k is not None and top_k < logits.size(-1):
        kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    probs = F.softmax(logits, dim=-1)  # (B, V)
    # MPS's multinomial has returned out-of-range ids; a generator lives on one device.
    sample_device = generator.device if generator is not None else probs.device
    if sample_device.type == "mps":
        sample_device = torch.device("cpu")
    ids = torch.multinomial(probs.to(sample_device), 1, generator=generator)  # (B, 1)
    return ids.squeeze(1).to(logits.device)  # (B,)
