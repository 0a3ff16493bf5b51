// How values read, the same way in every view. The CLI follows the same rules
// (llmtrace_otel/display.py): a change here belongs there too.

export const SEVERITIES = ["critical", "high", "medium", "low", "info"];

// What the 0-100 llmtrace.security.score means (docs/security.md, "The span score").
export const SCORE_NOTE = "Security score, 0-100: 100 × (1 − Π (1 − weight × confidence)) over "
  + "a call's findings, with weights info 0.1, low 0.3, medium 0.55, high 0.8, critical 1. "
  + "0 = analysed, nothing found; one certain high finding = 80; one certain critical = 100. "
  + "Calls without captured or analysed content have no score.";

const missing = (v) => v === null || v === undefined;

// USD, never in exponent notation: two decimals from $1, three significant digits below.
export function usd(v) {
  if (missing(v) || !Number.isFinite(v)) return "–";
  if (v === 0) return "$0";
  if (v < 0) return "-" + usd(-v);
  if (v >= 1) {
    return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2,
      maximumFractionDigits: 2 });
  }
  if (v < 1e-8) return "<$0.00000001";
  const decimals = Math.max(2, 2 - Math.floor(Math.log10(v)));
  let text = v.toFixed(decimals).replace(/0+$/, "");
  if ((text.split(".")[1] || "").length < 2) text = v.toFixed(2);
  return "$" + text;
}

export const fmt = {
  int: (v) => (missing(v) ? "–" : Number(v).toLocaleString("en-US")),
  ms: (v) => (missing(v) ? "–" : v >= 10000 ? (v / 1000).toFixed(1) + " s"
    : Math.round(v).toLocaleString("en-US") + " ms"),
  usd,
  pct: (v) => (missing(v) ? "–" : (v * 100).toFixed(1) + " %"),
  time: (iso) => (iso ? iso.replace("T", " ").replace("Z", "") : "–"),
  score: (v) => (missing(v) ? "–" : Math.round(Number(v)) + " / 100"),
  confidence: (v) => (missing(v) ? "–" : Number(v).toFixed(2)),
};

// "ok" for every call that did not fail: instrumentation leaves a success's status UNSET.
export function statusLabel(span) {
  return span.status_code === "ERROR" ? `error ${span.error_type || ""}`.trim() : "ok";
}

export function severityRank(severity) {
  const at = SEVERITIES.indexOf(severity);
  return at < 0 ? SEVERITIES.length : at;
}
