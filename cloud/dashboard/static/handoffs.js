// Handoff timeline: one row per handoff, its steps as a bar whose segments are the
// time each step took; click a row for the steps and their latencies, and its trace.
import { el, ms, clock } from "./util.js";

const STEP_COLORS = ["#2f80ed", "#f2994a", "#27ae60", "#8e6cc9", "#eb5757"];

export class Handoffs {
  constructor(root, showTrace) { this.root = root; this.showTrace = showTrace; this.rows = new Map(); this.open = null; }

  load(handoffs) { for (const h of handoffs) this.on("handoff", h); }

  on(type, h) {
    this.root.querySelector(".empty")?.remove();
    const old = this.rows.get(h.id);
    const row = this.render(h);
    if (old) old.replaceWith(row); else this.root.prepend(row);
    this.rows.set(h.id, row);
  }

  render(h) {
    const suggested = h.state === "requested";
    const total = h.steps.reduce((sum, s) => sum + s.ms, 0) || 1;
    const bar = el("div", { class: "bar" }, h.steps.slice(1).map((s, i) =>
      el("span", { title: `${s.name}: ${ms(s.ms)}`,
        style: `width:${(100 * s.ms) / total}%;background:${STEP_COLORS[i % STEP_COLORS.length]}` })));
    const latency = h.latency_ms ?? h.steps.at(-1)?.at_ms - h.steps[0]?.at_ms;
    const what = suggested ? "suggested by the agent; nothing moved" : ms(latency);
    const row = el("div", { class: "row", dataset: { handoff: h.id, state: h.state, steps: String(h.steps.length) } },
      el("div", {}, el("b", {}, h.session), ` → ${h.to} `, el("span", { class: `status ${h.state}` }, h.state),
        el("span", { class: "muted" }, ` ${what} · ${h.reason || "request"}`)),
      suggested ? null : bar);
    const details = el("ul", { class: "steps", hidden: this.open !== h.id ? "" : null },
      h.steps.map((s) => el("li", {}, el("span", {}, s.name), el("span", { class: "muted" }, `${ms(s.ms)} · ${clock(s.at_ms)}`))),
      el("li", {}, el("a", { href: "#trace-view", onclick: () => this.showTrace(h.trace_id) }, "show its trace")));
    row.append(details);
    row.addEventListener("click", (event) => {
      if (event.target.tagName === "A") return;
      this.open = details.hidden ? h.id : null;
      details.hidden = !details.hidden;
    });
    return row;
  }
}
