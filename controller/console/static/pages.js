// The console's pages: each renders into <main id="page">.
import { call } from "./api.js";
import { t } from "./i18n.js";
import { dashboard as dashboardPage } from "./pages/dashboard.js";
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

async function dashboard(main) {
  const res = await call("GET", "/api/v1/classrooms");
  if (!res.ok) return failed(main, res);
  const list = el("ul");
  list.id = "classrooms";
  for (const room of res.body) {
    const state = room.online ? "online" : "offline";
    const item = el("li", `${room.name || room.id} (${room.school}) — ${t(state)}`, state);
    item.dataset.classroom = room.id;
    list.appendChild(item);
  }
  main.replaceChildren(
    el("h2", t("dashboard.classrooms")),
    res.body.length ? list : el("p", t("dashboard.none")),
  );
}

async function audit(main) {
  const res = await call("GET", "/api/v1/audit?limit=200");
  if (!res.ok) return failed(main, res);
  const rows = res.body.map((r) => [r.ts, r.username, r.role, r.action, r.target, r.remote]);
  const tbl = table(
    ["audit.ts", "audit.user", "audit.role", "audit.action", "audit.target", "audit.remote"],
    rows,
  );
  tbl.id = "audit-table";
  main.replaceChildren(el("h2", t("nav.audit")), rows.length ? tbl : el("p", t("audit.none")));
}

function later(name) {
  return async (main) => main.replaceChildren(el("h2", t(`nav.${name}`)), el("p", t("later")));
}

export const PAGES = {
  dashboard: dashboardPage,
  timetable,
  floor: (main) => import("./pages/floor.js").then((m) => m.floor(main)),
  patrol: (main) => import("./pages/patrol.js").then((m) => m.patrol(main)),
  classrooms: (main) => import("./pages/classrooms.js").then((m) => m.classrooms(main)),
  recordings: (main) => import("./pages/recordings.js").then((m) => m.recordings(main)),
  library: (main) => import("./pages/library.js").then((m) => m.library(main)),
  reports: (main) => import("./pages/reports.js").then((m) => m.reports(main)),
  notify: (main) => import("./pages/notify.js").then((m) => m.notify(main)),
  releases: (main) => import("./pages/releases.js").then((m) => m.releases(main)),
  emergency: (main) => import("./pages/emergency.js").then((m) => m.emergency(main)),
  audit,
};
