// The console's pages: each renders into <main id="page">.
import { call } from "./api.js";
import { t } from "./i18n.js";
import { dashboard } from "./pages/dashboard.js";
import { current, loading, ready } from "./pages/dom.js";
import { timetable } from "./pages/timetable.js";

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function table(headers, rows) {
  const tbl = el("table");
  const head = tbl.createTHead().insertRow();
  for (const h of headers) head.appendChild(el("th", t(h)));
  const body = tbl.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const cell of row) tr.appendChild(el("td", cell));
  }
  return tbl;
}

function failed(main, res) {
  main.replaceChildren(el("p", `${t("error")}: ${res.body?.error ?? res.status}`, "error"));
}

async function audit(main) {
  const token = loading();
  const res = await call("GET", "/api/v1/audit?limit=200");
  if (!current(token)) return; // the person has moved on
  ready();
  if (!res.ok) return failed(main, res);
  const rows = res.body.map((r) => [r.ts, r.username, r.role, r.action, r.target, r.remote]);
  const tbl = table(
    ["audit.ts", "audit.user", "audit.role", "audit.action", "audit.target", "audit.remote"],
    rows,
  );
  tbl.id = "audit-table";
  main.replaceChildren(el("h2", t("nav.audit")), rows.length ? tbl : el("p", t("audit.none")));
}

/** A page whose module loads on first use. A person who moves on while it loads does
 * not get it afterwards: its render is skipped when the module arrives late. */
function lazy(load, name) {
  return async (main) => {
    const token = loading();
    const module = await load();
    if (current(token)) await module[name](main);
  };
}

export const PAGES = {
  dashboard,
  timetable,
  floor: lazy(() => import("./pages/floor.js"), "floor"),
  patrol: lazy(() => import("./pages/patrol.js"), "patrol"),
  classrooms: lazy(() => import("./pages/classrooms.js"), "classrooms"),
  recordings: lazy(() => import("./pages/recordings.js"), "recordings"),
  library: lazy(() => import("./pages/library.js"), "library"),
  reports: lazy(() => import("./pages/reports.js"), "reports"),
  notify: lazy(() => import("./pages/notify.js"), "notify"),
  releases: lazy(() => import("./pages/releases.js"), "releases"),
  emergency: lazy(() => import("./pages/emergency.js"), "emergency"),
  audit,
};
