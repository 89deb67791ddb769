"""Inference on new videos: predict (a timeline per face), plots, export, the REST service.

    loader.py        a saved run (fer_jax.runs.saved_run) -> batched prediction, its preprocessing
    tracks.py        face tracks over a stream (dlib's detector and correlation tracker)
    stream.py        a video -> model-ready windows, holding one window of aligned crops per face
    audio_stream.py  the sound of a video, read forward in time spans
    predict.py       windows -> model -> the timeline (JSON, CSV)
    live.py          predict --live: a camera, stream or pipe in real time (frames dropped, not queued)
    timeline.py      the timeline plot and the annotated video
    export.py        jax.export artifact + preprocessing sidecar
    onnx_export.py   the model as ONNX (jax2onnx; 3D convolutions as folded 2D ones) and int8
    onnx_model.py    an exported ONNX model run by onnxruntime, without JAX
    limits.py        what one prediction may cost (pixels, frames, seconds) and its cancellation
    batching.py      one model worker shared by concurrent requests
    serve.py         FastAPI app (POST /v1/predict, GET /healthz, the page in web/)
    imports.py       pretrained models as run folders (fer2013)
    cli.py           the predict, export, serve and import subcommands
"""
