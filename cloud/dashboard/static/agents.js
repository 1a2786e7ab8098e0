// Live agent streams: one column per session, side by side, text appended as each
// `agent` event arrives (chunks of a running answer, tool calls, completion); each
// turn under a rule, the latest at the bottom, the oldest dropped past MAX_TEXT.
import { el } from "./util.js";

const MAX_TEXT = 6000;

class AgentCard {
  constructor(session) {
    this.owner = el("span", { class: "badge" });
    this.title = el("b", {}, session);
    this.meta = el("span", { class: "muted" });
    this.text = el("pre");
    this.node = el("div", { class: "agent", dataset: { session } },
      el("header", {}, this.title, this.owner, this.meta), this.text);
  }

  turn() {
    if (this.text.textContent) this.text.textContent += "\n────────\n";
    const text = this.text.textContent;
    if (text.length > MAX_TEXT) this.text.textContent = text.slice(-MAX_TEXT);
  }

  update(s) {
    this.owner.className = `badge owner-${s.owner}`;
    this.owner.textContent = s.owner;
    this.meta.textContent = `${s.agent || "agent"} · epoch ${s.epoch}`;
    this.title.className = `state-${s.state}`;
    this.node.dataset.state = s.state;
  }
}

export class Agents {
  constructor(root) { this.root = root; this.cards = new Map(); this.state = new Map(); }

  load(streams) {
    for (const s of streams) {
      const card = this.card(s.session);
      card.text.textContent = s.text;
      card.text.scrollTop = card.text.scrollHeight;  // the latest turn, as when live
      this.set(s.session, s);
    }
  }

  on(type, e) {
    const card = this.card(e.session);
    const s = { ...(this.state.get(e.session) ?? { state: "running" }), agent: e.agent, owner: e.owner, epoch: e.epoch };
    if (e.type === "agent_start") { card.turn(); s.state = "running"; }
    else if (e.type === "content_chunk") { card.text.textContent += e.text; s.state = "running"; }
    else if (e.type === "tool_execution") card.text.textContent += ` ${e.text} `;
    else if (e.type === "agent_complete") s.state = "done";
    else if (e.type === "error") { card.text.textContent += `\n${e.text}`; s.state = "error"; }
    else if (e.type.startsWith("handoff_")) card.text.textContent += `\n— ${e.type.replace("handoff_", "handoff ")} (${e.owner}) —\n`;
    card.text.scrollTop = card.text.scrollHeight;
    this.set(e.session, s);
  }

  set(session, s) { this.state.set(session, s); this.cards.get(session).update(s); }

  card(session) {
    let card = this.cards.get(session);
    if (!card) {
      card = new AgentCard(session);
      this.cards.set(session, card);
      this.root.querySelector(".empty")?.remove();
      this.root.prepend(card.node);
    }
    return card;
  }
}
