"""Reference solutions of chapter 3 (lmkit.positions)."""

from __future__ import annotations

import torch

import lmkit.positions


def sinusoidal_positions(n_positions: int, d_model: int) -> torch.Tensor:
    if n_positions < 0 or d_model < 1:
        raise ValueError(f"need n_positions ≥ 0 and d_model ≥ 1, got {n_positions} and {d_model}")
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # 0, 2, 4, … (< d_model)
    angle = pos / 10000.0 ** (two_i / d_model)  # (T, ceil(d/2)), radians
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # an odd d_model: last sin unpaired
    return pe.to(torch.float32)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    *_, T, D = x.shape
    if D % 2:
        raise ValueError(
            f"RoPE rotates pairs of dimensions: the last dimension of x must be even, got "
            f"x of shape {tuple(x.shape)}"
        )
    if positions.shape != (T,):
        raise ValueError(
            f"positions should have shape (T,) = ({T},) for x of shape {tuple(x.shape)}, "
            f"got {tuple(positions.shape)}"
        )
    two_i = torch.arange(0, D, 2, dtype=torch.float64, device=x.device)
    inv_freq = base ** (-two_i / D)  # (D/2,) one frequency per pair
    angles = positions.to(x.device, torch.float64)[:, None] * inv_freq  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]  # the two coordinates of every pair
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2)  # (…, T, D/2, 2) → (…, T, D): pairs back in place


class Embeddings(lmkit.positions.Embeddings):
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.dim() != 2:
            raise ValueError(f"idx should have shape (B, T), got {tuple(idx.shape)}")
        T = idx.shape[1]
        if T > self.block_size:
            raise ValueError(
                f"sequence of T={T} tokens is longer than block_size={self.block_size}: "
                f"there are learned position embeddings for positions 0..{self.block_size - 1} "
                "only (crop the input to the last block_size tokens)"
            )
        positions = torch.arange(T, device=idx.device)
        return self.tok(idx) + self.pos(positions)  # (B, T, C) + (T, C) broadcasts over B
