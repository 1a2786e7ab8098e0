"""`LlamaBackend`: llama-cpp-python over a GGUF file, streamed into the event loop.

One dedicated worker thread owns the `Llama` object (load, generate, close): a llama.cpp
context is not reentrant, and the loop must never wait on a token. The worker hands
tokens over in small batches (`HANDOVER_TOKENS` or `HANDOVER_S`, whichever first): one
`call_soon_threadsafe` per token would cost the loop a wake-up each, which on a tiny or
fast model is most of the time per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shared.agent.backend import Output, TextDelta, ToolSpec
from shared.agent.config import AgentConfig
from shared.agent.errors import BackendError
from shared.agent.prompt import STOP, ToolCallParser, render_raw
from shared.messages import ChatMessage

HANDOVER_TOKENS = 8
HANDOVER_S = 0.02
_END = object()


class LlamaBackend:
    """Open with `await LlamaBackend.open(config)`; `aclose()` is safe twice."""

    def __init__(self, llm: Any, executor: ThreadPoolExecutor, config: AgentConfig) -> None:
        self._llm = llm
        self._executor = executor
        self._config = config
        self._lock = asyncio.Lock()
        self._raw = _use_raw(llm, config)
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
    def llama(self) -> Any:
        """The `llama_cpp.Llama` itself (benchmarks compare against it)."""
        return self._llm

    def count_tokens(self, text: str) -> int:
        # Tokenizing reads the vocabulary only, not the context the worker is using.
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], max_tokens: int
    ) -> AsyncIterator[Output]:
        if self._closed:
            raise BackendError("the model is closed")
        parser = ToolCallParser()
        async with self._lock:
            async for delta in self._generate(messages, max_tokens):
                for out in parser.feed(delta):
                    yield out
            for out in parser.finish():
                yield out

    async def _generate(
        self, messages: Sequence[ChatMessage], max_tokens: int
    ) -> AsyncIterator[TextDelta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()
        pieces = self._pieces(messages, max_tokens)
        job = loop.run_in_executor(self._executor, _pump, pieces, queue, loop, stop)
        try:
            while (batch := await queue.get()) is not _END:
                if isinstance(batch, BaseException):
                    raise BackendError(f"llama.cpp failed: {batch}") from batch
                yield batch
        finally:
            stop.set()  # the consumer left early (cancelled, or a tool call): stop generating
            await asyncio.shield(job)

    def _pieces(
        self, messages: Sequence[ChatMessage], max_tokens: int
    ) -> Generator[str, None, None]:
        """The generated text pieces. A generator: its body (prompt templating included)
        first runs in the worker thread, on the `_pump`'s first `next()`."""
        temperature = self._config.temperature
        if self._raw:
            chunks = self._llm.create_completion(
                render_raw(messages), max_tokens=max_tokens, temperature=temperature,
                stop=list(STOP), stream=True,
            )  # fmt: skip
            key = "text"
        else:
            chunks = self._llm.create_chat_completion(
                [{"role": _chat_role(m), "content": m.content} for m in messages],
                max_tokens=max_tokens, temperature=temperature, stop=list(STOP), stream=True,
            )  # fmt: skip
            key = "delta"
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                yield choice["text"] if key == "text" else choice["delta"].get("content") or ""
        finally:
            chunks.close()  # a stop mid-reply ends llama-cpp-python's generator now

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


def _use_raw(llm: Any, config: AgentConfig) -> bool:
    if config.prompt_format != "auto":
        return config.prompt_format == "raw"
    return "tokenizer.chat_template" not in (getattr(llm, "metadata", None) or {})


def _chat_role(message: ChatMessage) -> str:
    # Chat templates know system/user/assistant; a tool result reads as a user turn.
    return "user" if message.role == "tool" else message.role


def _pump(
    pieces: Generator[str, None, None],
    queue: asyncio.Queue[Any],
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
) -> None:
    """Worker thread: run generation, hand batches of text to the loop."""
    text: list[str] = []
    deadline = time.monotonic() + HANDOVER_S
    try:
        for piece in pieces:
            text.append(piece)
            if len(text) >= HANDOVER_TOKENS or time.monotonic() >= deadline:
                loop.call_soon_threadsafe(queue.put_nowait, TextDelta("".join(text), len(text)))
                text, deadline = [], time.monotonic() + HANDOVER_S
            if stop.is_set():
                break
        if text:
            loop.call_soon_threadsafe(queue.put_nowait, TextDelta("".join(text), len(text)))
    except Exception as exc:  # surfaced on the loop as BackendError
        loop.call_soon_threadsafe(queue.put_nowait, exc)
    finally:
        with contextlib.suppress(Exception):  # the generator's own cleanup must not hide _END
            pieces.close()
        loop.call_soon_threadsafe(queue.put_nowait, _END)


def _close(llm: Any) -> None:
    close = getattr(llm, "close", None)  # llama-cpp-python >= 0.2.58
    if close is not None:
        close()
