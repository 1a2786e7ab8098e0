"""Generation for `LlamaBackend`: messages → prompt tokens → sampled tokens → text pieces.

Our own loop over `Llama.generate()` rather than `create_completion(stream=True)`:
llama-cpp-python's streaming re-detokenizes the whole reply on every token, and holds a
token that is not valid UTF-8 (a lone byte from a small or odd model) while re-decoding
every later one, which stalls a long reply quadratically. Here each token is detokenized
once, through an incremental UTF-8 decoder (`errors="replace"`), from bytes looked up
once per token id (`Vocab`), and stop sequences are checked only on text that could
hold or start one. Sampling uses `create_completion`'s defaults, so the same model
answers alike either way.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.agent.errors import BackendError
from shared.agent.prompt import STOP, render_raw
from shared.messages import ChatMessage

# create_completion's sampling defaults (llama-cpp-python 0.3).
TOP_K = 40
TOP_P = 0.95
MIN_P = 0.05

Piece = tuple[str, int]  # (text, tokens it stands for)


@dataclass(frozen=True, slots=True)
class Prompt:
    tokens: list[int]
    stops: tuple[str, ...]


def build_prompt(llm: Any, messages: Sequence[ChatMessage], template: str | None) -> Prompt:
    """Render with the GGUF's chat template (as `create_chat_completion` would), or with
    baton's raw markers; tokenize with special tokens parsed."""
    stops: tuple[str, ...] = STOP
    if template is None:
        text, add_bos = render_raw(messages), True
    else:
        text, extra = _render_template(llm, messages, template)
        stops, add_bos = (*STOP, *extra), False  # the template writes its own BOS
    return Prompt(llm.tokenize(text.encode(), add_bos=add_bos, special=True), stops)


def _render_template(
    llm: Any, messages: Sequence[ChatMessage], template: str
) -> tuple[str, tuple[str, ...]]:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text_of(token: int) -> str:
        return llm.detokenize([token], special=True).decode(errors="replace") if token >= 0 else ""

    formatter: Any = Jinja2ChatFormatter(
        template, text_of(llm.token_eos()), text_of(llm.token_bos())
    )
    # Chat templates know system/user/assistant; a tool result reads as a user turn.
    rendered = formatter(messages=[
        {"role": "user" if m.role == "tool" else m.role, "content": m.content} for m in messages
    ])  # fmt: skip
    stop = rendered.stop
    extra = (stop,) if isinstance(stop, str) else tuple(stop or ())
    return rendered.prompt, tuple(s for s in extra if s)


def generate(
    llm: Any, vocab: Vocab, prompt: Prompt, *, max_tokens: int, temperature: float
) -> Generator[Piece, None, None]:
    """Text pieces, one per sampled token (plus a final flush of held-back text)."""
    room = llm.n_ctx() - len(prompt.tokens)
    if room <= 0:
        raise BackendError(f"the prompt ({len(prompt.tokens)} tokens) fills the context")
    tokens = llm.generate(
        prompt.tokens, top_k=TOP_K, top_p=TOP_P, min_p=MIN_P, temp=temperature
    )  # fmt: skip
    try:
        yield from decode(tokens, vocab.piece, min(max_tokens, room), prompt.stops)
    finally:
        tokens.close()


class Vocab:
    """What each token of one model is: its bytes, or None for an end of generation.

    Asked once per token id and kept: `Llama.detokenize([t])` and `llama_vocab_is_eog`
    cost a few µs of ctypes calls and buffer copies each, which on a small or fast model
    is a sizeable part of a token's time, while a reply reuses few distinct tokens. Used
    from the worker thread only.
    """

    __slots__ = ("_detokenize", "_is_end", "_pieces")

    def __init__(self, llm: Any) -> None:
        self._detokenize = llm.detokenize
        self._is_end = _is_end(llm)
        self._pieces: dict[int, bytes | None] = {}

    def piece(self, token: int) -> bytes | None:
        try:
            return self._pieces[token]
        except KeyError:
            data = None if self._is_end(token) else self._detokenize([token])
            self._pieces[token] = data
            return data


def decode(
    tokens: Iterable[int],
    piece: Callable[[int], bytes | None],
    max_tokens: int,
    stops: Sequence[str],
) -> Generator[Piece, None, None]:
    """Detokenize incrementally; stop at an end token (`piece` gives None), a stop string
    or `max_tokens`."""
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    # A stop can only begin in text holding one of its first characters: most pieces hold
    # none, and skip the scans below.
    starts = _first_chars(stops)
    held = ""
    for count, token in enumerate(tokens, 1):
        data = piece(token)
        if data is None:
            break
        text = held + utf8(data)
        if held or starts.search(text):
            cut = _first_stop(text, stops)
            if cut is not None:
                yield text[:cut], 1
                return
            keep = _stop_prefix(text, stops)
            held = text[len(text) - keep :] if keep else ""
            text = text[: len(text) - keep]
        yield text, 1
        if count >= max_tokens:
            break
    rest = held + utf8(b"", True)
    if rest:
        yield rest, 0


def _first_chars(stops: Sequence[str]) -> re.Pattern[str]:
    chars = "".join(sorted({stop[0] for stop in stops if stop}))
    return re.compile(f"[{re.escape(chars)}]" if chars else "(?!)")  # (?!) never matches


def _is_end(llm: Any) -> Callable[[int], bool]:
    import llama_cpp

    vocab = getattr(getattr(llm, "_model", None), "vocab", None)
    if vocab is not None and hasattr(llama_cpp, "llama_vocab_is_eog"):
        # End of generation covers end-of-turn tokens too (Llama 3's <|eot_id|>).
        return lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))
    eos = llm.token_eos()
    return lambda token: token == eos


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _stop_prefix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of `text` that could begin a stop sequence."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:size]):
                best = size
                break
    return best
