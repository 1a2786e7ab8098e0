// Fleet view: a table per gateway; each device with its state, twin drift and a
// sparkline per sensor, updated from `reading`, `twin` and `status` events.
import { el, getJSON, clock, perFrame } from "./util.js";
import { Sparkline, POINTS } from "./sparkline.js";

class DeviceRow {
  constructor(gw, device) {
    this.gw = gw; this.device = device;
    this.sparks = new Map();
    this.dot = el("span", { class: "dot" });
    this.drift = el("span", { class: "badge" });
    this.count = el("td");
    this.seen = el("td", { class: "muted" });
    this.sparkBox = el("div", { class: "sparks" });
    this.row = el("tr", { dataset: { device, gw } },
      el("td", {}, this.dot, device), el("td", {}, this.drift), this.count, this.seen,
      el("td", {}, this.sparkBox));
    this.draw = perFrame(() => { for (const s of this.sparks.values()) s.draw(); });
  }

  summary(twin) {
    const online = twin.online !== false;
    this.dot.className = `dot ${online ? "online" : "offline"}`;
    this.row.dataset.online = String(online);
    const drift = twin.converged === false;
    this.drift.className = `badge ${drift ? "drift" : "ok"}`;
    this.drift.textContent = drift
      ? `drift v${twin.reported_version}→v${twin.desired_version}` : `v${twin.reported_version ?? 0}`;
    if (twin.readings !== undefined) this.count.textContent = twin.readings;
    if (twin.last_seen_ms) this.seen.textContent = clock(twin.last_seen_ms);
  }

  reading(metrics, seq) {
    for (const [metric, value] of Object.entries(metrics)) {
      let spark = this.sparks.get(metric);
      if (!spark) {
        spark = new Sparkline(this.device, metric);
        this.sparks.set(metric, spark);
        this.sparkBox.append(spark.node);
      }
      spark.push(value, seq);
    }
    this.draw();
  }
}

export class Fleet {
  constructor(root, totals) {
    this.root = root; this.totals = totals;
    this.rows = new Map();      // "gw/device" -> DeviceRow
    this.tables = new Map();    // gw -> tbody
  }

  async load(fleet) {
    for (const twin of fleet.devices) this.row(twin.gw, twin.device).summary(twin);
    this.count();
    await Promise.all(fleet.devices.map((twin) => this.history(twin.gw, twin.device)));
  }

  async history(gw, device) {
    const detail = await getJSON(`/api/devices/${gw}/${device}?readings=${POINTS}&minutes=0`);
    const row = this.row(gw, device);
    for (const reading of detail.recent.slice().reverse()) row.reading(reading.metrics, reading.seq);
  }

  on(type, data) {
    const known = this.rows.has(`${data.gw}/${data.device}`);
    const row = this.row(data.gw, data.device);
    if (type === "reading") row.reading(data.message.metrics, data.message.seq);
    else if (type === "twin") row.summary(data);
    else if (type === "status") row.summary({ online: data.online });
    if (!known) { this.count(); if (type !== "reading") this.history(data.gw, data.device); }
  }

  row(gw, device) {
    const key = `${gw}/${device}`;
    let row = this.rows.get(key);
    if (!row) {
      row = new DeviceRow(gw, device);
      this.rows.set(key, row);
      this.table(gw).append(row.row);
    }
    return row;
  }

  table(gw) {
    let body = this.tables.get(gw);
    if (!body) {
      body = el("tbody");
      const head = el("tr", {}, ["device", "twin", "readings", "last seen", "sensors"].map((h) => el("th", {}, h)));
      this.root.append(el("div", { class: "gateway", dataset: { gw } },
        el("h4", {}, `gateway ${gw}`), el("table", { class: "devices" }, el("thead", {}, head), body)));
      this.tables.set(gw, body);
    }
    return body;
  }

  count() {
    this.totals.textContent = `${this.tables.size} gateway(s), ${this.rows.size} device(s)`;
  }
}
