"""PyTorch peers (fer_jax.bench.peers) against our models: our initialised weights, copied into each
peer, give the same forward pass in evaluation mode; and a wrong weight layout does not.

Tolerance. Each layer computes dot products of length n_l (a convolution's input channels x taps,
a dense layer's inputs, a recurrent kernel's inputs once per time step). Two float32
implementations summing in different orders each stay within about n_l u of the exact value,
relative to the sum of the |terms| (Higham, "Accuracy and Stability of Numerical Algorithms",
3.1; u = 2^-24), so they differ by at most 2 u n_l per layer; with activations kept O(1) by the
initialisers and layer gains near 1 these add up along the network, and the outputs may differ by
2 u sum_l n_l times the output scale max(1, max |output|): relative where values are large. That
is a worst case (rounding errors grow like sqrt(n) in practice), 100-1000x the ~1e-7 seen, and
far below the O(output) change a wrong layout makes, which the negative cases check.
"""

import copy

import jax
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import ConfigError, FerJaxError
from fer_jax.models import build_model
from fer_jax.models.backbones import apply_per_frame

torch = pytest.importorskip("torch")

from fer_jax.bench import peers  # noqa: E402  (after the skip: the peers import torch)

U = 2.0**-24
NUM_CLASSES = 7
PAPER = {"conv_features": [32, 32, 64], "convlstm_filters": 16}  # the defaults, named for clarity
DEMO = {"conv_features": [8, 16, 32], "dropout": 0.3, "standardize_clips": True}  # fer_jax/demo.py


def _rng_inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in shapes.items():
        # Frames are pixels in [0, 1]; spectrogram features are centred, O(1).
        value = rng.uniform(0, 1, shape) if key == "frames" else rng.normal(size=shape)
        out[key] = value.astype(np.float32)
    return out


# name -> (model, constructor kwargs, input shapes, sequence length of its recurrences).
# Full architectures at tiny inputs: C3D's 5 blocks (64 .. 512) at 4 x 40 x 40 leave a 1 x 2 x 2 map,
# so fc6's column order is exercised; ResNet-18 at 32 x 32; the AV model's default VGGs and FBP.
CASES = {
    "cnn3d_convlstm_paper": ("cnn3d_convlstm", {**PAPER, "frames": 8, "size": 32, "in_channels": 1},
                             {"frames": (2, 8, 32, 32, 1)}, 2),
    "cnn3d_convlstm_demo": ("cnn3d_convlstm", {**DEMO, "frames": 8, "size": 32, "in_channels": 1},
                            {"frames": (2, 8, 32, 32, 1)}, 2),
    "msff_c3d": ("msff_c3d", {"frames": 4, "size": 40, "in_channels": 3}, {"frames": (2, 4, 40, 40, 3)}, 1),
    "msff_cnn_blstm_resnet18": ("msff_cnn_blstm", {"backbone": "resnet18", "in_channels": 3, "lstm_hidden": 16},
                                {"frames": (2, 4, 32, 32, 3)}, 4),
    "msff_cnn_blstm_vgg_bn_last": ("msff_cnn_blstm", {"backbone": "vgg", "in_channels": 1, "lstm_hidden": 8,
                                                      "lstm_layers": 2, "pooling": "last",
                                                      "backbone_options": {"blocks": [[4], [8]], "batch_norm": True}},
                                   {"frames": (2, 3, 16, 16, 1)}, 3),
    "av_attention_fbp": ("av_attention_fbp", {"in_channels": 1},
                         {"frames": (2, 4, 16, 16, 1), "log_mel_deltas": (2, 16, 16, 3)}, 1),
    "av_attention_relation": ("av_attention_fbp", {"aggregation": "relation",
                                                   "frame_backbone_kwargs": {"blocks": [[4], [8]], "batch_norm": True},
                                                   "audio_blocks": [[4], [8]],
                                                   "fusion_kwargs": {"out_dim": 16, "factor": 3}},
                              {"frames": (2, 3, 8, 8, 1), "log_mel_deltas": (2, 8, 8, 3)}, 1),
    "av_attention_transformer": ("av_attention_fbp", {"aggregation": "transformer", "attention_rank": 4,
                                                      "frame_backbone_kwargs": {"blocks": [[4], [8]]},
                                                      "audio_blocks": [[4], [8]],
                                                      "fusion_kwargs": {"out_dim": 16, "factor": 3}},
                                 {"frames": (2, 3, 8, 8, 1), "log_mel_deltas": (2, 8, 8, 3)}, 1),
}


def sum_of_dot_lengths(torch_model, steps: int, exclude=()) -> int:
    """sum_l n_l: per weight matrix or kernel, the inputs of one output; recurrent ones once per step."""
    total = 0
    for name, p in torch_model.named_parameters():
        if p.ndim >= 2 and not name.startswith(exclude):
            total += p[0].numel() * (steps if ("recurrent" in name or "weight_hh" in name) else 1)
    return total


def rounding_bound(torch_model, steps: int, reference: np.ndarray) -> float:
    return 2 * U * sum_of_dot_lengths(torch_model, steps) * max(1.0, float(np.abs(reference).max()))


def _randomise_batch_norm(model, seed=1):
    # Initialised BatchNorm is the identity in evaluation mode (mean 0, var 1, scale 1, bias 0); a
    # different affine map per channel makes a misplaced statistic visible.
    rng = np.random.default_rng(seed)
    for _, module in nnx.iter_modules(model):
        if isinstance(module, nnx.BatchNorm):
            n = module.scale.shape[0]
            module.scale.set_value(jax.numpy.asarray(rng.uniform(0.8, 1.2, n), np.float32))
            module.bias.set_value(jax.numpy.asarray(rng.normal(0, 0.1, n), np.float32))
            module.mean.set_value(jax.numpy.asarray(rng.normal(0, 0.1, n), np.float32))
            module.var.set_value(jax.numpy.asarray(rng.uniform(0.8, 1.2, n), np.float32))


def _torch_forward(torch_model, inputs):
    with torch.no_grad():
        return torch_model({k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()


@pytest.fixture(scope="module")
def built():
    """case -> (our model, its peer with our weights, inputs, our logits), built once per case."""
    cache = {}

    def get(case):
        if case not in cache:
            model, kwargs, shapes, _ = CASES[case]
            # rbg keys: threefry initialisers compile slowly on small CPUs; any draw will do.
            ours = nnx.jit(lambda: build_model(model, num_classes=NUM_CLASSES,
                                               rngs=nnx.Rngs(jax.random.key(0, impl="rbg")), **kwargs))()
            _randomise_batch_norm(ours)
            theirs = peers.build_peer(model, NUM_CLASSES, kwargs)
            peers.peer(model)[1](ours, theirs)
            ours.eval()
            theirs.eval()
            inputs = _rng_inputs(shapes)
            logits = np.asarray(nnx.jit(lambda m, x: m(x))(ours, inputs))
            cache[case] = ours, theirs, inputs, logits
        return cache[case]

    return get


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("av_")])
def test_peer_computes_our_forward_pass(case, built):
    _, theirs, inputs, ours = built(case)
    tol = rounding_bound(theirs, CASES[case][3], ours)
    got = _torch_forward(theirs, inputs)
    assert got.shape == ours.shape == (2, NUM_CLASSES)
    np.testing.assert_allclose(got, ours, rtol=0, atol=tol)


def _fbp_bound(fusion, audio, video, logits) -> float:
    """|logits difference| between our FBP layer with float64 compute and the peer's in float64,
    on the same features. Ours still rounds the bilinear product to float32 and works in float32
    up to the head (as the layer is written); float64 errors are negligible next to these:
      z = sum of `factor` products, each rounded, then summed: dz <= (factor + 1) u sum_k |p_k|;
      signed square root: dz / (2 sqrt(|z| - dz)), or 2 sqrt(dz) where |z| <= dz (the sign may
        flip), plus its own rounding u |s|;
      l2 normalisation: 2 |ds| / |s|, plus (out_dim + 2) u for its float32 norm and division;
      head (float64): its largest column norm times that; the logits' cast to float32: u |logit|.
    """
    u_kernel = np.asarray(fusion.U.kernel[...], np.float64)
    v_kernel = np.asarray(fusion.V.kernel[...], np.float64)
    products = ((audio @ u_kernel) * (video @ v_kernel)).reshape(len(audio), fusion.out_dim, fusion.factor)
    z = products.sum(-1)
    dz = (fusion.factor + 1) * U * np.abs(products).sum(-1)
    s = np.sign(z) * np.sqrt(np.abs(z) + fusion.eps)
    ds = np.where(np.abs(z) > dz, dz / (2 * np.sqrt(np.maximum(np.abs(z) - dz, 0) + fusion.eps)), 2 * np.sqrt(dz))
    ds = ds + U * np.abs(s)
    d_normalised = 2 * np.linalg.norm(ds, axis=-1) / np.linalg.norm(s, axis=-1) + (fusion.out_dim + 2) * U
    head = np.asarray(fusion.head.kernel[...], np.float64)
    return float(np.linalg.norm(head, axis=0).max() * d_normalised.max() + U * np.abs(logits).max())


def _fusions_in_float64(ours_model, theirs, audio, video):
    """(our fusion's logits, the peer's) on the same features, both computing in float64."""
    fusion = nnx.clone(ours_model.fusion)
    for _, module in nnx.iter_modules(fusion):
        if hasattr(module, "dtype"):
            module.dtype = jax.numpy.float64  # as train.step.set_compute_dtype does for bfloat16
    with jax.enable_x64(True):
        ours = np.asarray(fusion([jax.numpy.asarray(audio), jax.numpy.asarray(video)]))
    peer_fusion = copy.deepcopy(theirs.fusion).double()
    with torch.no_grad():
        return ours, peer_fusion(torch.tensor(audio), torch.tensor(video)).numpy()


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("av_")])
def test_av_peer_computes_our_branches_and_fusion(case, built):
    """Checked in parts, which `forward` composes: the branches in float32 against the rounding
    bound; the fusion on the same features in float64, since FBP's square root turns float32
    rounding of the large cancelling sums in z into errors as large as the logits, so a float32
    bound through it says nothing."""
    ours_model, theirs, inputs, _ = built(case)
    frames, spectrogram = jax.numpy.asarray(inputs["frames"]), jax.numpy.asarray(inputs["log_mel_deltas"])
    audio32 = ours_model.audio_cnn(spectrogram)
    video32 = ours_model.aggregate(apply_per_frame(ours_model.frame_cnn, frames), None)
    # Our model is that composition, [audio, video] in that order: the same operations, run
    # eagerly in the same order, give the same bits.
    np.testing.assert_array_equal(np.asarray(ours_model({"frames": frames, "log_mel_deltas": spectrogram})),
                                  np.asarray(ours_model.fusion([audio32, video32])))
    audio, video = np.asarray(audio32, np.float64), np.asarray(video32, np.float64)
    torch_inputs = {k: torch.from_numpy(v) for k, v in inputs.items()}
    with torch.no_grad():
        their_audio, their_video = (t.numpy() for t in theirs.branches(torch_inputs))
        their_logits = theirs(torch_inputs).numpy()
        composed = theirs.fusion(torch.from_numpy(their_audio), torch.from_numpy(their_video)).numpy()
    # Each branch against the rounding bound of the whole peer (a superset of its layers).
    np.testing.assert_allclose(their_audio, audio, rtol=0, atol=rounding_bound(theirs, 1, audio))
    np.testing.assert_allclose(their_video, video, rtol=0, atol=rounding_bound(theirs, 1, video))
    ours_fused, their_fused = _fusions_in_float64(ours_model, theirs, audio, video)
    tol = _fbp_bound(ours_model.fusion, audio, video, ours_fused)
    assert tol < 0.01 * np.abs(ours_fused).max()  # still a test: far below the logits themselves
    np.testing.assert_allclose(their_fused, ours_fused, rtol=0, atol=tol)
    # The peer's forward is the same composition.
    np.testing.assert_array_equal(their_logits, composed)


# --- a wrong layout fails --------------------------------------------------------------------------


def _flip_spatial(weight):  # a kernel read as (kw, kh): the classic transpose(3, 2, 1, 0) slip
    return weight.transpose(-1, -2)


def _swap_gates_f_c(weight):  # ConvLSTM gates read in the order i, c, f, o
    i, f, c, o = weight.chunk(4, dim=0)
    return torch.cat([i, c, f, o])


def _our_kernel_transposed(ours, path):
    module = ours
    for name in path:
        module = module[int(name)] if name.isdigit() else getattr(module, name)
    return torch.tensor(np.asarray(module.kernel[...]).T)


MISTAKES = {
    # case, torch parameter, mistake (torch weight, our model) -> wrong weight
    "conv kernel spatially transposed": ("cnn3d_convlstm_paper", "convs.1.weight", lambda w, o: _flip_spatial(w)),
    "ConvLSTM gate order": ("cnn3d_convlstm_paper", "convlstm.weight", lambda w, o: _swap_gates_f_c(w)),
    "ConvLSTM recurrent gate order": ("cnn3d_convlstm_demo", "convlstm.recurrent_weight",
                                      lambda w, o: _swap_gates_f_c(w)),
    "head columns not permuted to channels first": ("cnn3d_convlstm_paper", "head.weight",
                                                    lambda w, o: _our_kernel_transposed(o, ["head"])),
    "C3D fc6 columns not permuted": ("msff_c3d", "fcs.0.weight", lambda w, o: _our_kernel_transposed(o, ["fcs", "0"])),
    "ResNet conv kernel spatially transposed": ("msff_cnn_blstm_resnet18", "backbone.layer2.0.conv1.weight",
                                                lambda w, o: _flip_spatial(w)),
    "LSTM gate order i, f, g, o read as i, g, f, o": ("msff_cnn_blstm_resnet18", "blstm.weight_hh_l0",
                                                     lambda w, o: _swap_gates_f_c(w)),
    "audio VGG conv kernel spatially transposed": ("av_attention_relation", "audio_cnn.blocks.1.0.conv.weight",
                                                   lambda w, o: _flip_spatial(w)),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_wrong_layout_exceeds_the_tolerance(mistake, built):
    case, name, wrong = MISTAKES[mistake]
    ours_model, theirs, inputs, ours = built(case)
    param = dict(theirs.named_parameters())[name]
    right = param.detach().clone()
    with torch.no_grad():
        param.copy_(wrong(right, ours_model))
    try:
        got = _torch_forward(theirs, inputs)
    finally:
        with torch.no_grad():
            param.copy_(right)
    assert np.abs(got - ours).max() > rounding_bound(theirs, CASES[case][3], ours)


# --- construction ----------------------------------------------------------------------------------


def test_paper_sizes_have_the_papers_parameter_count():
    theirs = peers.build_peer("cnn3d_convlstm", NUM_CLASSES, {"frames": 8, "size": 64, "in_channels": 1})
    ours = nnx.eval_shape(lambda: build_model("cnn3d_convlstm", num_classes=NUM_CLASSES, rngs=nnx.Rngs(0)))
    ours_count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(ours, nnx.Param)))
    assert sum(p.numel() for p in theirs.parameters()) == ours_count == 137_255


def test_copying_into_a_different_network_fails_naming_the_tensor():
    ours = nnx.jit(lambda: build_model("cnn3d_convlstm", num_classes=NUM_CLASSES, size=16, conv_features=[2, 2, 2],
                                       rngs=nnx.Rngs(jax.random.key(0, impl="rbg"))))()
    theirs = peers.build_peer("cnn3d_convlstm", NUM_CLASSES, {"size": 16, "conv_features": [2, 2, 2],
                                                              "convlstm_filters": 8})
    with pytest.raises(FerJaxError, match="convlstm.weight: shape"):
        peers.peer("cnn3d_convlstm")[1](ours, theirs)


def test_an_option_the_peer_lacks_is_refused_not_ignored():
    with pytest.raises(ConfigError, match="use_frame_mask"):
        peers.build_peer("msff_cnn_blstm", NUM_CLASSES, {"use_frame_mask": True})
    with pytest.raises(ConfigError, match="only fusion 'fbp'"):
        peers.build_peer("av_attention_fbp", NUM_CLASSES, {"fusion": "concat"})
    with pytest.raises(ConfigError, match="no torch peer"):
        peers.peer("mini_xception")


@pytest.mark.parametrize("size, window", [(7, 2), (7, 3), (8, 3), (9, 3)])
def test_c3d_pooling_pads_as_flax_same(size, window):
    from fer_jax.bench.peers.c3d import max_pool_same

    x = np.random.default_rng(0).normal(size=(1, size, size, size, 2)).astype(np.float32)
    ours = np.asarray(nnx.max_pool(jax.numpy.asarray(x), (window,) * 3, strides=(window,) * 3, padding="SAME"))
    theirs = max_pool_same(torch.from_numpy(x).permute(0, 4, 1, 2, 3), (window,) * 3).permute(0, 2, 3, 4, 1)
    np.testing.assert_array_equal(theirs.numpy(), ours)  # a max picks one of the values: exact
