// A sparkline: the last POINTS values of one metric as an SVG polyline.
import { el, svg, num } from "./util.js";

export const POINTS = 60;
const W = 110, H = 24, PAD = 2;

export class Sparkline {
  constructor(device, metric) {
    this.values = [];
    this.line = svg("polyline");
    this.svg = svg("svg", { class: "spark", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
    this.svg.dataset.device = device;
    this.svg.dataset.metric = metric;
    this.svg.append(this.line);
    this.value = el("b");
    this.node = el("div", { class: "spark-cell" }, el("span", {}, `${metric} `, this.value), this.svg);
  }

  push(value, seq) {
    this.values.push(value);
    if (this.values.length > POINTS) this.values.shift();
    if (seq !== undefined) this.svg.dataset.lastSeq = String(seq);
  }

  draw() {
    const v = this.values;
    if (!v.length) return;
    const lo = Math.min(...v), hi = Math.max(...v), span = hi - lo || 1;
    const step = (W - 2 * PAD) / Math.max(1, POINTS - 1);
    const x0 = W - PAD - (v.length - 1) * step;
    this.line.setAttribute("points", v.map((y, i) =>
      `${(x0 + i * step).toFixed(1)},${(H - PAD - ((y - lo) / span) * (H - 2 * PAD)).toFixed(1)}`,
    ).join(" "));
    this.svg.dataset.points = String(v.length);
    this.value.textContent = num(v[v.length - 1]);
  }
}
