// llmtrace-otel trace viewer. No framework, no CDN, no innerHTML: every piece of data goes
// into the page through textContent or an attribute we control, so captured prompt text
// (attacker-controlled) is always inert text.
"use strict";

const TOKEN_KEY = "llmtrace.admin_token";
const FILTERS = ["since", "until", "provider", "model", "tenant", "status", "has_findings",
  "min_score"];
const SVG_NS = "http://www.w3.org/2000/svg";

// A 401 from the API; `refused` when the request carried a token (a wrong one), not none.
class AuthNeeded extends Error {
  constructor(refused) {
    super(refused ? "token refused" : "token needed");
    this.refused = refused;
  }
}

// --- DOM helpers ---------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function callLink(spanId, label) {
  // span ids come from the API as 16 hex digits; encode anyway.
  return h("a", { href: "/ui/calls/" + encodeURIComponent(spanId) }, label);
}

// --- formatting ----------------------------------------------------------------------------

const fmt = {
  int: (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US")),
  ms: (v) => (v === null || v === undefined ? "–" : v >= 10000 ? (v / 1000).toFixed(1) + " s"
    : Math.round(v).toLocaleString("en-US") + " ms"),
  usd: (v) => (v === null || v === undefined ? "–" : "$" + (v >= 1 ? v.toFixed(2)
    : v.toPrecision(3))),
  pct: (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %"),
  time: (iso) => (iso ? iso.replace("T", " ").replace("Z", "") : "–"),
  score: (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(2)),
};

// --- API -----------------------------------------------------------------------------------

async function api(path, params) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  const token = window.sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(url, { headers });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) throw new AuthNeeded(Boolean(token));
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

// --- views ---------------------------------------------------------------------------------

const app = () => document.getElementById("app");

function show(...children) {
  const root = app();
  root.replaceChildren();
  append(root, children);
}

function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, String(error.message || error));
}

function tokenForm(retry, refused) {
  const input = h("input", { type: "password", name: "token", autocomplete: "off",
    placeholder: "api.admin_token", "aria-label": "admin token" });
  const form = h("form", { class: "token", id: "token-form", onsubmit: (event) => {
    event.preventDefault();
    window.sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    retry();
  } },
  h("p", {}, "This API is protected. Enter the admin token (setting api.admin_token); it is ",
    "kept in this tab's session storage only."),
  refused ? h("p", { class: "error", role: "alert", id: "token-refused" },
    "The API refused that token.") : null,
  input, h("button", { type: "submit" }, "Open"));
  show(form);
  input.focus();
}

async function guarded(render) {
  try {
    await render();
  } catch (error) {
    if (error instanceof AuthNeeded) tokenForm(() => guarded(render), error.refused);
    else show(errorBox(error));
  }
}

// --- list page -----------------------------------------------------------------------------

function currentFilters() {
  const params = new URLSearchParams(window.location.search);
  const filters = {};
  for (const name of FILTERS) filters[name] = params.get(name) || "";
  if (!params.has("since")) filters.since = "24h";
  return filters;
}

function filterForm(filters) {
  const field = (name, label, control) => h("label", {}, h("span", {}, label), control);
  const text = (name, placeholder) => h("input", { name, value: filters[name], placeholder });
  const select = (name, options) => {
    const el = h("select", { name });
    for (const [value, label] of options) {
      el.append(h("option", { value, selected: filters[name] === value }, label));
    }
    return el;
  };
  return h("form", { class: "filters", id: "filters", method: "get", action: "/ui/" },
    field("since", "since", select("since", [["15m", "15 min"], ["1h", "1 hour"],
      ["24h", "24 hours"], ["7d", "7 days"], ["30d", "30 days"], ["", "all time"]]
      .concat(["15m", "1h", "24h", "7d", "30d", ""].includes(filters.since) ? []
        : [[filters.since, filters.since]]))),
    field("until", "until", text("until", "now")),
    field("provider", "provider", text("provider", "any")),
    field("model", "model", text("model", "any")),
    field("tenant", "tenant", text("tenant", "any")),
    field("status", "status", select("status", [["", "any"], ["ok", "ok"], ["unset", "unset"],
      ["error", "error"]])),
    field("has_findings", "findings", select("has_findings", [["", "any"],
      ["true", "with findings"], ["false", "without"]])),
    field("min_score", "min score", text("min_score", "0.0")),
    h("button", { type: "submit" }, "Apply"));
}

function bucketFor(since) {
  const match = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(since || "");
  if (!match) return since ? "hour" : "day";
  const seconds = Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[match[2]];
  if (seconds <= 2 * 3600) return "minute";
  if (seconds <= 3 * 86400) return "hour";
  return "day";
}

function totalsCards(totals, percentiles) {
  const card = (label, value, title) => h("div", { class: "card", title },
    h("div", { class: "value" }, value), h("div", { class: "label" }, label));
  // Large ranges come from the hourly rollup: its percentiles are within 4.9 % (docs/api.md).
  const rough = percentiles === "histogram";
  const latency = (value) => (rough && value !== null ? "≈ " : "") + fmt.ms(value);
  const note = rough ? "from the hourly rollup's latency histograms, within 4.9 %" : null;
  return h("section", { class: "cards", id: "totals" },
    card("calls", fmt.int(totals.calls)),
    card("error rate", fmt.pct(totals.error_rate)),
    card("input tokens", fmt.int(totals.input_tokens)),
    card("output tokens", fmt.int(totals.output_tokens)),
    card("cost", fmt.usd(totals.cost_usd)),
    card("latency p50", latency(totals.latency_p50_ms), note),
    card("latency p95", latency(totals.latency_p95_ms), note));
}

function fillBuckets(groups, bucket) {
  // Time buckets without calls are absent from the API's answer; charts show them as zero.
  const step = { minute: 60e3, hour: 3600e3, day: 86400e3 }[bucket];
  if (!groups.length || !step) return groups;
  const byTime = new Map(groups.map((g) => [Date.parse(g.key), g]));
  const first = Date.parse(groups[0].key);
  const last = Date.parse(groups[groups.length - 1].key);
  const out = [];
  for (let t = first; t <= last && out.length < 2000; t += step) {
    out.push(byTime.get(t) || { key: new Date(t).toISOString().replace(".000Z", "Z"), calls: 0,
      input_tokens: 0, output_tokens: 0, cost_usd: 0, latency_p50_ms: null,
      latency_p95_ms: null });
  }
  return out;
}

function chart(id, title, groups, series, format) {
  const width = 320, height = 130, pad = 4, top = 18, base = height - 18;
  const values = groups.flatMap((g) => series.map((s) => s.value(g))).filter((v) => v !== null);
  const max = Math.max(1e-12, ...values);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart" });
  root.append(svg("title", {}, title));
  root.append(svg("line", { x1: pad, y1: base, x2: width - pad, y2: base, class: "axis" }));
  const n = Math.max(groups.length, 1);
  const slot = (width - 2 * pad) / n;
  series.forEach((s, index) => {
    if (s.kind === "bar") {
      groups.forEach((g, i) => {
        const v = s.value(g) || 0;
        const bar = svg("rect", { x: pad + i * slot + slot * 0.1, width: Math.max(slot * 0.8, 1),
          y: base - (v / max) * (base - top), height: (v / max) * (base - top),
          class: "bar s" + index });
        bar.append(svg("title", {}, `${fmt.time(g.key)}: ${format(v)}`));
        root.append(bar);
      });
    } else {
      const points = groups.map((g, i) => [g, i]).filter(([g]) => s.value(g) !== null)
        .map(([g, i]) => `${pad + i * slot + slot / 2},${base - (s.value(g) / max) * (base - top)}`);
      if (points.length) root.append(svg("polyline", { points: points.join(" "),
        class: "line s" + index }));
      groups.forEach((g, i) => {
        const v = s.value(g);
        if (v === null) return;
        const dot = svg("circle", { cx: pad + i * slot + slot / 2, r: 2,
          cy: base - (v / max) * (base - top), class: "dot s" + index });
        dot.append(svg("title", {}, `${s.label} ${fmt.time(g.key)}: ${format(v)}`));
        root.append(dot);
      });
    }
  });
  const first = groups.length ? fmt.time(groups[0].key) : "";
  const last = groups.length ? fmt.time(groups[groups.length - 1].key) : "";
  root.append(svg("text", { x: pad, y: height - 4, class: "tick" }, first));
  root.append(svg("text", { x: width - pad, y: height - 4, class: "tick end" }, last));
  root.append(svg("text", { x: width - pad, y: 12, class: "tick end" }, "max " + format(max)));
  const legend = series.length > 1 ? h("span", { class: "legend" }, series.map((s, i) =>
    h("span", { class: "key s" + i }, s.label))) : null;
  return h("figure", { class: "chart-box", id }, h("figcaption", {}, title, legend), root);
}

function charts(stats, bucket) {
  const groups = fillBuckets(stats.groups, bucket);
  return h("section", { class: "charts", id: "charts" },
    chart("chart-calls", `calls per ${bucket}`, groups,
      [{ kind: "bar", label: "calls", value: (g) => g.calls }], fmt.int),
    chart("chart-tokens", `tokens per ${bucket}`, groups,
      [{ kind: "bar", label: "tokens", value: (g) => g.input_tokens + g.output_tokens }], fmt.int),
    chart("chart-cost", `cost per ${bucket}`, groups,
      [{ kind: "bar", label: "cost", value: (g) => g.cost_usd }], fmt.usd),
    chart("chart-latency", "latency", groups,
      [{ kind: "line", label: "p50", value: (g) => g.latency_p50_ms },
        { kind: "line", label: "p95", value: (g) => g.latency_p95_ms }], fmt.ms));
}

function callRow(call) {
  const status = call.status_code === "ERROR" ? `error ${call.error_type || ""}`.trim()
    : call.status_code.toLowerCase();
  return h("tr", { class: call.status_code === "ERROR" ? "err" : null,
    "data-span-id": call.span_id },
  h("td", {}, callLink(call.span_id, fmt.time(call.start_time))),
  h("td", {}, call.provider || "–"),
  h("td", {}, call.response_model || call.request_model || "–"),
  h("td", {}, call.tenant_id || "–"),
  h("td", { class: "status" }, status),
  h("td", { class: "num" }, fmt.int(call.input_tokens)),
  h("td", { class: "num" }, fmt.int(call.output_tokens)),
  h("td", { class: "num" }, fmt.usd(call.cost_usd)),
  h("td", { class: "num" }, fmt.ms(call.duration_ms)),
  h("td", { class: "num" }, fmt.ms(call.ttft_ms)),
  h("td", { class: call.findings_count ? "num flagged" : "num" },
    call.findings_count ? `${call.findings_count} (${fmt.score(call.security_score)})` : "–"));
}

async function renderList() {
  const filters = currentFilters();
  const bucket = bucketFor(filters.since);
  const [page, series] = await Promise.all([
    api("/api/v1/traces", { ...filters, limit: 50 }),
    api("/api/v1/stats", { ...filters, group_by: bucket }),
  ]);
  const body = h("tbody", {}, page.items.map(callRow));
  const table = h("table", { class: "calls", id: "calls" },
    h("thead", {}, h("tr", {}, ["time (UTC)", "provider", "model", "tenant", "status", "in",
      "out", "cost", "duration", "ttfc", "findings"].map((t) => h("th", {}, t)))), body);
  const more = h("button", { id: "more", type: "button" }, "Load more");
  let cursor = page.next_cursor;
  more.hidden = !cursor;
  more.addEventListener("click", () => guardedMore());
  async function guardedMore() {
    try {
      const next = await api("/api/v1/traces", { ...filters, limit: 50, cursor });
      append(body, next.items.map(callRow));
      cursor = next.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      more.replaceWith(errorBox(error));
    }
  }
  const empty = page.items.length ? null
    : h("p", { class: "empty", id: "empty" }, "No calls match these filters yet.");
  show(filterForm(filters), totalsCards(series.totals, series.percentiles), charts(series, bucket),
    table, empty, more);
}

// --- detail page ---------------------------------------------------------------------------

function parseJsonAttribute(attributes, key) {
  const raw = attributes[key];
  if (typeof raw !== "string") return null;
  try { return JSON.parse(raw); } catch (_) { return null; }
}

// Text of a message part as shown, or null for parts without text.
function partText(part) {
  if (!part || typeof part !== "object") return null;
  if (typeof part.content === "string") return part.content;
  if (part.type === "tool_call") return `${part.name || "tool"}(${typeof part.arguments === "string"
    ? part.arguments : JSON.stringify(part.arguments)})`;
  if (part.type === "tool_call_response") return typeof part.response === "string"
    ? part.response : JSON.stringify(part.response);
  return null;
}

// [{side, role, text}] from the captured content attributes, in order.
function conversation(attributes) {
  const blocks = [];
  const system = parseJsonAttribute(attributes, "gen_ai.system_instructions");
  if (Array.isArray(system)) {
    for (const part of system) {
      const text = partText(part);
      if (text !== null) blocks.push({ side: "input", role: "system", text });
    }
  }
  for (const [key, side] of [["gen_ai.input.messages", "input"],
    ["gen_ai.output.messages", "output"]]) {
    const messages = parseJsonAttribute(attributes, key);
    if (!Array.isArray(messages)) continue;
    for (const message of messages) {
      for (const part of (message && message.parts) || []) {
        const text = partText(part);
        if (text !== null) blocks.push({ side, role: String(message.role || side), text });
      }
    }
  }
  return blocks;
}

// Character ranges to highlight in each block: the finding's evidence where it occurs
// verbatim, else its start/end offsets over that side's text joined with "\n".
function locateFindings(blocks, findings) {
  const ranges = blocks.map(() => []);
  const located = findings.map(() => false);
  findings.forEach((finding, index) => {
    const side = finding.side || null;
    const evidence = (finding.evidence || "").trim();
    if (evidence.length >= 3) {
      blocks.forEach((block, b) => {
        if (side && block.side !== side) return;
        let at = block.text.indexOf(evidence);
        while (at >= 0) {
          ranges[b].push([at, at + evidence.length, index]);
          located[index] = true;
          at = block.text.indexOf(evidence, at + evidence.length);
        }
      });
    }
    if (located[index] || finding.start === null || finding.end === null
      || finding.end <= finding.start) return;
    let offset = 0;
    blocks.forEach((block, b) => {
      if (side && block.side !== side) return;
      const from = Math.max(finding.start - offset, 0);
      const to = Math.min(finding.end - offset, block.text.length);
      if (from < to) { ranges[b].push([from, to, index]); located[index] = true; }
      offset += block.text.length + 1;
    });
  });
  return { ranges, located };
}

function highlighted(text, ranges, findings) {
  const pre = h("pre", { class: "text" });
  const sorted = ranges.slice().sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [from, to, index] of sorted) {
    if (to <= at) continue;
    const start = Math.max(from, at);
    if (start > at) pre.append(document.createTextNode(text.slice(at, start)));
    const finding = findings[index];
    pre.append(h("mark", { class: "finding sev-" + (finding.severity || "unknown"),
      title: `${finding.type || "finding"} (${finding.severity || "?"})` },
    text.slice(start, to)));
    at = to;
  }
  if (at < text.length) pre.append(document.createTextNode(text.slice(at)));
  return pre;
}

function timeline(span, trace) {
  const spans = trace ? trace.spans : [span];
  const t0 = Math.min(...spans.map((s) => s.start_time_ns));
  const t1 = Math.max(...spans.map((s) => s.end_time_ns || s.start_time_ns));
  const total = Math.max(t1 - t0, 1);
  const width = 640, row = 32, left = 4, usable = width - 8;
  const root = svg("svg", { viewBox: `0 0 ${width} ${row * spans.length + 22}`,
    class: "timeline", role: "img" });
  root.append(svg("title", {}, "timeline of the trace"));
  spans.forEach((s, i) => {
    const top = i * row;
    const x = left + ((s.start_time_ns - t0) / total) * usable;
    const w = Math.max((((s.end_time_ns || s.start_time_ns) - s.start_time_ns) / total) * usable, 2);
    // Label above its bar, so it never covers the bar or its markers.
    root.append(svg("text", { x: Math.min(x, width - 4), y: top + 11,
      class: "span-label" + (x > width - 160 ? " end" : "") },
    `${s.name} · ${fmt.ms(s.duration_ms)}`));
    const bar = svg("rect", { x, y: top + 15, width: w, height: 12,
      class: "span" + (s.span_id === span.span_id ? " current" : "")
        + (s.status_code === "ERROR" ? " error" : "") });
    bar.append(svg("title", {}, `${s.name}: ${fmt.ms(s.duration_ms)}`));
    root.append(bar);
    if (s.ttft_ms !== null && s.ttft_ms !== undefined) {
      const tx = x + ((s.ttft_ms * 1e6) / total) * usable;
      const marker = svg("line", { x1: tx, x2: tx, y1: top + 13, y2: top + 29, class: "ttfc" });
      marker.append(svg("title", {}, `first chunk after ${fmt.ms(s.ttft_ms)}`));
      root.append(marker);
    }
    for (const f of s.findings || []) {
      if (!f.timestamp_ns) continue;
      const fx = left + ((f.timestamp_ns - t0) / total) * usable;
      const dot = svg("circle", { cx: Math.min(fx, width - 5), cy: top + 21, r: 4,
        class: "finding-dot" });
      dot.append(svg("title", {}, `${f.type || "finding"} (${f.severity || "?"})`));
      root.append(dot);
    }
  });
  const y = row * spans.length + 16;
  root.append(svg("text", { x: left, y, class: "tick" }, "0"));
  root.append(svg("text", { x: width - 4, y, class: "tick end" }, fmt.ms(total / 1e6)));
  return root;
}

function definitionList(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function attributeTable(id, map) {
  const rows = Object.keys(map || {}).sort().map((key) => {
    const value = map[key];
    return h("tr", {}, h("th", {}, key), h("td", {}, h("code", {},
      typeof value === "string" ? value : JSON.stringify(value))));
  });
  return h("table", { class: "attrs", id }, h("tbody", {}, rows));
}

async function renderCall(spanId) {
  const span = await api("/api/v1/spans/" + encodeURIComponent(spanId));
  let trace = null;
  try { trace = await api("/api/v1/traces/" + encodeURIComponent(span.trace_id)); } catch (e) {
    if (e instanceof AuthNeeded) throw e;
  }
  const findings = span.findings || [];
  const blocks = conversation(span.attributes || {});
  const { ranges, located } = locateFindings(blocks, findings);
  const status = span.status_code === "ERROR"
    ? `error: ${span.error_type || span.status_message || ""}` : span.status_code.toLowerCase();
  const content = blocks.length
    ? h("div", { class: "conversation", id: "conversation" }, blocks.map((block, i) =>
      h("div", { class: "msg " + block.side }, h("div", { class: "role" }, block.role),
        highlighted(block.text, ranges[i], findings))))
    : h("p", { class: "muted", id: "conversation" }, "Message content was not captured ",
      "(telemetry.capture_content is off for this call).");
  const findingRows = findings.map((f, i) => h("tr", { class: "sev-" + (f.severity || "unknown") },
    h("td", {}, f.type || "–"), h("td", {}, f.severity || "–"),
    h("td", { class: "num" }, fmt.score(f.confidence)), h("td", {}, f.side || "–"),
    h("td", {}, f.detector || "–"), h("td", {}, f.evidence || f.message || "–"),
    h("td", {}, located[i] ? "highlighted" : blocks.length ? "not located" : "no content")));
  const siblings = trace && trace.spans.length > 1 ? h("ul", { class: "siblings" },
    trace.spans.map((s) => h("li", {}, s.span_id === span.span_id ? h("strong", {}, s.name)
      : callLink(s.span_id, s.name)))) : null;
  show(
    h("p", {}, h("a", { href: "/ui/" }, "← all calls")),
    h("h1", { id: "call-title" }, span.name),
    definitionList([
      ["time (UTC)", fmt.time(span.start_time)],
      ["provider", span.provider || "–"],
      ["model", `${span.request_model || "–"} → ${span.response_model || "–"}`],
      ["status", status + (span.http_status ? ` (HTTP ${span.http_status})` : "")],
      ["duration", fmt.ms(span.duration_ms)],
      ["time to first chunk", fmt.ms(span.ttft_ms)],
      ["tokens in / out", `${fmt.int(span.input_tokens)} / ${fmt.int(span.output_tokens)}`],
      ["cost", fmt.usd(span.cost_usd)],
      ["tenant / agent", `${span.tenant_id || "–"} / ${span.agent_id || "–"}`],
      ["security score", fmt.score(span.security_score)],
      ["trace", span.trace_id],
    ]),
    h("h2", {}, "Timeline"), timeline(span, trace), siblings,
    h("h2", {}, `Findings (${findings.length})`),
    findings.length ? h("table", { class: "findings", id: "findings" }, h("thead", {},
      h("tr", {}, ["type", "severity", "confidence", "side", "detector", "evidence", "in text"]
        .map((t) => h("th", {}, t)))), h("tbody", {}, findingRows))
      : h("p", { class: "muted", id: "findings" }, "No security findings."),
    h("h2", {}, "Conversation"), content,
    h("h2", {}, "Attributes"), attributeTable("attributes", span.attributes),
    h("h2", {}, "Resource"), attributeTable("resource", span.resource));
}

// --- router --------------------------------------------------------------------------------

function route() {
  const match = /^\/ui\/calls\/([^/]+)$/.exec(window.location.pathname);
  if (match) return guarded(() => renderCall(decodeURIComponent(match[1])));
  return guarded(renderList);
}

document.addEventListener("DOMContentLoaded", route);
