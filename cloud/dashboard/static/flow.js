// Flow graph (Cytoscape.js): devices → gateways → hub → cloud → planner agents, and
// agent sessions linked to whichever side owns them. Laid out in columns, the data
// path read left to right; replaced whole on each `graph` event (it is small).
const COLUMN = { device: 0, gateway: 1, session: 2, hub: 2, cloud: 3, agent: 4 };
const COLOR = { device: "#8e6cc9", gateway: "#2f80ed", hub: "#f2994a", cloud: "#27ae60",
                agent: "#1d2430", session: "#eb5757" };

const STYLE = [
  { selector: "node", style: {
      label: "data(label)", "font-size": 9, "text-valign": "bottom", "text-margin-y": 3,
      width: 16, height: 16, "background-color": (n) => COLOR[n.data("kind")] || "#999" } },
  { selector: 'node[kind = "device"][!online]', style: { "background-color": "#b8bec9" } },
  { selector: 'node[kind = "session"]', style: { shape: "diamond", width: 18, height: 18 } },
  { selector: 'node[kind = "hub"], node[kind = "cloud"]', style: { shape: "round-rectangle", width: 26 } },
  { selector: "edge", style: {
      width: 1.2, "line-color": "#c9ced6", "target-arrow-color": "#c9ced6",
      "target-arrow-shape": "triangle", "arrow-scale": 0.7, "curve-style": "bezier" } },
  { selector: 'edge[source ^= "session:"]', style: {
      "line-style": "dashed", "line-color": "#eb5757", "target-arrow-color": "#eb5757",
      label: "data(label)", "font-size": 8, color: "#eb5757" } },
];

export class FlowGraph {
  constructor(root) {
    this.root = root;
    this.cy = window.cytoscape({
      container: root, style: STYLE, elements: [], layout: { name: "preset" },
      userZoomingEnabled: false, boxSelectionEnabled: false, autoungrabify: true,
    });
    window.addEventListener("resize", () => this.cy.fit(undefined, 20));
  }

  load(graph) { if (graph) this.render(graph); }

  on(type, data) { if (type === "graph") this.render(data); }

  render(graph) {
    const rows = {};
    for (const node of graph.nodes) {
      const column = COLUMN[node.data.kind] ?? 4;
      const row = (rows[column] = (rows[column] ?? -1) + 1);
      // Sessions sit below the hub, between the two sides they move across.
      const y = node.data.kind === "session" ? 120 + row * 40 : row * 34;
      node.position = { x: column * 120, y };
    }
    this.cy.batch(() => {
      this.cy.elements().remove();
      this.cy.add([...graph.nodes.map((n) => ({ group: "nodes", ...n })),
                   ...graph.edges.map((e) => ({ group: "edges", ...e }))]);
    });
    this.cy.fit(undefined, 20);
    // What the graph shows, readable without the canvas (tests, screen readers).
    this.root.dataset.nodes = graph.nodes.map((n) => n.data.id).join(" ");
    this.root.setAttribute("aria-label", `flow graph: ${graph.nodes.map((n) => n.data.label).join(", ")}`);
  }
}
