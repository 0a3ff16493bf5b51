// The overview (/ui/): filters, totals, time charts over the selected range, breakdowns by
// model, tenant and security findings, and the calls, newest first.

import { api } from "./api.js";
import { bucketFor, chart, rangeOf, shareBar, slots } from "./charts.js";
import { append, callLink, errorBox, h, show } from "./dom.js";
import { SCORE_NOTE, fmt, statusLabel } from "./format.js";

export const FILTERS = ["since", "until", "q", "provider", "model", "tenant", "status",
  "has_findings", "min_score"];
export const REFRESH = [["", "off"], ["10s", "10 s"], ["30s", "30 s"], ["60s", "1 min"]];
const RANGES = [["15m", "15 min"], ["1h", "1 hour"], ["24h", "24 hours"], ["7d", "7 days"],
  ["30d", "30 days"], ["", "all time"]];

export function currentFilters() {
  const params = new URLSearchParams(window.location.search);
  const filters = {};
  for (const name of FILTERS) filters[name] = params.get(name) || "";
  if (!params.has("since")) filters.since = "24h";
  return filters;
}

// The overview's URL with some filters changed (a breakdown row narrows the view).
function narrowed(changes) {
  const params = new URLSearchParams(window.location.search);
  for (const [key, value] of Object.entries(changes)) params.set(key, value);
  return "/ui/?" + params.toString();
}

function filterForm(filters, refresh) {
  const field = (label, control) => h("label", {}, h("span", {}, label), control);
  const text = (name, placeholder) => h("input", { name, value: filters[name], placeholder });
  const select = (name, options, current) => {
    const el = h("select", { name });
    for (const [value, label] of options) {
      el.append(h("option", { value, selected: current === value }, label));
    }
    return el;
  };
  const ranges = RANGES.some(([value]) => value === filters.since) ? RANGES
    : RANGES.concat([[filters.since, filters.since]]);
  return h("form", { class: "filters", id: "filters", method: "get", action: "/ui/" },
    field("since", select("since", ranges, filters.since)),
    field("until", text("until", "now")),
    field("search", h("input", { name: "q", type: "search", value: filters.q,
      placeholder: "text, id, model, error …", class: "search" })),
    field("provider", text("provider", "any")),
    field("model", text("model", "any")),
    field("tenant", text("tenant", "any")),
    field("status", select("status", [["", "any"], ["ok", "ok"], ["error", "error"]],
      filters.status.toLowerCase())),
    field("findings", select("has_findings", [["", "any"], ["true", "with findings"],
      ["false", "without"]], filters.has_findings)),
    field("min score", text("min_score", "0-100")),
    field("auto-refresh", select("refresh", REFRESH, refresh)),
    h("button", { type: "submit" }, "Apply"));
}

function totalsCards(totals, percentiles, findings) {
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
    card("latency p95", latency(totals.latency_p95_ms), note),
    card("calls with findings", fmt.int(findings.calls), SCORE_NOTE));
}

function charts(stats, bucket, range) {
  const data = slots(stats.groups, bucket, range);
  const chartOf = (id, title, series, format) => chart(id, title, data, series, format, bucket,
    range);
  return h("section", { class: "charts", id: "charts" },
    chartOf("chart-calls", `calls per ${bucket}`,
      [{ kind: "bar", label: "calls", value: (g) => g.calls }], fmt.int),
    chartOf("chart-tokens", `tokens per ${bucket}`,
      [{ kind: "bar", label: "tokens", value: (g) => g.input_tokens + g.output_tokens }],
      fmt.int),
    chartOf("chart-cost", `cost per ${bucket}`,
      [{ kind: "bar", label: "cost", value: (g) => g.cost_usd }], fmt.usd),
    chartOf("chart-latency", `latency per ${bucket}`,
      [{ kind: "line", label: "p50", value: (g) => g.latency_p50_ms },
        { kind: "line", label: "p95", value: (g) => g.latency_p95_ms }], fmt.ms));
}

function groupTable(id, title, what, stats, param) {
  const most = Math.max(1, ...stats.groups.map((g) => g.calls));
  const rows = stats.groups.slice(0, 10).map((g) => h("tr", {},
    h("td", { title: g.key }, g.key === null ? h("span", { class: "muted" }, `(no ${what})`)
      : h("a", { href: narrowed({ [param]: g.key }) }, g.key)),
    h("td", { class: "num" }, fmt.int(g.calls)),
    h("td", { class: "bar-cell" }, shareBar(g.calls / most)),
    h("td", { class: g.errors ? "num errors" : "num" }, fmt.pct(g.error_rate)),
    h("td", { class: "num" }, fmt.usd(g.cost_usd)),
    h("td", { class: "num" }, fmt.ms(g.latency_p95_ms))));
  const more = stats.groups.length > 10 ? h("p", { class: "muted" },
    `${stats.groups.length - 10} more`) : null;
  return h("section", { class: "breakdown", id },
    h("h2", {}, title),
    stats.groups.length ? h("table", { class: "groups" },
      h("thead", {}, h("tr", {}, [what, "calls", "", "errors", "cost", "p95"]
        .map((t) => h("th", {}, t)))), h("tbody", {}, rows))
      : h("p", { class: "empty" }, "No calls."), more);
}

const plural = (n, word) => `${fmt.int(n)} ${word}${n === 1 ? "" : "s"}`;

export function severityBadge(severity, text) {
  return h("span", { class: "badge sev-" + (severity || "unknown") }, text || severity || "?");
}

function securityPanel(findings) {
  const most = Math.max(1, ...findings.by_severity.map((g) => g.findings));
  const severities = findings.by_severity.map((g) => h("tr", {},
    h("td", {}, severityBadge(g.severity)),
    h("td", { class: "num" }, fmt.int(g.findings)),
    h("td", { class: "bar-cell" }, shareBar(g.findings / most, "sev-" + g.severity)),
    h("td", { class: "num" }, plural(g.calls, "call"))));
  const types = findings.by_type.slice(0, 8).map((g) => h("li", {},
    severityBadge(g.severity), " ", h("span", { class: "finding-type" }, g.type || "?"),
    h("span", { class: "muted" }, ` × ${fmt.int(g.findings)}`)));
  const summary = findings.calls
    ? [h("a", { href: narrowed({ has_findings: "true" }) }, plural(findings.calls, "call")),
      ` with ${plural(findings.findings, "finding")}; `,
    `highest score ${fmt.score(findings.max_score)}`]
    : ["No security findings in this range."];
  return h("section", { class: "breakdown", id: "security" },
    h("h2", {}, "Security"),
    h("p", {}, summary),
    severities.length ? h("table", { class: "groups" }, h("tbody", {}, severities)) : null,
    types.length ? h("ul", { class: "types" }, types) : null,
    h("p", { class: "note", id: "score-note" }, SCORE_NOTE));
}

function findingsCell(call) {
  if (!call.findings_count) return h("td", { class: "num" }, "–");
  return h("td", { class: "num findings", title: SCORE_NOTE },
    severityBadge(call.max_severity, `${call.findings_count} ${call.max_severity || ""}`.trim()),
    call.security_score === null ? null
      : h("span", { class: "score" }, ` ${Math.round(call.security_score)}`));
}

function callRow(call) {
  const failed = call.status_code === "ERROR";
  return h("tr", { class: failed ? "err" : null, "data-span-id": call.span_id },
    h("td", {}, callLink(call.span_id, fmt.time(call.start_time))),
    h("td", {}, call.provider || "–"),
    h("td", {}, call.response_model || call.request_model || "–"),
    h("td", {}, call.tenant_id || "–"),
    h("td", { class: "status", title: failed ? call.status_message : null },
      statusLabel(call), failed && call.status_message && call.status_message !== call.error_type
        ? h("span", { class: "status-message" }, call.status_message) : null),
    h("td", { class: "num" }, fmt.int(call.input_tokens)),
    h("td", { class: "num" }, fmt.int(call.output_tokens)),
    h("td", { class: "num" }, fmt.usd(call.cost_usd)),
    h("td", { class: "num" }, fmt.ms(call.duration_ms)),
    h("td", { class: "num" }, fmt.ms(call.ttft_ms)),
    findingsCell(call));
}

function callsTable(page, filters) {
  const body = h("tbody", {}, page.items.map(callRow));
  const table = h("table", { class: "calls", id: "calls" },
    h("thead", {}, h("tr", {}, ["time (UTC)", "provider", "model", "tenant", "status", "in",
      "out", "cost", "duration", "ttfc", "findings"].map((t) => h("th", {}, t)))), body);
  const more = h("button", { id: "more", type: "button" }, "Load more");
  let cursor = page.next_cursor;
  more.hidden = !cursor;
  more.addEventListener("click", async () => {
    try {
      const next = await api("/api/v1/traces", { ...filters, limit: 50, cursor });
      append(body, next.items.map(callRow));
      cursor = next.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      more.replaceWith(errorBox(error));
    }
  });
  const empty = page.items.length ? null
    : h("p", { class: "empty", id: "empty" }, "No calls match these filters yet.");
  return [h("h2", {}, "Calls"), h("div", { class: "scroll" }, table), empty, more];
}

export async function renderOverview(refresh) {
  const filters = currentFilters();
  const range = rangeOf(filters, Date.now());
  const bucket = bucketFor(range);
  const [page, series, models, tenants, findings] = await Promise.all([
    api("/api/v1/traces", { ...filters, limit: 50 }),
    api("/api/v1/stats", { ...filters, group_by: bucket }),
    api("/api/v1/stats", { ...filters, group_by: "model" }),
    api("/api/v1/stats", { ...filters, group_by: "tenant" }),
    api("/api/v1/findings", filters),
  ]);
  const updated = h("p", { class: "muted updated", id: "updated" },
    `updated ${new Date().toISOString().slice(11, 19)} UTC`,
    refresh ? ` · refreshing every ${refresh}` : "");
  show(filterForm(filters, refresh), updated,
    totalsCards(series.totals, series.percentiles, findings), charts(series, bucket, range),
    h("div", { class: "breakdowns", id: "breakdowns" },
      groupTable("by-model", "By model", "model", models, "model"),
      groupTable("by-tenant", "By tenant", "tenant", tenants, "tenant"),
      securityPanel(findings)),
    callsTable(page, filters));
}
