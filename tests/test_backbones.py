"""Backbones against torch models with torchvision's layout, loaded through the documented mapping.

torchvision itself is not installable here (its PyPI wheel is a CUDA build that fails against the
CPU torch), so the references below transcribe torchvision's resnet.py / vgg.py structure in plain
torch.nn; torch's own conv, BatchNorm and pooling are the independent implementation. Tolerance: float32
rounding of each case's depth and largest sums, relative to its output scale (helpers.tolerance).
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models.backbones import apply_per_frame, build_backbone, vgg_torch_indices
from helpers.fitting import forward_keeping_state
from helpers.tolerance import assert_caught, assert_close, rounding_tolerance

torch = pytest.importorskip("torch")
nn = torch.nn

WIDTH = 1 / 16  # 4-channel stem: the full graph at a sliver of the cost
TINY_VGG = ((4,), (8, 8), (8,))


def _rngs(seed=0):
    # rbg only to keep CPU compile times low; parity tests overwrite the weights with torch's.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _build(name, **kwargs):
    return nnx.jit(lambda: build_backbone(name, 3, rngs=_rngs(), **kwargs))()


def _abstract(name, **kwargs):
    # Shapes only: parity tests overwrite every variable, and drawing 50+ kernels costs ~15 s of
    # compilation on a small CPU.
    return nnx.eval_shape(lambda: build_backbone(name, 3, rngs=_rngs(), **kwargs))


# Tiny programs whose compile time dwarfs their run time: XLA's backend optimisation off (about
# half the compile time; results agree with torch as closely).




# --- torch references, named as torchvision names them --------------------------------------

class _TorchBasic(nn.Module):
    expansion = 1

    def __init__(self, c_in, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class _TorchBottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn3(self.conv3(torch.relu(self.bn2(self.conv2(y)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class _TorchResNet(nn.Module):
    def __init__(self, block, layers, width):
        super().__init__()
        c = max(1, round(64 * width))
        self.conv1 = nn.Conv2d(3, c, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
            planes, blocks = max(1, round(planes * width)), []
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                down = None
                if stride != 1 or c != planes * block.expansion:
                    down = nn.Sequential(
                        nn.Conv2d(c, planes * block.expansion, 1, stride, bias=False),
                        nn.BatchNorm2d(planes * block.expansion),
                    )
                blocks.append(block(c, planes, stride, down))
                c = planes * block.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean((2, 3))


def _torch_vgg(blocks, batch_norm):
    layers, c = [], 3  # torchvision's vgg.make_layers
    for block in blocks:
        for v in block:
            norm = [nn.BatchNorm2d(v)] if batch_norm else []
            layers += [nn.Conv2d(c, v, 3, padding=1), *norm, nn.ReLU()]
            c = v
        layers.append(nn.MaxPool2d(2, 2))
    module = nn.Module()
    module.features = nn.Sequential(*layers)
    module.forward = lambda x: module.features(x).mean((2, 3))
    return module


def _randomise(module, seed):
    # Random BN affine and running statistics too, so evaluation mode is not an identity. Conv
    # weights get std 1/sqrt(fan_in), so activations stay O(1) through 50 layers and an absolute
    # tolerance means the same thing at every depth.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif t.ndim > 1:  # conv kernel (out, in, kh, kw)
                t.copy_(torch.randn(t.shape, generator=gen) / np.sqrt(t[0].numel()))
            elif name.endswith("weight"):  # BatchNorm scale: around 1
                t.copy_(1.0 + 0.3 * torch.randn(t.shape, generator=gen))
            elif t.is_floating_point():
                t.copy_(0.3 * torch.randn(t.shape, generator=gen))
    return module


# --- the documented mapping --------------------------------------------------------------------

_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


def _torch_key(path, vgg_indices):
    if path[0] == "blocks":  # blocks/b/j/{conv,bn}/leaf -> features.{index}.leaf
        conv_i, bn_i = vgg_indices[path[1]][path[2]]
        return f"features.{conv_i if path[3] == 'conv' else bn_i}.{_LEAF[path[-1]]}"
    return ".".join(str(p) for p in path[:-1]) + "." + _LEAF[path[-1]]


def _load(ours, torch_module, vgg_indices=None, kernel_axes=(2, 3, 1, 0)):
    """torch (out, in, kh, kw) kernels -> ours (kh, kw, in, out); other `kernel_axes` load them wrong."""
    state = {k: v.numpy() for k, v in torch_module.state_dict().items() if "num_batches" not in k}
    used = set()
    for path, var in nnx.to_flat_state(nnx.state(ours)):
        key = _torch_key(path, vgg_indices)
        value = state[key]
        if path[-1] == "kernel":
            value = value.transpose(kernel_axes)
        assert value.shape == var.get_value().shape, (path, key)
        var.set_value(jnp.asarray(value))
        used.add(key)
    assert used == set(state), set(state) ^ used  # nothing left over on either side


IMAGE_SIZE = 64  # ResNet's last stage still sees 2x2 positions: training-mode BatchNorm over 8 values


def _images(seed=0, n=2, size=IMAGE_SIZE):
    return np.random.default_rng(seed).uniform(0, 1, (n, size, size, 3)).astype(np.float32)


def _torch_out(module, x):
    return module(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy()


CASES = {
    "resnet18": (lambda: _TorchResNet(_TorchBasic, (2, 2, 2, 2), WIDTH), {"width": WIDTH}),
    "resnet50": (lambda: _TorchResNet(_TorchBottleneck, (3, 4, 6, 3), WIDTH), {"width": WIDTH}),
    "vgg": (lambda: _torch_vgg(TINY_VGG, False), {"blocks": TINY_VGG}),
    "vgg_bn": (lambda: _torch_vgg(TINY_VGG, True), {"blocks": TINY_VGG, "batch_norm": True}),
}
# Layers on the longest path (convolutions, plus the final spatial mean) and the largest fan-in:
# resnet18 1 + 4 stages x 2 blocks x 2 convs; resnet50 1 + 16 blocks x 3 convs; the tiny VGG 4
# convs. Fan-in: a 3x3 conv over the widest stage's 32 channels (resnet) or 8 channels (VGG).
DEPTH = {"resnet18": 18, "resnet50": 50, "vgg": 5, "vgg_bn": 5}
FAN_IN = {"resnet18": 3 * 3 * 32, "resnet50": 3 * 3 * 32, "vgg": 3 * 3 * 8, "vgg_bn": 3 * 3 * 8}


def _tolerance(case, expected, train=False):
    """float32 rounding of DEPTH layers, relative to the output's scale. Training-mode BatchNorm
    also sums its batch statistics over every position of the batch: the first one, after ResNet's
    stride-2 stem or VGG's full-size conv, sums the most (N x H x W terms)."""
    terms = FAN_IN[case]
    if train:
        stride = 2 if case.startswith("resnet") else 1
        terms = max(terms, 2 * (IMAGE_SIZE // stride) ** 2)
    return rounding_tolerance(terms=terms, layers=DEPTH[case], scale=float(np.abs(expected).max()))


def _loaded(case, **load_kwargs):
    make_torch, kwargs = CASES[case]
    torch.manual_seed(0)
    ref = _randomise(make_torch(), seed=1)
    ours = _abstract(case.removesuffix("_bn"), **kwargs)
    _load(ours, ref, vgg_torch_indices(TINY_VGG, kwargs.get("batch_norm", False)), **load_kwargs)
    return ref, ours


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_torch_in_eval_and_train_mode(case):
    ref, ours = _loaded(case)
    x = _images()

    ref.eval()
    ours.eval()
    stats = [np.asarray(v) for v in jax.tree.leaves(nnx.state(ours, nnx.BatchStat))]
    expected = _torch_out(ref, x)
    assert 0.1 < np.abs(expected).max() < 100  # activations O(1), as the tolerance assumes
    assert_close(forward_keeping_state(ours, x), expected, _tolerance(case, expected), f"{case} eval")
    # Evaluation reads the running averages and leaves them alone.
    assert all(np.array_equal(a, b) for a, b in zip(stats, jax.tree.leaves(nnx.state(ours, nnx.BatchStat))))
    if case == "resnet50":
        return  # its blocks differ from resnet18's, its BatchNorm does not: one compile is enough

    # Training mode normalises with the batch's statistics and moves the running mean alike.
    ref.train()
    ours.train()
    expected = _torch_out(ref, x)
    assert_close(forward_keeping_state(ours, x), expected, _tolerance(case, expected, train=True), f"{case} train")
    if case != "vgg":
        first_bn = ours.bn1 if case.startswith("resnet") else ours.blocks[0][0].bn
        ref_bn = ref.bn1 if case.startswith("resnet") else ref.features[1]
        # One conv and one mean over the batch's positions, of conv outputs O(1) (weights of std
        # 1/sqrt(fan-in) on inputs in [0, 1]; 4 standard deviations bound them).
        positions = 2 * (IMAGE_SIZE // (2 if case.startswith("resnet") else 1)) ** 2
        tol = rounding_tolerance(terms=positions, layers=2, scale=4.0)
        assert_close(first_bn.mean[...], ref_bn.running_mean.numpy(), tol, f"{case} running mean")


def _without_a_block(case, ref):
    """The torch reference with one layer left out: ResNet's last block, or VGG's last BatchNorm."""
    if case.startswith("resnet"):
        ref.layer4 = ref.layer4[:-1]
    else:
        ref.features[-3] = nn.Identity()  # features end conv, bn, relu, pool
    return ref


@pytest.mark.parametrize("case", ["resnet18", "vgg_bn"])
def test_comparison_catches_a_transposed_kernel_and_a_missing_layer(case):
    """Guards the parity test: kernels loaded with kh and kw swapped (a wrong weight layout), or a
    reference one layer short, miss by far more than the tolerance in either mode."""
    x = _images()
    for train in (False, True):
        ref, ours = _loaded(case)
        _, transposed = _loaded(case, kernel_axes=(3, 2, 1, 0))
        ref.train(train)
        for model in (ours, transposed):
            model.train() if train else model.eval()
        expected = _torch_out(ref, x)
        tol = _tolerance(case, expected, train)
        assert_caught(forward_keeping_state(transposed, x), expected, tol, f"{case} transposed kernels, train={train}")
        got = forward_keeping_state(ours, x)
        assert_close(got, expected, tol)  # the same comparison passes with the right layout...
        short = _without_a_block(case, ref)
        assert_caught(got, _torch_out(short, x), tol, f"{case} missing layer, train={train}")  # ...not a layer short


def test_parameter_counts_equal_torchvision_without_classifier():
    # torchvision: resnet18 11,689,512 and resnet50 25,557,032 parameters with fc (513,000 and
    # 2,049,000); vgg16 features 14,714,688. eval_shape builds nothing.
    def count(name):
        model = nnx.eval_shape(lambda: build_backbone(name, 3, rngs=_rngs()))
        return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))

    assert count("resnet18") == 11_689_512 - 513_000
    assert count("resnet50") == 25_557_032 - 2_049_000
    assert count("vgg") == 14_714_688


def test_apply_per_frame_equals_a_loop_over_frames():
    model = _build("vgg", blocks=TINY_VGG)
    frames = np.random.default_rng(2).uniform(0, 1, (2, 3, 16, 16, 3)).astype(np.float32)
    per_frame = nnx.jit(apply_per_frame)(model, frames)  # the function under test, jitted as is
    assert per_frame.shape == (2, 3, 8)
    # Training-mode BN would mix frames, so compare in evaluation mode (VGG here has no BN anyway).
    for t in range(3):
        np.testing.assert_allclose(per_frame[:, t], forward_keeping_state(model, frames[:, t]), atol=1e-6)


def test_config_mistakes_raise_config_error():
    with pytest.raises(ConfigError, match="Known backbones: resnet18, resnet50, vgg"):
        build_backbone("resnet34", rngs=_rngs())
    with pytest.raises(ConfigError, match="does not take blocks"):
        build_backbone("resnet18", rngs=_rngs(), blocks=TINY_VGG)
    with pytest.raises(ConfigError, match="3 blocks need 3 pool_windows"):
        build_backbone("vgg", rngs=_rngs(), blocks=TINY_VGG, pool_windows=((2, 2),))
    model = _build("vgg", blocks=TINY_VGG)
    with pytest.raises(ConfigError, match=r"images \(N, H, W, 3\)"):
        model(jnp.zeros((1, 16, 16, 1)))
