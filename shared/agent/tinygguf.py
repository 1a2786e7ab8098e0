"""A tiny llama-architecture GGUF with seeded random weights, for tests and benchmarks.

    write_tiny_llama(path, words=("pump", "fan"), n_layer=1, n_embd=32, seed=0)

Real llama.cpp loads it and generates (nonsense) text, so the whole local-agent path runs
without a downloaded model. The tokenizer is SentencePiece-style (`tokenizer.ggml.model =
"llama"`): control tokens, the 256 byte-fallback tokens `<0xNN>` (so any text encodes),
printable ASCII characters, `▁` (the SPM space) and `▁word` pieces (with their prefixes)
for `words`. Only
printable pieces are ever sampled (see `_output_rows`): replies are valid UTF-8 and never
end early, so `max_tokens` alone decides their length (what a tokens/s benchmark wants).

Needs the `gguf` package (a dev dependency) and numpy; both are imported here only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPACE = "\u2581"  # SentencePiece's visible space
BOS, EOS, UNK = 1, 2, 0
_CONTROL = ("<unk>", "<s>", "</s>")
# gguf.TokenType values, fixed by the format.
_NORMAL, _UNKNOWN, _CONTROL_T, _BYTE = 1, 2, 3, 6


def vocabulary(words: Sequence[str] = ()) -> tuple[list[str], list[float], list[int]]:
    """(tokens, scores, types): controls, bytes, ASCII characters, `▁`, `▁word`s."""
    tokens = list(_CONTROL) + [f"<0x{b:02X}>" for b in range(256)]
    types = [_UNKNOWN, _CONTROL_T, _CONTROL_T] + [_BYTE] * 256
    pieces = [chr(c) for c in range(33, 127)] + [SPACE]
    # SPM reaches `▁word` by merging adjacent pairs, so every prefix must be a piece too.
    prefixes = (SPACE + w[:n] for w in words for n in range(1, len(w) + 1))
    pieces += [p for p in dict.fromkeys(prefixes) if p not in pieces]
    tokens += pieces
    types += [_NORMAL] * len(pieces)
    # SPM merges the pair whose result scores highest: longer pieces score higher.
    scores = [0.0] * (len(tokens) - len(pieces)) + [float(len(p)) for p in pieces]
    return tokens, scores, types


def write_tiny_llama(
    path: Path | str,
    *,
    words: Sequence[str] = (),
    n_layer: int = 1,
    n_embd: int = 32,
    n_head: int = 2,
    n_ff: int = 64,
    n_ctx: int = 2048,
    seed: int = 0,
    chat_template: str | None = None,
) -> Path:
    """Write the model to `path` and return it."""
    import gguf
    import numpy as np

    path = Path(path)
    tokens, scores, types = vocabulary(words)
    writer = gguf.GGUFWriter(str(path), "llama")
    _hyperparameters(writer, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_ff=n_ff, n_ctx=n_ctx)
    _tokenizer(writer, tokens, scores, types, chat_template)
    rng = np.random.default_rng(seed)
    for name, shape in _shapes(len(tokens), n_layer, n_embd, n_ff).items():
        if name.endswith("norm.weight"):
            tensor = np.ones(shape, dtype=np.float32)
        else:
            tensor = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        if name == "output.weight":
            tensor = _output_rows(tensor, types)
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _output_rows(weights: Any, types: Sequence[int]) -> Any:
    """Only printable pieces are ever sampled. Control rows are zero (so `</s>` never ends
    a reply), byte rows nearly so: a lone byte >= 0x80 is invalid UTF-8, which
    llama-cpp-python's streaming holds back and re-decodes on every later token (a
    quadratic stall over a long reply). Normal rows are scaled up so their logits (std
    ~4 x sqrt(n_embd)) leave the others no chance under any usual sampling."""
    import numpy as np

    kinds = np.asarray(types)
    weights[kinds == _NORMAL] *= 4.0
    weights[kinds == _BYTE] *= 0.01
    weights[(kinds == _CONTROL_T) | (kinds == _UNKNOWN)] = 0.0
    return weights


def _hyperparameters(writer: Any, *, n_layer: int, n_embd: int, n_head: int, n_ff: int,
                     n_ctx: int) -> None:  # fmt: skip
    writer.add_name("baton-tiny-llama")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)  # all F32


def _tokenizer(writer: Any, tokens: list[str], scores: list[float], types: list[int],
               chat_template: str | None) -> None:  # fmt: skip
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_unk_token_id(UNK)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)


def _shapes(n_vocab: int, n_layer: int, n_embd: int, n_ff: int) -> dict[str, tuple[int, ...]]:
    """numpy shapes (GGUF stores the reversed dims llama.cpp names, e.g. {n_embd, n_vocab})."""
    shapes: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (n_vocab, n_embd),
        "output_norm.weight": (n_embd,),
        "output.weight": (n_vocab, n_embd),
    }
    for i in range(n_layer):
        shapes |= {
            f"blk.{i}.attn_norm.weight": (n_embd,),
            f"blk.{i}.attn_q.weight": (n_embd, n_embd),
            f"blk.{i}.attn_k.weight": (n_embd, n_embd),
            f"blk.{i}.attn_v.weight": (n_embd, n_embd),
            f"blk.{i}.attn_output.weight": (n_embd, n_embd),
            f"blk.{i}.ffn_norm.weight": (n_embd,),
            f"blk.{i}.ffn_gate.weight": (n_ff, n_embd),
            f"blk.{i}.ffn_up.weight": (n_ff, n_embd),
            f"blk.{i}.ffn_down.weight": (n_embd, n_ff),
        }
    return shapes
