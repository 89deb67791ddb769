"""Two versions of the 3D-CNN + ConvLSTM train step, side by side: two versions of
fer_jax/models/layers.py, or two sets of the model's options.

    python benchmarks/ab_layers.py OLD_LAYERS.py [NEW_LAYERS.py] [--rounds 30] [--model-kwargs JSON]
    # e.g. OLD from git:  git show HEAD~1:fer_jax/models/layers.py > /tmp/old_layers.py
    python benchmarks/ab_layers.py --old-model-kwargs '{"convlstm_unroll": 1}'  # the checkout's layers both sides

On this project's 2-core CPU machine a 10-step `fer-jax bench` median moves by up to 10 % from run
to run (the same code measured 608-777 ms within an hour), more than many single changes gain. So
this compiles the step twice in one process, once with each layers module (NEW defaults to the
checkout's), and times their steps interleaved, A B A B ..., so that both see the same machine.
It reports each side's median and minimum step and the median of the per-round ratios. Run it with
the `fer-jax` command's environment: huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1) and one
XLA device per core, which it sets up itself as the command does.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import tempfile
import time


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old", nargs="?", default="", help="default: the checkout's layers.py")
    p.add_argument("new", nargs="?", default="")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--model-kwargs", default="{}", help="e.g. the demo's sizes: '{\"conv_features\": [8, 16, 32]}'")
    p.add_argument("--old-model-kwargs", default="{}", help="added to --model-kwargs on the old side only")
    p.add_argument("--no-augment", action="store_true")
    args = p.parse_args(argv)

    from fer_jax import cpu_devices

    cpu_devices.configure(several_processes=False)
    import jax
    import numpy as np

    import fer_jax.models.cnn3d_convlstm as model_module
    from fer_jax.bench import bench, synthetic
    from fer_jax.data.sources import open_split
    from fer_jax.data.train_batches import train_iterator
    from fer_jax.sharding import make_mesh, to_global
    from fer_jax.train.loop import build_state

    config = bench.BenchConfig(model="cnn3d_convlstm", batch=args.batch, model_kwargs=json.loads(args.model_kwargs),
                               augment=not args.no_augment)
    mesh = make_mesh(batch_sizes=(args.batch,))
    checkout = importlib.import_module("fer_jax.models.layers")
    old_config = dataclasses.replace(config, model_kwargs={**config.model_kwargs, **json.loads(args.old_model_kwargs)})
    sides = {"old": (_load(args.old, "old_layers") if args.old else checkout, old_config),
             "new": (_load(args.new, "new_layers") if args.new else checkout, config)}
    with tempfile.TemporaryDirectory(prefix="fer_jax_ab_") as tmp:
        runs, batch = {}, None
        for name, (layers, side_config) in sides.items():
            # The model module calls these two by the names it imported; the step traces them.
            model_module.conv3d_same, model_module.max_pool_valid = layers.conv3d_same, layers.max_pool_valid
            experiment = bench.experiment_config(side_config, synthetic.NAME, tmp)
            steps = build_state(experiment, mesh)
            if batch is None:
                synthetic.write_corpus(tmp, steps.input_keys + steps.task.target_keys, config.shape, 64, 0)
                split = open_split(experiment.data, "train", steps.record_keys)
                reader = dataclasses.replace(experiment.data, worker_count=0)
                batch = to_global(next(train_iterator(split.source, reader, 1, split.keys)), mesh)
            state = steps.state
            for i in range(2):  # compile, then first-run allocations
                state, _ = steps.train(state, batch, i)
                jax.block_until_ready(state)
            runs[name] = {"steps": steps, "state": state, "ms": []}
        for r in range(args.rounds):
            for run in runs.values():
                tic = time.perf_counter()
                run["state"], _ = run["steps"].train(run["state"], batch, 2 + r)
                jax.block_until_ready(run["state"])
                run["ms"].append(1e3 * (time.perf_counter() - tic))
    old, new = (np.array(runs[k]["ms"]) for k in ("old", "new"))
    print(json.dumps({"rounds": args.rounds, "batch": args.batch, "model_kwargs": config.model_kwargs,
                      "old_model_kwargs": old_config.model_kwargs,
                      "augment": config.augment, "device_count": mesh.size,
                      "old_ms_median": round(float(np.median(old)), 1), "old_ms_min": round(float(old.min()), 1),
                      "new_ms_median": round(float(np.median(new)), 1), "new_ms_min": round(float(new.min()), 1),
                      "new_over_old_median_of_rounds": round(float(np.median(new / old)), 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
