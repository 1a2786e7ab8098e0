// The dashboard: load what the API knows, then stay current on /api/events (SSE).
// Each view owns one panel and exposes `load(...)` and the event types it follows.
import { getJSON } from "./util.js";
import { Fleet } from "./fleet.js";
import { FlowGraph } from "./flow.js";
import { Sankey } from "./sankey.js";
import { Agents } from "./agents.js";
import { Handoffs } from "./handoffs.js";
import { Plans } from "./plans.js";
import { Traces } from "./traces.js";

const $ = (id) => document.getElementById(id);

const traces = new Traces($("trace-kinds"), $("trace-list"), $("trace-view"));
const views = {
  fleet: new Fleet($("fleet"), $("totals")),
  graph: new FlowGraph($("flow-graph")),
  sankey: new Sankey($("sankey")),
  agents: new Agents($("agents")),
  handoffs: new Handoffs($("handoffs"), (traceId) => traces.show(traceId)),
  plans: new Plans($("plans")),
  traces,
};

// Which view wants which server-sent event.
const routes = {
  twin: ["fleet"], reading: ["fleet"], status: ["fleet"],
  plan: ["plans"], agent: ["agents"], handoff: ["handoffs"],
  flow: ["sankey"], graph: ["graph"], picks: ["traces"],
};

// Exposed for the browser tests and for poking at from the console.
window.baton = { views, events: 0, connected: false };

async function load() {
  const [fleet, dashboard, plans] = await Promise.all([
    getJSON("/api/fleet"), getJSON("/api/dashboard"), getJSON("/api/plans?limit=20"),
  ]);
  $("replica").textContent = `replica ${dashboard.replica}`;
  await views.fleet.load(fleet);
  views.graph.load(dashboard.graph);
  views.sankey.load(dashboard.flow);
  views.agents.load(dashboard.agents);
  views.handoffs.load(dashboard.handoffs);
  views.plans.load(plans);
  views.traces.load(dashboard.picks);
}

function listen() {
  const live = $("live");
  const source = new EventSource("/api/events");
  source.onopen = () => {
    live.dataset.state = "live"; live.textContent = "live"; window.baton.connected = true;
  };
  source.onerror = () => {
    live.dataset.state = "reconnecting"; live.textContent = "reconnecting";
    window.baton.connected = false;
  };
  for (const [type, names] of Object.entries(routes)) {
    source.addEventListener(type, (event) => {
      const data = JSON.parse(event.data);
      window.baton.events += 1;
      for (const name of names) views[name].on(type, data);
    });
  }
}

// Listen first, so nothing that happens while the snapshot loads is missed; views
// take an event for something they do not know yet as news of it.
listen();
load().catch((error) => { $("live").textContent = `load failed: ${error.message}`; });
