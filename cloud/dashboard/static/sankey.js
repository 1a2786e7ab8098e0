// A small Sankey of where readings go: nodes in columns, links as bands whose width
// grows with the square root of the count (so 5 reflex actions stay visible next to
// 5,000 readings); every band is labelled with its real count. A node is as tall as
// the larger of its inflow and outflow, and its bands stack along it.
import { svg } from "./util.js";

const COLUMN = { sensors: 0, edge: 1, quarantine: 1, hub: 2, reflex: 2, "cloud twins": 3, planner: 3 };
const ROW = { sensors: 0, edge: 0, quarantine: 1, hub: 0, reflex: 1, "cloud twins": 0, planner: 1 };
const COLOR = { sensors: "#8e6cc9", edge: "#2f80ed", quarantine: "#eb5757", hub: "#f2994a",
                reflex: "#2f80ed", "cloud twins": "#27ae60", planner: "#1d2430" };
const X0 = 10, COLW = 160, NODEW = 10, ROWH = 100, TOP = 16, MIN_NODE = 4;

const width = (value) => (value > 0 ? Math.max(2, Math.min(56, 2 * Math.sqrt(value))) : 0);

export class Sankey {
  constructor(root) { this.root = root; }

  load(flow) { if (flow) this.render(flow); }

  on(type, data) { if (type === "flow") this.render(data); }

  render(flow) {
    this.root.replaceChildren();
    const out = {}, into = {};
    for (const l of flow.links) {
      out[l.source] = (out[l.source] ?? 0) + width(l.value);
      into[l.target] = (into[l.target] ?? 0) + width(l.value);
    }
    const at = (name) => ({ x: X0 + COLUMN[name] * COLW, y: TOP + ROW[name] * ROWH });
    const used = { out: {}, into: {} };  // how far down each node's bands have stacked
    for (const l of flow.links) {
      const w = width(l.value);
      const y1 = at(l.source).y + (used.out[l.source] ?? 0);
      const y2 = at(l.target).y + (used.into[l.target] ?? 0);
      used.out[l.source] = (used.out[l.source] ?? 0) + w;
      used.into[l.target] = (used.into[l.target] ?? 0) + w;
      this.band(l, at(l.source).x + NODEW, y1, at(l.target).x, y2, w);
    }
    for (const name of Object.keys(COLUMN)) {
      this.node(name, at(name), Math.max(out[name] ?? 0, into[name] ?? 0, MIN_NODE));
    }
    this.root.dataset.links = flow.links.map((l) => `${l.source}>${l.target}=${l.value}`).join(" ");
  }

  band(link, x1, top1, x2, top2, w) {
    if (!w) return;
    const y1 = top1 + w / 2, y2 = top2 + w / 2, mid = (x1 + x2) / 2;
    this.root.append(svg("path", {
      class: "link", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
      stroke: COLOR[link.target], "stroke-width": w,
    }));
    const label = svg("text", { x: mid, y: (y1 + y2) / 2 + 3, "text-anchor": "middle" });
    label.textContent = link.value.toLocaleString();
    this.root.append(label);
  }

  node(name, at, height) {
    this.root.append(svg("rect", { x: at.x, y: at.y, width: NODEW, height, fill: COLOR[name], rx: 2 }));
    const label = svg("text", { x: at.x, y: at.y - 4 });
    label.textContent = name;
    this.root.append(label);
  }
}
