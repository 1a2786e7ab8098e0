"""llm: tokens/s of the agent engine vs bare llama-cpp-python, on the same GGUF.

baton: one question to a fresh `AgentSession` over `LlamaBackend` (worker thread, batched
text handover, tool-call parser, framing, events), question in → `agent_complete`.
Bare (the reference): the plainest loop llama-cpp-python offers on the same loaded model
with the same prompt and sampling: tokenize, `Llama.generate`, detokenize each token. A
third arm, `create_completion(stream=True)`, is what most users write; it goes in the
note (its per-token bookkeeping makes it the slower of the two bare ones).

Both sides run on one `Llama` (same threads, n_ctx, n_batch), tokenize the same prompt
(checked: the agent's prompt tokens must be the bare prompt's, or the run fails) and
find it in the KV cache from the round before, so each evaluates one prompt token and
then decodes; the timings are decode plus what each side does around it. The default
model is the tiny random one `shared.agent.tinygguf` writes (its end-of-sequence is
never sampled, so every reply runs to `max_tokens`); `--model` takes any GGUF.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

from shared.bench.context import Context, alternate
from shared.bench.row import TIMES, Goal, Row
from shared.bench.runner import Skip
from shared.bench.stats import Summary

name = "llm"
title = "tokens/s of the local agent vs bare llama-cpp-python on the same GGUF"

GOALS = (Goal("ratio", ">=", 0.95),)
# llama-cpp-python's own sampling defaults (create_completion's), which the agent uses too.
TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05
GATEWAY = "gw1"
QUESTION = "Why did the fan of pump-7 turn on, and is the temperature falling now?"
# One reply of 128 tokens on the tiny model is ~16 ms: a neighbour's burst hits a few of
# them, so take many rounds and read the median.
ROUNDS = 41


def _model(ctx: Context) -> Path:
    if ctx.model is not None:
        return ctx.model
    if importlib.util.find_spec("gguf") is None:
        raise Skip("no --model given and the gguf package (dev extra) is missing to write one")
    from shared.agent.tinygguf import write_tiny_llama

    path = ctx.scratch("model") / "tiny.gguf"
    return write_tiny_llama(
        path, words=("pump", "fan", "temperature"), n_layer=2, n_embd=64, seed=1
    )


def _prompt() -> tuple[str, list[str]]:
    """The raw prompt the session sends for QUESTION (no tools), and the stop sequences."""
    from shared.agent.prompt import STOP, render_raw
    from shared.agent.turn import SYSTEM_PROMPT
    from shared.messages import ChatMessage

    system = SYSTEM_PROMPT.format(gw=GATEWAY, side="edge")
    messages = [
        ChatMessage(role="system", content=system),
        ChatMessage(role="user", content=QUESTION),
    ]
    return render_raw(messages), list(STOP)


async def _agent_turn(backend: Any, config: Any) -> float:
    from shared.agent import AgentSession
    from shared.messages import AgentComplete

    session = AgentSession("bench-llm", gw=GATEWAY, backend=backend, config=config)
    started = time.perf_counter()
    tokens = 0
    async for event in session.ask(QUESTION):
        if isinstance(event, AgentComplete):
            tokens = event.tokens
    return tokens / (time.perf_counter() - started)


def _bare_generate(llm: Any, prompt: str, config: Any) -> float:
    """The plainest use of llama-cpp-python: tokenize, `Llama.generate`, detokenize."""
    started = time.perf_counter()
    tokens = 0
    eos = llm.token_eos()
    prompt_tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    stream = llm.generate(
        prompt_tokens, top_k=TOP_K, top_p=TOP_P, min_p=MIN_P, temp=config.temperature
    )
    try:
        for token in stream:
            if token == eos:
                break
            llm.detokenize([token])
            tokens += 1
            if tokens >= config.max_tokens:
                break
    finally:
        stream.close()
    return tokens / (time.perf_counter() - started)


def _bare_completion(llm: Any, prompt: str, stop: list[str], config: Any) -> float:
    """What most users write: `create_completion(stream=True)`, counting pieces with text."""
    started = time.perf_counter()
    tokens = 0
    chunks = llm.create_completion(
        prompt, max_tokens=config.max_tokens, temperature=config.temperature, stop=stop, stream=True
    )
    for chunk in chunks:
        if chunk["choices"][0]["text"]:
            tokens += 1
    return tokens / (time.perf_counter() - started)


async def run(ctx: Context) -> list[Row]:
    if importlib.util.find_spec("llama_cpp") is None:
        raise Skip("llama-cpp-python is not installed (pip install 'baton[llm]')")
    from shared.agent import AgentConfig, LlamaBackend

    model = _model(ctx)
    config = AgentConfig(
        model_path=model,
        prompt_format="raw",
        max_tokens=ctx.pick(quick=16, full=128),
        n_ctx=2048 if ctx.model is None else 4096,
    )
    backend = await LlamaBackend.open(config)
    try:
        rates = await _alternate(ctx, backend, config)
    finally:
        await backend.aclose()
    baton, bare, completion = (Summary.of(rates[arm]) for arm in ("baton", "bare", "completion"))
    paired = Summary.of([a / b for a, b in zip(rates["baton"], rates["bare"], strict=True)])
    note = (
        f"{config.max_tokens} tokens per reply, question in → reply complete, same prompt "
        f"tokens on both sides; median of the per-round ratios {paired.median:.2f}{TIMES}; "
        f"create_completion(stream=True) on the same model: {completion.median:,.0f} tokens/s"
    )
    return [
        Row(
            f"local agent tokens/s ({model.name})",
            "tokens/s",
            baton.median,
            None,
            reference="bare llama-cpp-python Llama.generate loop",
            ref_median=bare.median,
            goals=GOALS,
            samples=baton.count,
            note=note,
        )
    ]


async def _alternate(ctx: Context, backend: Any, config: Any) -> dict[str, list[float]]:
    prompt, stop = _prompt()
    llm = backend.llama

    async def agent() -> list[float]:
        return [await _agent_turn(backend, config)]

    async def bare() -> list[float]:
        return [_bare_generate(llm, prompt, config)]

    async def completion() -> list[float]:
        return [_bare_completion(llm, prompt, stop, config)]

    arms = {"baton": agent, "bare": bare, "completion": completion}
    rounds = ctx.pick(quick=2, full=ROUNDS)
    ctx.say(f"{rounds} rounds of one reply per side, {config.max_tokens} tokens each")
    await agent()  # warm-up: the first evaluation of the prompt
    _check_same_prompt(llm, prompt)
    for arm in (bare, completion):
        await arm()
    return await alternate(rounds, arms)


def _check_same_prompt(llm: Any, prompt: str) -> None:
    """The agent's reply left its prompt in the context: it must be the bare side's."""
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    if list(llm.input_ids[: len(tokens)]) != tokens:
        raise RuntimeError("the agent's prompt is not the bare side's: the comparison is off")
