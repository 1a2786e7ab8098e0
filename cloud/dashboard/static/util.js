// Small helpers every view uses: fetch JSON, build elements, format numbers and times.

export async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

// el("td", {class: "x", dataset: {device: "d"}}, child, "text", ...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) node.append(child);
  }
  return node;
}

export function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

export const ms = (value) =>
  value === null || value === undefined ? "–"
    : value >= 1000 ? `${(value / 1000).toFixed(2)} s`
    : value >= 1 ? `${value.toFixed(1)} ms`
    : `${Math.round(value * 1000)} µs`;

export const clock = (epochMs) => new Date(epochMs).toLocaleTimeString();

export const num = (value) => (Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3));

// Run `fn` at most once per animation frame however often it is asked for.
export function perFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fn(); });
  };
}
