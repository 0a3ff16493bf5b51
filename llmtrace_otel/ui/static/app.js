// llmtrace-otel trace viewer: routes a path to its view and runs the auto-refresh. ES modules
// from this directory only (the CSP allows nothing else); no framework, no CDN.

import { guarded } from "./api.js";
import { renderCall } from "./call.js";
import { REFRESH, renderOverview } from "./overview.js";

const PERIOD = { "10s": 10e3, "30s": 30e3, "60s": 60e3 };
let timer = null;

function refreshSetting() {
  const value = new URLSearchParams(window.location.search).get("refresh") || "";
  return REFRESH.some(([option]) => option === value) ? value : "";
}

// Re-render the overview every period while the tab is visible and nobody is typing in the
// filters; a hidden tab refreshes when it is shown again.
function schedule(refresh) {
  window.clearTimeout(timer);
  if (!refresh) return;
  timer = window.setTimeout(async () => {
    const typing = document.activeElement && document.activeElement.closest("#filters");
    if (document.hidden || typing) { schedule(refresh); return; }
    if (await guarded(() => renderOverview(refresh))) schedule(refresh);
  }, PERIOD[refresh]);
}

async function route() {
  const match = /^\/ui\/calls\/([^/]+)$/.exec(window.location.pathname);
  if (match) {
    await guarded(() => renderCall(decodeURIComponent(match[1])));
    return;
  }
  const refresh = refreshSetting();
  if (await guarded(() => renderOverview(refresh))) schedule(refresh);
}

document.addEventListener("visibilitychange", () => {
  const refresh = refreshSetting();
  if (!document.hidden && refresh && !/^\/ui\/calls\//.test(window.location.pathname)) {
    window.clearTimeout(timer);
    guarded(() => renderOverview(refresh)).then((ok) => { if (ok) schedule(refresh); });
  }
});
route();
