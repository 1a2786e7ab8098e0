"""`LlamaBackend`: llama-cpp-python over a GGUF file, streamed into the event loop.

One dedicated worker thread owns the `Llama` object (load, generate, close): a llama.cpp
context is not reentrant, and the loop must never wait on a token. The worker hands text
over in batches: the first once `chunk_chars` characters wait (the session's `Framer`
then emits the reply's first `content_chunk`), later ones every `HANDOVER_S`, the last
with the end of the reply. A slow model's tokens, further apart than `HANDOVER_S`, still
go one by one. Each handover wakes the loop, whose Python then wants the GIL the worker
needs between two llama.cpp calls, and the two threads trade it until the worker is in
llama.cpp again: handing over every 8 tokens cost a fast model a tenth of its tokens/s
(docs/benchmarks.md, llm). By time, the loop wakes at most 50 times a second whatever
the model's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import threading
import time
from collections.abc import AsyncGenerator, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import Any

from shared.agent.backend import Output, TextDelta, ToolSpec
from shared.agent.config import AgentConfig
from shared.agent.errors import BackendError
from shared.agent.llama_gen import Piece, Vocab, build_prompt, generate
from shared.agent.prompt import ToolCallParser
from shared.messages import ChatMessage

# A reader does not notice 20 ms, and it is below the framer's `chunk_ms` (50 ms by
# default), so text still reaches the framer in time for its deadline.
HANDOVER_S = 0.02
# Token counts are cached for the context budget: the system prompt and the history are
# counted again every turn.
COUNT_CACHE = 512
_END = object()


class LlamaBackend:
    """Open with `await LlamaBackend.open(config)`; `aclose()` is safe twice."""

    def __init__(self, llm: Any, executor: ThreadPoolExecutor, config: AgentConfig) -> None:
        self._llm = llm
        self._executor = executor
        self._config = config
        self._lock = asyncio.Lock()
        self._template = _chat_template(llm, config)
        self._vocab = Vocab(llm)
        self._count = functools.lru_cache(maxsize=COUNT_CACHE)(self._tokens_in)
        self._closed = False

    @classmethod
    async def open(cls, config: AgentConfig) -> LlamaBackend:
        if config.model_path is None:
            raise BackendError("agent.model_path is not set")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        loop = asyncio.get_running_loop()
        try:
            llm = await loop.run_in_executor(executor, _load, config)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(llm, executor, config)

    @property
    def name(self) -> str:
        path = self._config.model_path
        return path.name if path is not None else "llama"

    @property
    def n_ctx(self) -> int:
        return int(self._llm.n_ctx())

    @property
    def notice(self) -> str | None:
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def llama(self) -> Any:
        """The `llama_cpp.Llama` itself (benchmarks compare against it)."""
        return self._llm

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def _tokens_in(self, text: str) -> int:
        # Tokenizing reads the vocabulary only, not the context the worker is using.
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], max_tokens: int
    ) -> AsyncGenerator[Output, None]:
        if self._closed:
            raise BackendError("the model is closed")
        parser = ToolCallParser()
        async with self._lock, aclosing(self._generate(messages, max_tokens)) as deltas:
            async for delta in deltas:
                for out in parser.feed(delta):
                    yield out
            for out in parser.finish():
                yield out

    async def _generate(
        self, messages: Sequence[ChatMessage], max_tokens: int
    ) -> AsyncGenerator[TextDelta, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        pieces = self._pieces(messages, max_tokens)
        chars = self._config.chunk_chars
        try:
            # Not run_in_executor: its future would wake the loop once more, after _END.
            self._executor.submit(_pump, pieces, chars, queue, loop, stop)
        except RuntimeError as exc:  # the executor is shut down
            raise BackendError("the model is closed") from exc
        ended = False
        try:
            while (batch := await queue.get()) is not _END:
                if isinstance(batch, BackendError):
                    raise batch
                if isinstance(batch, BaseException):
                    raise BackendError(f"llama.cpp failed: {batch!r}") from batch
                yield batch
            ended = True
        finally:
            if not ended:  # the consumer left early (cancelled, a tool call), or an error
                stop.set()
                # _pump's last act: the model is free for the next reply after it.
                while await queue.get() is not _END:
                    pass

    def _pieces(
        self, messages: Sequence[ChatMessage], max_tokens: int
    ) -> Generator[Piece, None, None]:
        """A generator: its body (templating, tokenizing, generation) first runs in the
        worker thread, on `_pump`'s first `next()`."""
        prompt = build_prompt(self._llm, messages, self._template)
        yield from generate(
            self._llm, self._vocab, prompt, max_tokens=max_tokens,
            temperature=self._config.temperature,
        )  # fmt: skip

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:  # let a running generation finish its cleanup first
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, _close, self._llm)
        self._executor.shutdown(wait=True)


def _load(config: AgentConfig) -> Any:
    try:
        import llama_cpp  # heavy and optional: only a gateway with a model pays for it
    except ImportError as exc:
        raise BackendError("llama-cpp-python is not installed (pip install 'baton[llm]')") from exc
    path = Path(config.model_path or "")
    if not path.is_file():
        raise BackendError(f"model file {path} not found")
    try:
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=config.n_ctx, n_threads=config.n_threads, verbose=False
        )
    except ValueError as exc:  # llama-cpp-python's "Failed to load model from file"
        raise BackendError(f"cannot load {path}: {exc}") from exc


def _chat_template(llm: Any, config: AgentConfig) -> str | None:
    """The GGUF's chat template, unless the config asks for baton's raw prompt format."""
    template = (getattr(llm, "metadata", None) or {}).get("tokenizer.chat_template")
    if config.prompt_format == "raw" or (config.prompt_format == "chat" and not template):
        return None
    return str(template) if template else None


def _pump(
    pieces: Generator[Piece, None, None],
    chars: int,
    queue: asyncio.Queue[Any],
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
) -> None:
    """Worker thread: run generation, hand batches of text to the loop."""
    text: list[str] = []
    size = tokens = 0
    owed: float = chars  # until the framer has its first frame's worth, hand it over at once
    deadline = time.monotonic() + HANDOVER_S
    last: list[Any] = []  # the final batch goes with _END: one wake-up fewer
    try:
        for piece, count in pieces:
            text.append(piece)
            size += len(piece)
            tokens += count
            if size >= owed or time.monotonic() >= deadline:
                loop.call_soon_threadsafe(queue.put_nowait, TextDelta("".join(text), tokens))
                owed = owed - size if owed > size else math.inf
                text, size, tokens = [], 0, 0
                deadline = time.monotonic() + HANDOVER_S
            if stop.is_set():
                break
        if text or tokens:
            last.append(TextDelta("".join(text), tokens))
    except Exception as exc:  # surfaced on the loop as BackendError
        last.append(exc)
    finally:
        with contextlib.suppress(Exception):  # the generator's own cleanup must not hide _END
            pieces.close()
        last.append(_END)
        loop.call_soon_threadsafe(_put_all, queue, last)


def _put_all(queue: asyncio.Queue[Any], items: list[Any]) -> None:
    for item in items:
        queue.put_nowait(item)


def _close(llm: Any) -> None:
    close = getattr(llm, "close", None)  # llama-cpp-python >= 0.2.58
    if close is not None:
        close()
