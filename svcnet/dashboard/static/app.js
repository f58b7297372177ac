// svcnet dashboard: draws the picture the server pushes (/events, Server-Sent Events) as SVG.
// No framework, no build step; every number comes from the server (svcnet/dashboard/model.py).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const LEFT = 380, HEAD = 64, CHIP_W = 200, CHIP_H = 34, GAP = 6, PAD = 10;
const svg = document.getElementById("picture");
const statusEl = document.getElementById("status");
const systemBox = document.getElementById("system");
let last = null;

function el(name, attrs, parent, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

function rateText(rate) {
  if (rate === null || rate === undefined) return "";
  return rate >= 10 ? `${rate.toFixed(0)} conn/s` : `${rate.toFixed(1)} conn/s`;
}

function isSystem(s) {
  return s.namespace === "kube-system" || (s.namespace === "default" && s.name === "kubernetes");
}

function memberState(m) {
  if (!m.endpoints.length) return "noendpoint";
  const e = m.endpoints[0];
  if (e.terminating) return e.serving ? "terminating" : "terminating";
  if (e.ready) return "ready";
  if (e.serving) return "serving";
  return "notready";
}

const STATE_LABEL = { ready: "ready", serving: "serving, not ready", terminating: "terminating",
                      notready: "not ready", noendpoint: "not an endpoint" };

function serviceLines(s) {
  const ports = s.ports.map(p => `${p.port}→${p.targetPort ?? p.port}/${p.protocol}`).join(", ");
  const lines = [];
  if (s.headless) lines.push(`headless · ${ports}`);
  else lines.push(`ClusterIP ${s.clusterIPs.join(", ")} · ${ports}`);
  if (s.nodePorts.length) {
    const shown = s.nodePorts.slice(0, 3).join(", ");
    lines.push(`NodePort ${shown}${s.nodePorts.length > 3 ? ` +${s.nodePorts.length - 3}` : ""}`);
  }
  for (const lb of s.loadBalancer)
    lines.push(`LB ${lb.ip}${lb.announcer ? ` announced by ${lb.announcer}` : " (no announcer)"}` +
               (lb.ipMode === "Proxy" ? " (ipMode Proxy)" : ""));
  if (s.externalIPs.length) lines.push(`external ${s.externalIPs.join(", ")}`);
  const pol = [];
  if (s.externalTrafficPolicy) pol.push(`external ${s.externalTrafficPolicy}`);
  pol.push(`internal ${s.internalTrafficPolicy}`);
  if (s.sessionAffinity !== "None") pol.push(`affinity ${s.sessionAffinity}`);
  lines.push(`policy: ${pol.join(", ")}`);
  return lines;
}

function columns(view, members) {
  const names = view.nodes.map(n => n.name);
  const extra = members.some(m => !names.includes(m.node));
  return extra ? [...names, ""] : names;
}

function drawChip(parent, m, x, y, kind) {
  const state = kind === "pod" ? (m.ready ? "ready" : "notready") : memberState(m);
  const g = el("g", { class: "pod", "data-pod": m.name, "data-namespace": m.namespace,
                      "data-state": state, transform: `translate(${x},${y})` }, parent);
  el("rect", { class: `chip ${state}`, width: CHIP_W, height: CHIP_H, rx: 4 }, g);
  el("circle", { class: "dot", cx: 9, cy: 10, r: 4 }, g);
  el("text", { x: 18, y: 14 }, g, m.name.length > 28 ? m.name.slice(0, 27) + "…" : m.name);
  const ep = (m.endpoints || [])[0];
  const detail = [m.ip || "no IP", kind === "pod" ? m.phase : STATE_LABEL[state]];
  const rate = (m.endpoints || []).reduce((a, e) => e.rate == null ? a : (a ?? 0) + e.rate, null);
  const t = el("text", { x: 18, y: 28, class: "muted" }, g, detail.join(" · "));
  if (rate !== null) {
    el("tspan", { class: "rate", "data-rate": rate.toFixed(3) }, t, `  ${rateText(rate)}`);
  }
  if (ep && ep.zone) el("title", {}, g, `zone ${ep.zone}`);
}

function render(view) {
  last = view;
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const services = view.services.filter(s => systemBox.checked || !isSystem(s));
  const allMembers = [...services.flatMap(s => s.members), ...view.otherPods];
  const cols = columns(view, allMembers);
  const colW = CHIP_W + 2 * PAD;
  const width = Math.max(LEFT + cols.length * colW + PAD, 800);
  cols.forEach((name, i) => {
    const x = LEFT + i * colW;
    const node = view.nodes.find(n => n.name === name);
    const g = el("g", { class: "node", "data-node": name }, svg);
    el("rect", { class: "node-head", x: x + 2, y: 6, width: colW - 4, height: HEAD - 12, rx: 4 }, g);
    el("text", { x: x + PAD, y: 24, class: "title" }, g,
       name ? `${name}${node && !node.ready ? " (NotReady)" : ""}` : "unscheduled");
    if (node) {
      el("text", { x: x + PAD, y: 38, class: "muted" }, g, node.addresses.join(", "));
      el("text", { x: x + PAD, y: 51, class: "muted" }, g, node.zone ? `zone ${node.zone}` : "no zone");
    }
  });
  let y = HEAD;
  const row = (key, title, lines, members, kind, rate) => {
    const perCol = cols.map(c => members.filter(m => (m.node || "") === c || (!cols.includes(m.node) && c === "")));
    const chips = Math.max(1, ...perCol.map(c => c.length));
    const h = Math.max(20 + lines.length * 15 + (rate !== undefined ? 15 : 0),
                       chips * (CHIP_H + GAP) + GAP) + 2 * PAD;
    const g = el("g", { class: kind === "pod" ? "others" : "service", "data-service": key }, svg);
    el("rect", { class: "card", x: 4, y: y + 3, width: width - 8, height: h - 6, rx: 6 }, g);
    el("text", { x: 16, y: y + PAD + 12, class: "title" }, g, title);
    lines.forEach((line, i) => el("text", { x: 16, y: y + PAD + 28 + 15 * i, class: "muted" }, g, line));
    if (rate !== undefined) {
      el("text", { x: 16, y: y + PAD + 28 + 15 * lines.length, class: "rate",
                   "data-rate": rate === null ? "" : rate.toFixed(3) }, g,
         rate === null ? "no traffic data" : rateText(rate));
    }
    perCol.forEach((ms, i) => {
      const x = LEFT + i * colW + PAD;
      el("rect", { class: "lane", x: x - 4, y: y + PAD - 2, width: CHIP_W + 8, height: h - 2 * PAD + 4, rx: 4 }, g);
      ms.forEach((m, j) => drawChip(g, m, x, y + PAD + GAP / 2 + j * (CHIP_H + GAP), kind));
    });
    if (kind !== "pod") g.addEventListener("click", () => showExplain(key));
    y += h;
  };
  for (const s of services) {
    row(s.key, `${s.key}  ${s.type}`, serviceLines(s), s.members, "service",
        view.traffic ? (s.rate ?? 0) : null);
  }
  if (view.otherPods.length)
    row("", "Pods no Service selects", [], view.otherPods, "pod", undefined);
  svg.setAttribute("width", width);
  svg.setAttribute("height", y + PAD);
  svg.setAttribute("data-version", view.version);
}

async function showExplain(key) {
  const aside = document.getElementById("explain");
  const body = document.getElementById("explain-body");
  document.getElementById("explain-title").textContent = `svcnet explain ${key}`;
  body.textContent = "…";
  aside.hidden = false;
  const r = await fetch(`/api/explain?service=${encodeURIComponent(key)}`);
  if (r.status === 401) { location.reload(); return; }
  const byNode = await r.json();
  body.textContent = "";
  for (const [node, lines] of Object.entries(byNode)) {
    const h = document.createElement("h3");
    h.textContent = node;
    const pre = document.createElement("pre");
    pre.textContent = lines.join("\n");
    body.append(h, pre);
  }
}

document.getElementById("close-explain").addEventListener("click", () => {
  document.getElementById("explain").hidden = true;
});
systemBox.addEventListener("change", () => last && render(last));

function connect() {
  const source = new EventSource("/events");
  source.onopen = () => { statusEl.textContent = "live"; statusEl.dataset.state = "live"; };
  source.onmessage = (e) => render(JSON.parse(e.data));
  source.onerror = async () => {
    statusEl.textContent = "reconnecting…";
    statusEl.dataset.state = "lost";
    const r = await fetch("/api/view").catch(() => null);
    if (r && (r.status === 401 || r.status === 403)) { source.close(); location.reload(); }
  };
}
connect();
