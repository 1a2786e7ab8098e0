"""Tokens/s of `LlamaBackend` against bare llama-cpp-python on the same GGUF and prompt.

    python -m shared.agent.bench [--model PATH] [--tokens 256] [--runs 7] [--threads 1]

Without `--model` it writes the tiny test GGUF (and `--size small`: 4 layers, 256 wide,
where compute outweighs per-token overhead). One `Llama` serves every run; the runs are
interleaved (bare, ours, bare, ...) and the medians compared, so background load hits
both sides alike. "bare" is `create_completion(prompt, max_tokens=N)`; "bare stream" the
same with `stream=True`, consumed in a plain loop; "backend" is `LlamaBackend.stream()`
consumed on an event loop (worker thread, batched handover), the local agent's real path.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.agent.config import AgentConfig
from shared.agent.llama import LlamaBackend
from shared.agent.prompt import render_raw
from shared.agent.tinygguf import write_tiny_llama
from shared.messages import ChatMessage

# (n_layer, n_embd, n_ff, n_head)
SIZES = {"tiny": (1, 32, 64, 2), "small": (4, 256, 512, 4)}
MESSAGES = [
    ChatMessage(role="system", content="You are baton's agent for gateway gw1."),
    ChatMessage(role="user", content="How is pump1 doing?"),
]


def bare(llm: Any, prompt: str, n: int, temperature: float) -> int:
    reply = llm.create_completion(prompt, max_tokens=n, temperature=temperature)
    return int(reply["usage"]["completion_tokens"])


def bare_stream(llm: Any, prompt: str, n: int, temperature: float) -> int:
    chunks = llm.create_completion(prompt, max_tokens=n, temperature=temperature, stream=True)
    return sum(1 for c in chunks if c["choices"][0]["text"])


async def backend_run(backend: LlamaBackend, n: int) -> int:
    tokens = 0
    async for out in backend.stream(MESSAGES, [], n):
        tokens += getattr(out, "tokens", 0)
    return tokens


def timed(run: Callable[[], int]) -> float:
    start = time.perf_counter()
    tokens = run()
    return tokens / (time.perf_counter() - start)


async def measure(model: Path, *, tokens: int, runs: int, threads: int) -> dict[str, float]:
    config = AgentConfig(model_path=model, n_ctx=2048, n_threads=threads, temperature=0.8)
    backend = await LlamaBackend.open(config)
    llm, prompt = backend.llama, render_raw(MESSAGES)
    rates: dict[str, list[float]] = {"bare": [], "bare_stream": [], "backend": []}
    loop = asyncio.get_running_loop()
    try:
        await backend_run(backend, 8)  # warm-up: prompt in the KV cache for every side
        for _ in range(runs):
            rates["bare"].append(timed(lambda: bare(llm, prompt, tokens, 0.8)))
            rates["bare_stream"].append(timed(lambda: bare_stream(llm, prompt, tokens, 0.8)))
            start = loop.time()
            produced = await backend_run(backend, tokens)
            rates["backend"].append(produced / (loop.time() - start))
    finally:
        await backend.aclose()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    medians["ratio_vs_bare"] = medians["backend"] / medians["bare"]
    medians["ratio_vs_bare_stream"] = medians["backend"] / medians["bare_stream"]
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        n_layer, n_embd, n_ff, n_head = SIZES[args.size]
        model = args.model or write_tiny_llama(
            Path(tmp) / "bench.gguf", n_layer=n_layer, n_embd=n_embd, n_ff=n_ff, n_head=n_head
        )
        result = asyncio.run(
            measure(model, tokens=args.tokens, runs=args.runs, threads=args.threads)
        )
    for name, value in result.items():
        print(f"{name:>22}: {value:10.2f}")


if __name__ == "__main__":
    main()
