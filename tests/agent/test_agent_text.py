"""The text layer: tool-call parsing across deltas, stop sequences and UTF-8 in the
token decoder, the context window's fitting and its note."""

from __future__ import annotations

import pytest

from shared.agent import ContextFull, TextDelta, ToolCall
from shared.agent.backend import estimate_tokens
from shared.agent.context import fit
from shared.agent.llama_gen import decode
from shared.agent.prompt import ToolCallParser, format_call
from shared.messages import ChatMessage


def parse(*deltas: str) -> list[TextDelta | ToolCall]:
    parser = ToolCallParser()
    out = [o for d in deltas for o in parser.feed(TextDelta(d))]
    return out + parser.finish()


def text_of(outputs: list[TextDelta | ToolCall]) -> str:
    return "".join(o.text for o in outputs if isinstance(o, TextDelta))


def test_a_tool_call_split_across_deltas() -> None:
    out = parse(
        "Checking. <to", 'ol>{"name": "read_twin", "argu', 'ments": {"device": "p1"}}</tool>'
    )
    assert text_of(out) == "Checking. "
    assert out[-1] == ToolCall("read_twin", {"device": "p1"})


def test_the_stop_sequence_cut_the_closing_marker() -> None:
    out = parse('<tool>{"name": "list_rules", "arguments": {}}')
    assert out == [ToolCall("list_rules", {})]


def test_text_that_only_looks_like_a_marker_is_kept() -> None:
    assert text_of(parse("a <t", "able> b <")) == "a <table> b <"
    assert text_of(parse("<tool>not json</tool>")) == "<tool>not json"


def test_format_call_round_trips() -> None:
    call = ToolCall("actuate", {"device": "p1", "params": {"on": True}})
    assert parse(format_call(call)) == [call]


def run_decode(pieces: list[bytes], *, max_tokens: int = 100, stops: tuple[str, ...] = (),
               end: int = -1) -> list[tuple[str, int]]:  # fmt: skip
    table: dict[int, bytes | None] = dict(enumerate(pieces))
    table[end] = None  # an end-of-generation token
    return list(decode(range(len(pieces)), table.__getitem__, max_tokens, stops))


def test_decode_counts_one_per_token_and_joins_split_utf8() -> None:
    out = run_decode([b"caf", b"\xc3", b"\xa9", b"!"])
    assert "".join(t for t, _ in out) == "café!"
    assert sum(n for _, n in out) == 4


def test_decode_replaces_invalid_utf8_instead_of_stalling() -> None:
    out = run_decode([b"a", b"\x80", b"b"])
    assert "".join(t for t, _ in out) == "a\ufffdb"


def test_decode_stops_at_a_stop_string_split_over_tokens() -> None:
    out = run_decode([b"hello <|us", b"er|> more"], stops=("<|user|>",))
    assert "".join(t for t, _ in out) == "hello "


def test_decode_stops_at_max_tokens_and_end_token() -> None:
    assert len(run_decode([b"x"] * 10, max_tokens=3)) == 3
    assert "".join(t for t, _ in run_decode([b"a", b"b", b"c"], end=1)) == "a"


def history(n: int) -> list[ChatMessage]:
    out = []
    for i in range(n):
        out += [ChatMessage(role="user", content=f"question {i} " + "x" * 40),
                ChatMessage(role="assistant", content=f"answer {i} " + "y" * 40)]  # fmt: skip
    return out


def test_fit_keeps_everything_that_fits() -> None:
    msgs = history(3)
    window = fit("sys", msgs, budget=10_000, turn_start=len(msgs) - 1, count=estimate_tokens)
    assert window.dropped == 0 and window.messages[1:] == msgs
    assert window.messages[0].content == "sys"


def test_fit_drops_oldest_turns_and_names_them() -> None:
    msgs = history(20)
    window = fit("sys", msgs, budget=300, turn_start=len(msgs) - 1, count=estimate_tokens)
    assert window.dropped > 0 and window.tokens <= 300
    assert window.messages[1:] == msgs[window.dropped :]
    note = window.messages[0].content
    assert f"{window.dropped} messages omitted" in note
    assert "and " in note and '"question ' in note  # the latest dropped questions, quoted


def test_fit_never_starts_with_an_orphan_tool_result() -> None:
    msgs = history(5)
    msgs.insert(6, ChatMessage(role="tool", content="z" * 40, name="read_twin"))
    for budget in range(120, 400, 7):
        window = fit("sys", msgs, budget=budget, turn_start=len(msgs) - 1, count=estimate_tokens)
        assert window.messages[1].role != "tool"


def test_fit_refuses_a_turn_that_cannot_fit() -> None:
    msgs = [ChatMessage(role="user", content="q" * 4000)]
    with pytest.raises(ContextFull, match="tokens of a 100-token budget"):
        fit("sys", msgs, budget=100, turn_start=0, count=estimate_tokens)
