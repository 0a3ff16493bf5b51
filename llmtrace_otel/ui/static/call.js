// The call page (/ui/calls/{span_id}): facts, the trace's timeline, the findings by severity,
// the captured conversation with the findings highlighted, and every attribute.

import { AuthNeeded, api } from "./api.js";
import { callLink, h, show, svg } from "./dom.js";
import { SCORE_NOTE, fmt, severityRank, statusLabel } from "./format.js";
import { severityBadge } from "./overview.js";

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

export async function renderCall(spanId) {
  const span = await api("/api/v1/spans/" + encodeURIComponent(spanId));
  let trace = null;
  try { trace = await api("/api/v1/traces/" + encodeURIComponent(span.trace_id)); } catch (e) {
    if (e instanceof AuthNeeded) throw e;
  }
  const findings = span.findings || [];
  const blocks = conversation(span.attributes || {});
  const { ranges, located } = locateFindings(blocks, findings);
  // An error reads with the upstream's own message when it gave one (the span's status
  // description), not only its class.
  const message = span.status_code === "ERROR" && span.status_message
    && span.status_message !== span.error_type ? span.status_message : null;
  const status = [statusLabel(span), span.http_status ? ` (HTTP ${span.http_status})` : "",
    message ? h("span", { class: "status-message", id: "status-message" }, message) : null];
  const content = blocks.length
    ? h("div", { class: "conversation", id: "conversation" }, blocks.map((block, i) =>
      h("div", { class: "msg " + block.side }, h("div", { class: "role" }, block.role),
        highlighted(block.text, ranges[i], findings))))
    : h("p", { class: "muted", id: "conversation" }, "Message content was not captured ",
      "(telemetry.capture_content is off for this call).");
  // Most severe first (the events keep the order the detectors wrote them in).
  const order = findings.map((f, i) => i)
    .sort((a, b) => severityRank(findings[a].severity) - severityRank(findings[b].severity));
  const findingRows = order.map((i) => {
    const f = findings[i];
    return h("tr", { class: "sev-" + (f.severity || "unknown") },
      h("td", {}, severityBadge(f.severity)), h("td", {}, f.type || "–"),
      h("td", { class: "num" }, fmt.confidence(f.confidence)), h("td", {}, f.side || "–"),
      h("td", {}, f.detector || "–"), h("td", {}, f.evidence || f.message || "–"),
      h("td", {}, located[i] ? "highlighted" : blocks.length ? "not located" : "no content"));
  });
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
      ["status", status],
      ["duration", fmt.ms(span.duration_ms)],
      ["time to first chunk", fmt.ms(span.ttft_ms)],
      ["tokens in / out", `${fmt.int(span.input_tokens)} / ${fmt.int(span.output_tokens)}`],
      // gen_ai.usage.cache_read / cache_write (or the previous cache_creation) input tokens
      ["cache read / write", `${fmt.int(span.cache_read_tokens)} / `
        + fmt.int(span.cache_creation_tokens)],
      ["cost", fmt.usd(span.cost_usd)],
      ["tenant / agent", `${span.tenant_id || "–"} / ${span.agent_id || "–"}`],
      ["security score", h("span", { title: SCORE_NOTE }, fmt.score(span.security_score))],
      ["trace", span.trace_id],
    ]),
    h("h2", {}, "Timeline"), timeline(span, trace), siblings,
    h("h2", {}, `Findings (${findings.length})`),
    findings.length ? h("table", { class: "findings", id: "findings" }, h("thead", {},
      h("tr", {}, ["severity", "type", "confidence", "side", "detector", "evidence", "in text"]
        .map((t) => h("th", {}, t)))), h("tbody", {}, findingRows))
      : h("p", { class: "muted", id: "findings" }, "No security findings."),
    h("p", { class: "note" }, SCORE_NOTE),
    h("h2", {}, "Conversation"), content,
    h("h2", {}, "Attributes"), attributeTable("attributes", span.attributes),
    h("h2", {}, "Resource"), attributeTable("resource", span.resource));
}

