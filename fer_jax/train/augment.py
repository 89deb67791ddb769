"""Augmentation inside the jitted step, so the host only reads uint8.

The 3D-CNN + ConvLSTM paper augments each clip by rotations of +-5, +-10 and +-15 degrees and by
horizontal flips; one transform is drawn per clip and applied to all its frames alike, so the
motion between frames is untouched.
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
    """frames (B, T, H, W, C) float -> same shape, each clip rotated and/or flipped at random."""
    if not config.enabled:
        return frames
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
