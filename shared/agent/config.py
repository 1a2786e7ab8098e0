"""`[agent]`: the local agent's settings (the edge's, and the cloud's session agent)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from shared.config import Section


class AgentConfig(Section):
    model_path: Path | None = Field(
        default=None,
        description="GGUF model file; unset = answer from rules and data, without a model",
    )
    n_ctx: int = Field(default=4096, ge=256, description="context window, tokens")
    n_threads: int | None = Field(default=None, ge=1, description="none = llama.cpp's choice")
    max_tokens: int = Field(default=512, ge=1, description="longest reply, tokens")
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    prompt_format: Literal["auto", "chat", "raw"] = Field(
        default="auto",
        description="chat: the GGUF's chat template; raw: baton's plain markers; "
        "auto: chat when the file has a template",
    )
    chunk_chars: int = Field(
        default=64,
        ge=1,
        description="content_chunk framing: emit once this many characters are waiting",
    )
    chunk_ms: int = Field(
        default=50, ge=0, description="... or once the oldest waiting token is this old"
    )
    max_tool_rounds: int = Field(default=4, ge=1, description="tool calls per question")
