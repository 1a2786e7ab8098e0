"""The local agent on real llama.cpp, over a tiny GGUF the test writes itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from shared.agent import (
    AgentConfig,
    AgentSession,
    LlamaBackend,
    MemoryRecorder,
    RuleBackend,
    Tool,
    ToolBox,
    ToolContext,
    open_backend,
)
from shared.agent.prompt import tools_instructions
from shared.agent.tinygguf import write_tiny_llama
from shared.agent.turn import SYSTEM_PROMPT
from shared.messages import AgentComplete, AgentEventBase, AgentStart, ContentChunk

pytest.importorskip("llama_cpp")

MAX_TOKENS = 48


def config(model: Path, **kw: object) -> AgentConfig:
    fields: dict[str, object] = {
        "model_path": model, "n_ctx": 1024, "n_threads": 1, "max_tokens": MAX_TOKENS,
        "chunk_chars": 16,
    }  # fmt: skip
    fields.update(kw)
    return AgentConfig.model_validate(fields)


async def test_the_tiny_gguf_loads_and_streams_chunks(tiny_gguf: Path) -> None:
    backend = await LlamaBackend.open(config(tiny_gguf))
    recorder = MemoryRecorder()
    try:
        assert backend.llama.n_vocab() > 256 and backend.n_ctx == 1024
        assert backend.count_tokens("pump fan") == 2  # `▁pump`, `▁fan`: the SPM vocabulary
        session = AgentSession(
            "s1", gw="gw1", backend=backend, config=config(tiny_gguf), recorder=recorder
        )
        events: list[AgentEventBase] = [e async for e in session.ask("hello pump")]
    finally:
        await backend.aclose()
        await backend.aclose()
    assert backend.closed
    assert isinstance(events[0], AgentStart) and events[0].model == "tiny.gguf"
    chunks = [e for e in events if isinstance(e, ContentChunk)]
    assert len(chunks) >= 2
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    complete = events[-1]
    assert isinstance(complete, AgentComplete)
    assert complete.text == "".join(c.text for c in chunks) and complete.text
    assert 0 < complete.tokens <= MAX_TOKENS
    assert recorder.events == events
    assert session.messages[-1].role == "assistant"


async def test_leaving_a_reply_early_stops_generation(tiny_gguf: Path) -> None:
    long = config(tiny_gguf, max_tokens=900, chunk_chars=1)
    backend = await LlamaBackend.open(long)
    try:
        session = AgentSession("s1", gw="gw1", backend=backend, config=long)
        stream = session.ask("go on")
        async for event in stream:
            if isinstance(event, ContentChunk):
                break
        await stream.aclose()  # the worker thread stops at its next token
        # Tokens in the context: the prompt and a few generated ones, not 900.
        assert backend.llama.n_tokens < 300
        session.config = config(tiny_gguf)
        again = [e async for e in session.ask("again")]  # the model is free again
        assert isinstance(again[-1], AgentComplete)
    finally:
        await backend.aclose()


async def test_the_next_question_finds_instructions_and_tools_in_the_kv_cache(
    tiny_gguf: Path,
) -> None:
    """The state summary changes between turns; it comes after the tools, so llama.cpp
    evaluates the instructions and the tool list once, not on every question."""
    summaries = iter(["Devices: pump1 (seen 1 s ago).", "Devices: pump1 (seen 9 s ago)."])

    async def summary() -> str:
        return next(summaries)

    async def read_twin(args: object, ctx: ToolContext) -> None:
        return None

    params: dict[str, JsonValue] = {"type": "object", "properties": {"device": {}}}
    tools = ToolBox([Tool("read_twin", "a device's twin", params, read_twin)], summary=summary)
    backend = await LlamaBackend.open(config(tiny_gguf, max_tokens=8))
    llm = backend.llama
    generate = llm.generate
    reused: list[tuple[int, int]] = []  # (prompt tokens, of those already in the cache)

    def spy(tokens: list[int], **kw: Any) -> Any:
        reused.append((len(tokens), common_prefix(list(llm.input_ids[: llm.n_tokens]), tokens)))
        return generate(tokens, **kw)

    llm.generate = spy
    try:
        session = AgentSession("s1", gw="gw1", backend=backend, tools=tools)
        for question in ("how is pump1?", "and now?"):
            assert isinstance([e async for e in session.ask(question)][-1], AgentComplete)
        static = f"<|system|>\n{SYSTEM_PROMPT.format(gw='gw1', side='edge')}\n"
        static += tools_instructions(tools.specs())
        static_tokens = len(llm.tokenize(static.encode(), add_bos=True, special=True))
    finally:
        await backend.aclose()
    (first, first_reused), (second, second_reused) = reused
    assert first_reused == 0 and second > first
    assert second_reused >= static_tokens


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


async def test_a_chat_template_model_uses_create_chat_completion(tmp_path: Path) -> None:
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    model = write_tiny_llama(tmp_path / "chat.gguf", chat_template=template)
    backend = await LlamaBackend.open(config(model, prompt_format="auto"))
    try:
        session = AgentSession("s1", gw="gw1", backend=backend, config=config(model))
        events = [e async for e in session.ask("hi")]
    finally:
        await backend.aclose()
    assert isinstance(events[-1], AgentComplete) and events[-1].tokens > 0


async def test_open_backend_falls_back_to_rules_and_says_why(tmp_path: Path) -> None:
    missing = await open_backend(AgentConfig(model_path=tmp_path / "nope.gguf"))
    assert isinstance(missing, RuleBackend)
    assert "does not exist" in (missing.notice or "")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\0" * 64)
    broken = await open_backend(AgentConfig(model_path=garbage))
    assert isinstance(broken, RuleBackend)
    assert "could not be loaded" in (broken.notice or "")
