"""Augmentation inside the jitted step, so the host only reads uint8.

The 3D-CNN + ConvLSTM paper augments each clip by rotations of +-5, +-10 and +-15 degrees and by
horizontal flips; one transform is drawn per clip and applied to all its frames alike, so the
motion between frames is untouched. Optional additions: random crops (as translations that keep the
frame size) and SpecAugment-style time and frequency masks for audio spectrograms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fer_jax.config import AugmentConfig


def rotate_clip(clip: jax.Array, angle_deg: jax.Array) -> jax.Array:
    """Rotate every frame of `clip` (T, H, W, C) by `angle_deg` counter-clockwise about the image
    centre; bilinear, edge pixels extended (like scipy.ndimage.rotate(order=1, mode='nearest'))."""
    _, h, w, _ = clip.shape
    theta = -jnp.deg2rad(angle_deg)  # rows grow downwards, so a counter-clockwise turn is negative here
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    # Inverse map: the source pixel that lands on each output pixel.
    src_y = cy + (ys - cy) * jnp.cos(theta) - (xs - cx) * jnp.sin(theta)
    src_x = cx + (ys - cy) * jnp.sin(theta) + (xs - cx) * jnp.cos(theta)

    def sample(plane):
        return jax.scipy.ndimage.map_coordinates(plane, [src_y, src_x], order=1, mode="nearest")

    # (T, H, W, C) -> map over T and C.
    return jax.vmap(jax.vmap(sample, in_axes=-1, out_axes=-1))(clip)


def augment_batch(frames: jax.Array, key: jax.Array, config: AugmentConfig) -> jax.Array:
    """frames (B, T, H, W, C) float -> same shape, each clip cropped (with crop_pad), then rotated
    and/or flipped at random."""
    if not config.enabled:
        return frames
    # Its own key (not a fourth split), so the rotations and flips drawn stay those of earlier runs.
    frames = random_crop_batch(frames, jax.random.fold_in(key, 7), config.crop_pad)
    batch = frames.shape[0]
    k_rot, k_which, k_flip = jax.random.split(key, 3)
    angles = jnp.asarray(config.rotations_deg, jnp.float32)
    angles = jnp.concatenate([angles, -angles])
    angle = angles[jax.random.randint(k_which, (batch,), 0, angles.shape[0])]
    angle = jnp.where(jax.random.bernoulli(k_rot, config.rotate_prob, (batch,)), angle, 0.0)
    flip = jax.random.bernoulli(k_flip, config.flip_prob, (batch,))

    def one(clip, a, f):
        clip = jax.lax.cond(a != 0.0, rotate_clip, lambda c, _: c, clip, a)
        return jnp.where(f, clip[:, :, ::-1, :], clip)

    return jax.vmap(one)(frames, angle, flip)


def crop_clip(clip: jax.Array, pad: int, dy: jax.Array, dx: jax.Array) -> jax.Array:
    """clip (T, H, W, C) -> the (T, H, W, C) window at (dy, dx) of the clip edge-padded by `pad`
    (dy, dx in [0, 2 * pad]): a random translation that keeps the frame size."""
    t, h, w, c = clip.shape
    padded = jnp.pad(clip, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    return jax.lax.dynamic_slice(padded, (0, dy, dx, 0), (t, h, w, c))


def random_crop_batch(frames: jax.Array, key: jax.Array, pad: int) -> jax.Array:
    """frames (B, T, H, W, C) -> same shape, each clip cropped at its own random offset."""
    if pad <= 0:
        return frames
    offsets = jax.random.randint(key, (frames.shape[0], 2), 0, 2 * pad + 1)
    return jax.vmap(lambda clip, o: crop_clip(clip, pad, o[0], o[1]))(frames, offsets)


def band_mask(length: int, starts: jax.Array, widths: jax.Array) -> jax.Array:
    """(length,) bool, True inside any band [starts[i], starts[i] + widths[i])."""
    idx = jnp.arange(length)[:, None]
    return jnp.any((idx >= starts) & (idx < starts + widths), axis=-1)


def mask_spectrogram(spec: jax.Array, time_bands, freq_bands) -> jax.Array:
    """spec (T_a, F, ...) with the given (starts, widths) time and frequency bands set to its mean."""
    masked = band_mask(spec.shape[0], *time_bands)[:, None] | band_mask(spec.shape[1], *freq_bands)[None, :]
    masked = masked.reshape(masked.shape + (1,) * (spec.ndim - 2))
    return jnp.where(masked, spec.mean(), spec)


def _draw_bands(key, batch: int, count: int, max_width: int, length: int):
    # SpecAugment: width ~ U[0, max_width], start ~ U[0, length - width].
    k_width, k_start = jax.random.split(key)
    widths = jax.random.randint(k_width, (batch, count), 0, min(max_width, length) + 1)
    starts = jnp.floor(jax.random.uniform(k_start, (batch, count)) * (length - widths + 1)).astype(jnp.int32)
    return starts, widths


def spec_augment_batch(spec: jax.Array, key: jax.Array, config: AugmentConfig) -> jax.Array:
    """spec (B, T_a, F[, C]) -> same shape with each clip's own random time and frequency masks."""
    if not config.enabled or (config.time_masks <= 0 and config.freq_masks <= 0):
        return spec
    b, length, bins = spec.shape[:3]
    k_time, k_freq = jax.random.split(key)
    time_bands = _draw_bands(k_time, b, max(config.time_masks, 0), config.time_mask_width, length)
    freq_bands = _draw_bands(k_freq, b, max(config.freq_masks, 0), config.freq_mask_width, bins)
    return jax.vmap(mask_spectrogram)(spec, time_bands, freq_bands)
