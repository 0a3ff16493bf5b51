// Time charts over the selected range (not over the data): the x axis runs from the range's
// start to its end, one slot per time bucket, empty buckets drawn as zero (bars) or as a gap
// (lines). Inline SVG; sizes are attributes, never inline styles (the CSP forbids them).

import { h, svg } from "./dom.js";
import { fmt } from "./format.js";

const STEP = { minute: 60e3, hour: 3600e3, day: 86400e3 };
const DURATION = /^(\d+(?:\.\d+)?)([smhdw])$/;
const SECONDS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const MAX_SLOTS = 2000;

// A filter time (RFC 3339, a bare date, or a duration before now) in ms since the epoch.
function instant(text, now) {
  const match = DURATION.exec(text);
  if (match) return now - Number(match[1]) * SECONDS[match[2]] * 1000;
  // No zone means UTC to the API (and to the listing, which shows UTC).
  const zoned = /([zZ]|[+-]\d\d:?\d\d)$/.test(text) || /^\d{4}-\d\d-\d\d$/.test(text)
    ? text : text + "Z";
  const ms = Date.parse(zoned);
  return Number.isNaN(ms) ? null : ms;
}

// {start, end} of the selected range in ms; start is null for "all time".
export function rangeOf(filters, now) {
  const end = (filters.until && instant(filters.until, now)) || now;
  const start = filters.since ? instant(filters.since, now) : null;
  return { start, end };
}

// The stats grouping for a range: minutes up to 2 h, hours up to 3 days, else days.
export function bucketFor(range) {
  if (range.start === null) return "day";
  const span = range.end - range.start;
  if (span <= 2 * 3600e3) return "minute";
  if (span <= 3 * 86400e3) return "hour";
  return "day";
}

const floorTo = (ms, step) => Math.floor(ms / step) * step;
const keyOf = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");

// One slot per bucket from the range's start to its end (for "all time": from the first
// bucket with calls), each the API's group for that bucket or an empty one.
export function slots(groups, bucket, range) {
  const step = STEP[bucket];
  const byTime = new Map(groups.map((g) => [Date.parse(g.key), g]));
  const first = range.start !== null ? range.start
    : groups.length ? Date.parse(groups[0].key) : range.end - 30 * step;
  const out = [];
  for (let t = floorTo(first, step); t <= range.end && out.length < MAX_SLOTS; t += step) {
    out.push(byTime.get(t) || { key: keyOf(t), calls: 0, input_tokens: 0, output_tokens: 0,
      cost_usd: 0, latency_p50_ms: null, latency_p95_ms: null, empty: true });
  }
  return out;
}

function tickLabel(ms, bucket) {
  const iso = new Date(ms).toISOString();
  if (bucket === "day") return iso.slice(0, 10);
  if (bucket === "hour") return iso.slice(5, 10) + " " + iso.slice(11, 16);
  return iso.slice(11, 16);
}

export function chart(id, title, data, series, format, bucket, range) {
  const width = 320, height = 130, pad = 4, top = 18, base = height - 18;
  const values = data.flatMap((g) => series.map((s) => s.value(g))).filter((v) => v !== null);
  const max = Math.max(1e-12, ...values);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart" });
  root.append(svg("title", {}, title));
  root.append(svg("line", { x1: pad, y1: base, x2: width - pad, y2: base, class: "axis" }));
  const n = Math.max(data.length, 1);
  const slot = (width - 2 * pad) / n;
  const x = (i) => pad + i * slot + slot / 2;
  const y = (v) => base - (v / max) * (base - top);
  series.forEach((s, index) => {
    if (s.kind === "bar") {
      data.forEach((g, i) => {
        const v = s.value(g) || 0;
        if (!v) return;
        const bar = svg("rect", { x: pad + i * slot + slot * 0.1, width: Math.max(slot * 0.8, 1),
          y: y(v), height: base - y(v), class: "bar s" + index });
        bar.append(svg("title", {}, `${fmt.time(g.key)}: ${format(v)}`));
        root.append(bar);
      });
      return;
    }
    // Lines join neighbouring buckets that both have a value; a lone value is a dot.
    let run = [];
    const flush = () => {
      if (run.length > 1) root.append(svg("polyline", { points: run.join(" "),
        class: "line s" + index }));
      run = [];
    };
    data.forEach((g, i) => {
      const v = s.value(g);
      if (v === null || v === undefined) { flush(); return; }
      run.push(`${x(i)},${y(v)}`);
      const dot = svg("circle", { cx: x(i), cy: y(v), r: 2, class: "dot s" + index });
      dot.append(svg("title", {}, `${s.label} ${fmt.time(g.key)}: ${format(v)}`));
      root.append(dot);
    });
    flush();
  });
  const first = data.length ? Date.parse(data[0].key) : range.end;
  const ticks = [[pad, first, ""], [width / 2, (first + range.end) / 2, " middle"],
    [width - pad, range.end, " end"]];
  for (const [at, ms, align] of ticks) {
    root.append(svg("text", { x: at, y: height - 4, class: "tick" + align },
      tickLabel(ms, bucket)));
  }
  root.append(svg("text", { x: width - pad, y: 12, class: "tick end" }, "max " + format(max)));
  const legend = series.length > 1 ? h("span", { class: "legend" }, series.map((s, i) =>
    h("span", { class: "key s" + i }, s.label))) : null;
  return h("figure", { class: "chart-box", id }, h("figcaption", {}, title, legend), root);
}

// A horizontal share bar (0..1) for the breakdown tables.
export function shareBar(share, className) {
  const root = svg("svg", { viewBox: "0 0 100 8", class: "share", "aria-hidden": "true" });
  root.append(svg("rect", { x: 0, y: 0, width: 100, height: 8, class: "track" }));
  root.append(svg("rect", { x: 0, y: 0, width: Math.max(share * 100, share > 0 ? 1 : 0),
    height: 8, class: "fill " + (className || "") }));
  return root;
}
