"""PyTorch peer of `fer_jax.models.cnn3d_convlstm` (a benchmark aid, not part of training).

The same network: Conv3d(3x3x3, same, ReLU) + max pooling (window = stride, floor), per conv layer
-> ConvLSTM (3x3, 'same', gates i, f, c, o, Keras's equations) -> last hidden state -> flatten ->
dropout -> dense. Written as a PyTorch user would: channels first in the module's interface,
`channels_last_3d` storage (the (B, T, H, W, C) clip permuted to (B, C, T, H, W) is already that
layout, so no copy), the input-to-state convolution over all frames at once, the recurrent one per
step; gate arithmetic in float32 as ours does under bfloat16 autocast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fer_jax.bench.peers import weights


class ConvLSTM2d(nn.Module):
    """(B, C, T, H, W) -> the last hidden state (B, F, H, W); 'same' padding, odd kernel."""

    def __init__(self, in_channels: int, filters: int, kernel_size: int = 3):
        super().__init__()
        self.filters, self.padding = filters, kernel_size // 2
        self.weight = nn.Parameter(torch.empty(4 * filters, in_channels, kernel_size, kernel_size))
        self.recurrent_weight = nn.Parameter(torch.empty(4 * filters, filters, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(4 * filters))
        nn.init.xavier_uniform_(self.weight)
        nn.init.orthogonal_(self.recurrent_weight.view(4 * filters, -1))
        with torch.no_grad():
            self.bias[filters:2 * filters] = 1.0  # unit forget bias, as Keras

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        # (B, T, C, H, W) -> (B*T, C, H, W): a view when x is channels_last_3d.
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        gates_x = F.conv2d(frames, self.weight, self.bias, padding=self.padding).reshape(b, t, -1, h, w)
        state = torch.zeros(b, self.filters, h, w, device=x.device, dtype=torch.float32)
        cell = state
        for step in range(t):
            recurrent = F.conv2d(state.to(gates_x.dtype), self.recurrent_weight, padding=self.padding)
            z = gates_x[:, step].float() + recurrent.float()
            z_i, z_f, z_c, z_o = z.chunk(4, dim=1)
            cell = torch.sigmoid(z_f) * cell + torch.sigmoid(z_i) * torch.tanh(z_c)
            state = torch.sigmoid(z_o) * torch.tanh(cell)
        return state


class Cnn3dConvLstm(nn.Module):
    """inputs["frames"] (B, T, H, W, C) float in [0, 1] -> logits (B, num_classes); the arguments
    are those of fer_jax.models.cnn3d_convlstm.Cnn3dConvLstm (`peers.build_peer` fills in its defaults)."""

    input_keys = ("frames",)
    memory_format = torch.channels_last_3d

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int,
        frames: int,
        size: int,
        conv_features: Sequence[int],
        pool_windows: Sequence[Sequence[int]],
        convlstm_filters: int,
        dropout: float,
        standardize_clips: bool,
    ):
        super().__init__()
        self.pool_windows = [tuple(int(p) for p in w) for w in pool_windows]
        self.standardize_clips = standardize_clips
        self.convs = nn.ModuleList()
        c = in_channels
        for features in conv_features:
            self.convs.append(nn.Conv3d(c, features, 3, padding=1))
            c = features
        t, h, w = frames, size, size
        for pt, ph, pw in self.pool_windows:
            t, h, w = t // pt, h // ph, w // pw
        self.map_shape = (h, w, convlstm_filters)  # the ConvLSTM's output, channels last
        self.convlstm = ConvLSTM2d(c, convlstm_filters)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(h * w * convlstm_filters, num_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs["frames"]
        if self.standardize_clips:
            dims = (1, 2, 3, 4)
            var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
            x = (x - mean) * torch.rsqrt(var + 1e-6)
        x = x.permute(0, 4, 1, 2, 3).contiguous(memory_format=self.memory_format)
        for conv, window in zip(self.convs, self.pool_windows):
            x = F.max_pool3d(F.relu(conv(x)), window)
        return self.head(self.dropout(self.convlstm(x).flatten(1)))


def copy_weights(jax_model, torch_model: Cnn3dConvLstm) -> None:
    """Our Cnn3dConvLstm's weights into the peer; the head reads (h, w, f) on our side, (f, h, w) here."""
    weights.copy_weights(jax_model, torch_model, fixes={
        "head.weight": lambda w: weights.channels_first_columns(w, torch_model.map_shape)})


PEERS = {"cnn3d_convlstm": (Cnn3dConvLstm, copy_weights)}
