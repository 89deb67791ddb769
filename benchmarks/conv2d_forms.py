"""One 3x3 'SAME' 2D convolution's three products, each in two forms, on this machine's CPU devices.

    python benchmarks/conv2d_forms.py [N,H,W,CIN,COUT]    # default 256,32,32,32,96

For each product of a training step (the forward pass, the kernel gradient, the input gradient) it
times XLA's own convolution (`lax.conv_general_dilated`, and autodiff of it for the kernel
gradient) against the matrix product of the 9 gathered taps that `fer_jax/models/layers.py` uses,
the gather included. The batch is split over one XLA:CPU device per core, as the `fer-jax`
command runs (`fer_jax/cpu_devices.py`); run it with the command's huge pages
(GLIBC_TUNABLES=glibc.malloc.hugetlb=1). It prints the minimum of 6 interleaved runs and the
GFLOP/s that makes. The default shape is the 3D-CNN + ConvLSTM's second layer at batch 32 with its
3 temporal taps folded into the output channels (8 frames of 32x32, 32 -> 3 x 32 channels); the
ResNet-18 shapes BENCHMARKS.md quotes are 64,56,56,64,64 ... 64,7,7,512,512.
"""

from __future__ import annotations

import itertools
import sys
import time


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n, h, w, cin, cout = map(int, argv[0].split(",")) if argv else (256, 32, 32, 32, 96)

    from fer_jax import cpu_devices

    cpu_devices.configure(several_processes=False)
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()), ("batch",))

    def conv(x, kernel):
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def columns(x):
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        taps = [padded[:, i : i + x.shape[1], j : j + x.shape[2], :] for i, j in itertools.product(range(3), range(3))]
        return jnp.concatenate(taps, axis=-1).reshape(-1, 9 * x.shape[-1])

    def by_columns(x, kernel):
        return jnp.dot(columns(x), kernel.reshape(-1, kernel.shape[-1])).reshape(*x.shape[:3], -1)

    def kernel_grad_by_conv(x, d_y):
        zeros = jnp.zeros((3, 3, x.shape[-1], d_y.shape[-1]), x.dtype)
        return jax.vjp(lambda k: conv(x, k), zeros)[1](d_y)[0]

    def kernel_grad_by_columns(x, d_y):
        return jnp.dot(columns(x).T, d_y.reshape(-1, d_y.shape[-1])).reshape(3, 3, x.shape[-1], -1)

    def flipped(kernel):  # the input gradient is the convolution with this kernel
        return jnp.flip(kernel, (0, 1)).swapaxes(2, 3)

    def per_device(fn, in_specs, out_specs):
        return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs))

    rng = np.random.default_rng(0)
    rows = NamedSharding(mesh, P("batch"))
    x = jax.device_put(rng.standard_normal((n, h, w, cin), np.float32), rows)
    d_y = jax.device_put(rng.standard_normal((n, h, w, cout), np.float32), rows)
    kernel = jnp.asarray(rng.standard_normal((3, 3, cin, cout), np.float32))
    summed = lambda fn: lambda a, b: jax.lax.psum(fn(a, b), "batch")  # noqa: E731
    cases = {
        "forward, convolution": (per_device(conv, (P("batch"), P()), P("batch")), (x, kernel)),
        "forward, gathered taps": (per_device(by_columns, (P("batch"), P()), P("batch")), (x, kernel)),
        "kernel gradient, convolution (autodiff)": (
            per_device(summed(kernel_grad_by_conv), (P("batch"), P("batch")), P()), (x, d_y)),
        "kernel gradient, gathered taps": (
            per_device(summed(kernel_grad_by_columns), (P("batch"), P("batch")), P()), (x, d_y)),
        "input gradient, convolution": (
            per_device(lambda g, k: conv(g, flipped(k)), (P("batch"), P()), P("batch")), (d_y, kernel)),
        "input gradient, gathered taps": (
            per_device(lambda g, k: by_columns(g, flipped(k)), (P("batch"), P()), P("batch")), (d_y, kernel)),
    }
    for fn, args in cases.values():
        jax.block_until_ready(fn(*args))
    seconds = {name: [] for name in cases}
    for _ in range(6):
        for name, (fn, args) in cases.items():
            tic = time.perf_counter()
            jax.block_until_ready(fn(*args))
            seconds[name].append(time.perf_counter() - tic)
    flops = 2 * n * h * w * 9 * cin * cout
    print(f"{n}x{h}x{w}x{cin} -> {cout}, {mesh.size} devices, {flops / 1e9:.1f} GFLOP per product")
    for name, times in seconds.items():
        print(f"{name:42s} {min(times) * 1e3:7.0f} ms  {flops / min(times) / 1e9:5.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
