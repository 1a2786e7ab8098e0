// Trace view: pick a reading, a command, a plan step or a handoff; see each hop of
// its trace id across sensor, edge, hub and cloud, with the time spent at each.
import { el, getJSON, ms, clock } from "./util.js";

const KINDS = { reading: "readings", command: "commands", plan_step: "plan steps", handoff: "handoffs" };
const WHERE = ["sensor", "edge", "hub", "cloud"];
// A span's `where` is where its hop ends; the strip names the hop.
const HOP = { edge: "sensor → edge", hub: "edge → hub", cloud: "hub → cloud", sensor: "edge → device" };

export class Traces {
  constructor(tabs, list, view) {
    this.list = list; this.view = view; this.kind = "reading"; this.picks = {}; this.chosen = null;
    this.buttons = Object.entries(KINDS).map(([kind, label]) => {
      const button = el("button", { "aria-pressed": String(kind === this.kind), dataset: { kind },
        onclick: () => { this.kind = kind; this.buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.kind === kind))); this.drawList(); } }, label);
      tabs.append(button);
      return button;
    });
  }

  load(picks) { this.picks = picks || {}; this.drawList(); }

  on(type, picks) { this.picks = picks; this.drawList(); }

  drawList() {
    const items = this.picks[this.kind] || [];
    this.list.replaceChildren(...(items.length ? items.map((p) =>
      el("li", { class: p.trace_id === this.chosen ? "chosen" : null, dataset: { trace: p.trace_id },
        onclick: () => this.show(p.trace_id) }, `${clock(p.at_ms)}  ${p.label}`))
      : [el("li", { class: "empty" }, `no ${KINDS[this.kind]} yet`)]));
  }

  async show(traceId) {
    this.chosen = traceId;
    this.drawList();
    let trace;
    try { trace = await getJSON(`/api/traces/${traceId}`); }
    catch { this.view.replaceChildren(el("p", { class: "empty" }, "That trace is no longer kept.")); return; }
    const spans = trace.spans;
    const t0 = Math.min(...spans.map((s) => s.start_ms)), t1 = Math.max(...spans.map((s) => s.end_ms));
    const total = Math.max(t1 - t0, 0.001);
    this.view.replaceChildren(this.hops(spans), el("table", { class: "waterfall", dataset: { trace: traceId } },
      spans.map((s) => el("tr", {},
        el("td", {}, s.name), el("td", {}, el("span", { class: `badge where-${s.where}`, style: "color:#fff" }, s.where)),
        el("td", { class: "track" }, el("span", { class: `span where-${s.where}`,
          style: `left:${(100 * (s.start_ms - t0)) / total}%;width:${(100 * s.duration_ms) / total}%` })),
        el("td", {}, ms(s.duration_ms))))),
      el("p", { class: "muted" }, `trace ${traceId} · ${spans.length} spans · ${ms(total)} end to end`));
  }

  // The path: how long the trace spent reaching each place (spans ending there).
  hops(spans) {
    const at = Object.fromEntries(WHERE.map((w) => [w, 0]));
    for (const s of spans) at[s.where] += s.duration_ms;
    return el("div", { class: "hops" }, ["edge", "hub", "cloud", "sensor"].filter((w) => at[w] > 0).map((w) =>
      el("div", { class: `hop where-${w}`, dataset: { where: w } }, HOP[w], el("small", {}, ms(at[w])))));
  }
}
