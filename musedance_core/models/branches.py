"""The music and beat branches: per-frame condition tokens and their decoupled cross-attention
weights (IP-Adapter style), plus the beat branch's frame-wise FiLM of the motion modules.

Each branch is one ``nn.Module`` saved under its own prefix (``music.``, ``beat.``). It owns:
- ``encoder``: features [B, T, D] -> tokens [B, T, W, C], W = token_window tokens per frame
  (the frame and its neighbours, with a learned position per slot), C = cross_attention_dim;
- ``to_k`` / ``to_v``: one K/V projection per denoising-UNet transformer block, keyed by the
  block's name; ``to_v`` starts at zero, so a fresh branch adds exactly nothing;
- (beat only) ``film``: per motion module, frame embedding -> (scale, shift) per channel, also
  zero-initialised;
- (beat only, optional) ``film_text``: the pooled prompt embedding added to the frame embedding
  before its activation, so that the caption's named dance ("sways each bar") shapes the
  beat-timed modulation; zero-initialised, so adding it to a trained branch changes nothing.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

FILM_DIM = 128  # width of the per-frame embedding that feeds every FiLM layer


def layer_key(name: str) -> str:
    """Module-dict key for a dotted module name ('down_blocks.0.attentions.0' -> 'down_blocks_0_attentions_0')."""
    return name.replace(".", "_")


class FrameTokenEncoder(nn.Module):
    """Per-frame features -> a window of tokens per frame.

    features [B, T, D] -> MLP + temporal conv (context of +-2 frames) -> [B, T, C]
    -> window of W neighbouring frames (edges repeat) + slot embedding -> LayerNorm -> [B, T, W, C].
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, window: int):
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"token_window must be odd and >= 1; got {window}")
        self.window = window
        self.inp = nn.Linear(in_dim, hidden)
        self.temporal = nn.Conv1d(hidden, hidden, kernel_size=5, padding=2, padding_mode="replicate")
        self.out = nn.Linear(hidden, out_dim)
        self.slot = nn.Parameter(torch.zeros(window, out_dim))
        self.norm = nn.LayerNorm(out_dim)
        nn.init.normal_(self.slot, std=0.02)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (tokens [B, T, W, C], frame embedding [B, T, hidden])."""
        h = nn.functional.silu(self.inp(features))  # (B, T, H)
        h = h + nn.functional.silu(self.temporal(rearrange(h, "b t h -> b h t"))).transpose(1, 2)
        x = self.out(h)  # (B, T, C)
        half = self.window // 2
        padded = torch.cat([x[:, :1].expand(-1, half, -1), x, x[:, -1:].expand(-1, half, -1)], dim=1)
        windows = padded.unfold(1, self.window, 1)  # (B, T, C, W)
        tokens = rearrange(windows, "b t c w -> b t w c") + self.slot
        return self.norm(tokens), h


class ConditionBranch(nn.Module):
    """One decoupled cross-attention branch (music or beat).

    Args:
        in_dim: features per frame (D).
        hidden: encoder width.
        cross_dim: token width (the UNet's cross_attention_dim).
        window: tokens per frame.
        attention_layers: {transformer-block name: inner dim of its attention}.
        film_layers: {motion-module name: its channel count}; empty for no FiLM.
    """

    def __init__(self, in_dim: int, hidden: int, cross_dim: int, window: int,
                 attention_layers: dict[str, int], film_layers: dict[str, int] | None = None):
        super().__init__()
        self.encoder = FrameTokenEncoder(in_dim, hidden, cross_dim, window)
        self.to_k = nn.ModuleDict({layer_key(n): nn.Linear(cross_dim, d, bias=False) for n, d in attention_layers.items()})
        self.to_v = nn.ModuleDict({layer_key(n): nn.Linear(cross_dim, d, bias=False) for n, d in attention_layers.items()})
        for proj in self.to_v.values():
            nn.init.zeros_(proj.weight)
        film_layers = film_layers or {}
        self.film_in = nn.Linear(hidden, FILM_DIM) if film_layers else None
        self.film = nn.ModuleDict({layer_key(n): nn.Linear(FILM_DIM, 2 * c) for n, c in film_layers.items()})
        for proj in self.film.values():
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)

        self.film_text: nn.Linear | None = None

    def add_text_film(self, text_dim: int) -> None:
        """Give the FiLM the caption too (``film_text``, zero-initialised: nothing changes until trained)."""
        if self.film_in is None:
            raise ValueError("only a branch with FiLM layers (the beat branch) can take the caption")
        layer = nn.Linear(text_dim, FILM_DIM).to(device=self.film_in.weight.device, dtype=self.film_in.weight.dtype)
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
        self.film_text = layer

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """features [B, T, D] -> (tokens [B, T, W, C], FiLM pre-activation [B, T, FILM_DIM] or None)."""
        tokens, hidden = self.encoder(features)
        return tokens, (self.film_in(hidden) if self.film_in is not None else None)

    def film_embedding(self, pre: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        """Frame embeddings [N, FILM_DIM] from FiLM pre-activations [N, FILM_DIM] and, when the branch
        takes the caption, each row's pooled prompt embedding ``text`` [N, text_dim]."""
        if self.film_text is not None and text is not None:
            pre = pre + self.film_text(text.to(pre.dtype))
        return nn.functional.silu(pre)

    def film_params(self, name: str, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) [N, C] for motion module ``name`` from frame embeddings [N, FILM_DIM]."""
        scale, shift = self.film[layer_key(name)](embedding).chunk(2, dim=-1)
        return scale, shift
