// Plans: newest first, each with its saga steps and their state; `plan` events carry
// the whole plan, so a row is simply redrawn. Click a plan for its step history.
import { el, getJSON, clock } from "./util.js";

const MAX_PLANS = 20;

export class Plans {
  constructor(root) { this.root = root; this.rows = new Map(); }

  load(plans) { for (const plan of plans.slice().reverse()) this.on("plan", plan); }

  on(type, plan) {
    this.root.querySelector(".empty")?.remove();
    const old = this.rows.get(plan.plan_id);
    const row = this.render(plan);
    if (old) old.replaceWith(row); else this.root.prepend(row);
    this.rows.set(plan.plan_id, row);
    while (this.rows.size > MAX_PLANS) {
      const [id, oldest] = this.rows.entries().next().value;
      oldest.remove(); this.rows.delete(id);
    }
  }

  render(plan) {
    const steps = plan.steps.map((s) => el("span", { class: `step ${s.status}`, title: `${s.gw}/${s.device}: ${s.status}` },
      `${s.index + 1}. ${s.action} ${s.device}`, s.compensation ? " ↺" : ""));
    const history = el("ul", { class: "steps", hidden: "" });
    const row = el("div", { class: "row", dataset: { plan: plan.plan_id, status: plan.status } },
      el("div", {}, el("b", {}, plan.trigger), " ", el("span", { class: `status ${plan.status}` }, plan.status),
        el("span", { class: "muted" }, ` · ${plan.planner} · ${clock(plan.created_ms)}`)),
      el("div", { class: "muted" }, plan.reason),
      el("div", { class: "saga" }, steps), history);
    row.addEventListener("click", () => this.history(plan.plan_id, history));
    return row;
  }

  async history(planId, list) {
    list.hidden = !list.hidden;
    if (list.hidden) return;
    const events = await getJSON(`/api/plans/${planId}/history`);
    list.replaceChildren(...events.map((e) => el("li", {},
      el("span", {}, `${e.event}${e.index === null ? "" : ` step ${e.index + 1}`}${e.detail ? `: ${e.detail}` : ""}`),
      el("span", { class: "muted" }, `${e.replica} · ${clock(e.ts_ms)}`))));
  }
}
