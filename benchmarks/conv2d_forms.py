"""One 3x3 'SAME' 2D convolution's three products, each in two forms, on this machine's CPU devices.

    python benchmarks/conv2d_forms.py [N,H,W,CIN,COUT]    # default 256,32,32,32,96

For each product of a training step (the forward pass, the kernel gradient, the input gradient) it
times XLA's own convolution (`lax.conv_general_dilated`) against the matrix product of the 9
gathered taps (`layers.conv2d_by_matmul`, the gather included), each gradient as autodiff computes
it for that form: for the convolution, the convolution of the cotangent with the flipped kernel
and a kernel-gradient convolution; for the gathered taps, products and a scatter back. The batch
is split over one XLA:CPU device per core, as the `fer-jax` command runs
(`fer_jax/cpu_devices.py`); run it with the command's huge pages
(GLIBC_TUNABLES=glibc.malloc.hugetlb=1). It prints the minimum of 10 interleaved runs and the
GFLOP/s that makes. The default shape is the 3D-CNN + ConvLSTM's second layer at batch 32 with its
3 temporal taps folded into the output channels (8 frames of 32x32, 32 -> 3 x 32 channels); the
ResNet-18 shapes BENCHMARKS.md quotes are 64,56,56,64,64 ... 64,7,7,512,512.
"""

from __future__ import annotations

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

    from fer_jax.models import layers

    mesh = Mesh(np.array(jax.devices()), ("batch",))

    def conv(x, kernel):
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    forms = {"convolution": conv, "gathered taps": lambda x, kernel: layers.conv2d_by_matmul(x, kernel, "SAME")}

    def per_device(fn, in_specs, out_specs):
        return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs))

    rng = np.random.default_rng(0)
    rows = NamedSharding(mesh, P("batch"))
    x = jax.device_put(rng.standard_normal((n, h, w, cin), np.float32), rows)
    d_y = jax.device_put(rng.standard_normal((n, h, w, cout), np.float32), rows)
    kernel = jnp.asarray(rng.standard_normal((3, 3, cin, cout), np.float32))
    cases = {}
    for form, fn in forms.items():
        # Each gradient as autodiff computes it for this form in a training step.
        def kernel_grad(x, d_y, kernel, fn=fn):
            return jax.lax.psum(jax.vjp(lambda k: fn(x, k), kernel)[1](d_y)[0], "batch")

        def input_grad(x, d_y, kernel, fn=fn):
            return jax.vjp(lambda x: fn(x, kernel), x)[1](d_y)[0]

        cases[f"forward, {form}"] = (per_device(fn, (P("batch"), P()), P("batch")), (x, kernel))
        cases[f"kernel gradient, {form}"] = (per_device(kernel_grad, (P("batch"), P("batch"), P()), P()), (x, d_y, kernel))
        cases[f"input gradient, {form}"] = (per_device(input_grad, (P("batch"), P("batch"), P()), P("batch")), (x, d_y, kernel))
    for fn, args in cases.values():
        jax.block_until_ready(fn(*args))
    seconds = {name: [] for name in cases}
    for _ in range(10):
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
