"""`baton chat` in a terminal (CliRunner): the notice, streamed answers, the status line,
commands, a stored session continued, and a bad config."""

from __future__ import annotations

import io
from pathlib import Path

import nats
import pytest
from click.testing import CliRunner

from edge.agent.cli import chat, run_chat
from edge.config import EdgeConfig
from edge.ingest.nats_source import command_subject
from shared.agent import NO_MODEL, AgentConfig
from shared.codec import decode
from shared.messages import Command
from shared.natsrun import LocalTopology
from shared.streams import ensure_hub
from shared.subjects import SESSIONS_STREAM


def write_config(tmp_path: Path, edge_config: EdgeConfig, agent: str = "") -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(
        f'gateway = "gw1"\nstate_dir = "{edge_config.state_dir}"\n'
        '[[rules]]\nname = "overheat"\nmetric = "temperature"\nabove = 70.0\n'
        'action = "fan"\nparams = { on = true }\n' + agent
    )
    return path


def run(config: Path, lines: str, *args: str) -> str:
    result = CliRunner().invoke(
        chat, ["--config", str(config), "--offline", *args], input=lines, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_chat_without_a_model_says_so_and_answers(tmp_path: Path, seeded: EdgeConfig) -> None:
    output = run(write_config(tmp_path, seeded),
                 "which rules are there?\n/handoff cloud\n/quit\n")  # fmt: skip
    assert NO_MODEL in output
    assert "· owner edge · epoch 0 · model rules · hub offline]" in output
    assert "  · list_rules" in output and "  ✓ list_rules" in output
    assert "agent> Reflex rules in force:" in output
    assert "overheat: temperature > 70 → fan" in output
    assert "Handoff is not available here" in output


def test_chat_continues_a_stored_session(tmp_path: Path, seeded: EdgeConfig) -> None:
    config = write_config(tmp_path, seeded)
    run(config, "show the twin of pump1\n", "--session", "s-kept")
    output = run(config, "and its latest reading?\n", "--session", "s-kept")
    assert "pump1, latest minute" in output  # the focus device came back with the session


def test_chat_with_the_tiny_model(tmp_path: Path, seeded: EdgeConfig, tiny_gguf: Path) -> None:
    pytest.importorskip("llama_cpp")
    agent = f'[agent]\nn_ctx = 2048\nn_threads = 1\nmax_tokens = 24\nmodel_path = "{tiny_gguf}"\n'
    output = run(write_config(tmp_path, seeded, agent), "hello\n")
    assert NO_MODEL not in output
    assert "model tiny.gguf" in output and "agent> " in output


def test_a_bad_agent_table_exits_2(tmp_path: Path, edge_config: EdgeConfig) -> None:
    config = write_config(tmp_path, edge_config, "[agent]\nn_ctx = 3\n")
    result = CliRunner().invoke(chat, ["--config", str(config), "--offline"], input="")
    assert result.exit_code == 2
    assert "agent.n_ctx" in result.output


async def test_chat_on_the_leaf_actuates_and_audits(
    seeded: EdgeConfig, topology: LocalTopology, capsys: pytest.CaptureFixture[str]
) -> None:
    edge = seeded.model_copy(update={"nats_url": topology.leaf.client_url})
    hub = await nats.connect(topology.hub.client_url)
    device = await nats.connect(topology.leaf.client_url)
    try:
        await ensure_hub(hub.jetstream())
        commands = await device.subscribe(command_subject("pump1"))
        await device.flush()
        lines = io.StringIO("turn on the fan on pump1\n/quit\n")
        await run_chat(edge, AgentConfig(), session_id="s-leaf", stdin=lines)
        cmd = decode((await commands.next_msg(timeout=5)).data, Command)
        assert (cmd.action, cmd.session, cmd.epoch) == ("fan", "s-leaf", 0)
        output = capsys.readouterr().out
        assert "hub linked]" in output and "Sent fan" in output
        info = await hub.jetstream().stream_info(
            SESSIONS_STREAM, subjects_filter="session.s-leaf.ev"
        )
        assert info.state.messages >= 5  # start, execution, result, chunk(s), complete
    finally:
        await device.close()
        await hub.close()
