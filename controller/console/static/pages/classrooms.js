// Classrooms: the inventory (GET /api/v1/classrooms: school, agent version, online,
// hardware and network profile, device states from the latest heartbeat) and, per
// classroom, a detail view with its health history as SVG charts
// (GET /api/v1/classrooms/{id}/health?hours=).
import { call } from "../api.js";
import { t } from "../i18n.js";
import { current, el, errorText, loading, ready, table, tf } from "./dom.js";
import { actionsPanel } from "./actions.js";
import { healthChart } from "./health_chart.js";

const HOURS = [1, 6, 24, 72, 168];
const CHARTS = [
  { field: "cpu", title: "cr.chart.cpu", unit: "%", min: 0, max: 100 },
  { field: "temp", title: "cr.chart.temp", unit: "°C" },
  { field: "audio_dbfs", title: "cr.chart.audio", unit: "dBFS", min: -90, max: 0 },
  { field: "send_kbps", title: "cr.chart.bitrate", unit: "kbps", min: 0 },
  { field: "rtt_ms", title: "cr.chart.rtt", unit: "ms", min: 0 },
  { field: "mem", title: "cr.chart.mem", unit: "%", min: 0, max: 100 },
];
let hours = 6;

/** Load pages/classrooms.css once (a same-origin stylesheet, as the CSP asks). */
function useClassroomStyles() {
  if (document.getElementById("classrooms-css")) return;
  const link = document.createElement("link");
  link.id = "classrooms-css";
  link.rel = "stylesheet";
  link.href = "/console/pages/classrooms.css";
  document.head.appendChild(link);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : t("cr.never");
}

function onlineBadge(room) {
  const state = room.online ? "online" : "offline";
  return el("span", t(state), `cr-state ${state}`);
}

function networkProfile(room) {
  const np = room.network_profile ?? {};
  if (!np.name) return t("cr.np.none");
  return `${np.name} (${t(`cr.np.${np.from}`)})`;
}

/** Device states as small chips: name and state, the detail as tooltip. */
function devices(room) {
  const box = el("span", undefined, "cr-devices");
  const entries = Object.entries(room.devices ?? {});
  if (!entries.length) return el("span", t("cr.no_devices"), "cr-muted");
  for (const [name, dev] of entries) {
    const chip = el("span", `${name}: ${t(`cr.dev.${dev.state}`)}`, `cr-chip dev-${dev.state}`);
    if (dev.detail) chip.title = dev.detail;
    box.appendChild(chip);
  }
  return box;
}

function nameButton(main, room) {
  const b = el("button", room.name || room.id, "link");
  b.type = "button";
  b.dataset.classroom = room.id;
  b.addEventListener("click", () => detail(main, room.id));
  return b;
}

/** The inventory: every classroom, one row each. */
export async function classrooms(main) {
  const token = loading();
  useClassroomStyles();
  const res = await call("GET", "/api/v1/classrooms");
  if (!current(token)) return; // the person has moved on
  if (!res.ok) {
    main.replaceChildren(el("p", errorText(res), "error"));
    ready();
    return;
  }
  const rows = res.body.map((room) => [
    nameButton(main, room),
    room.school,
    onlineBadge(room),
    room.agent_version || "—",
    room.profile || "—",
    networkProfile(room),
    devices(room),
    when(room.last_seen_at),
  ]);
  const tbl = table(
    [
      "cr.name",
      "cr.school",
      "cr.online",
      "cr.agent",
      "cr.profile",
      "cr.network",
      "cr.devices",
      "cr.last_seen",
    ],
    rows,
    "classroom-inventory",
  );
  tbl.querySelectorAll("tbody tr").forEach((tr, i) => {
    tr.dataset.classroom = res.body[i].id;
  });
  main.replaceChildren(
    el("h2", t("cr.title")),
    rows.length ? tbl : el("p", t("dashboard.none")),
  );
  ready();
}

function facts(room) {
  const dl = el("dl", undefined, "cr-facts");
  const add = (key, value) => {
    dl.appendChild(el("dt", t(key)));
    const dd = el("dd");
    if (value instanceof Node) dd.appendChild(value);
    else dd.textContent = value;
    dl.appendChild(dd);
  };
  const h = room.health ?? {};
  add("cr.school", room.school);
  add("cr.online", onlineBadge(room));
  add("cr.agent", room.agent_version || "—");
  add("cr.profile", room.profile || "—");
  add("cr.network", networkProfile(room));
  add("cr.last_seen", when(room.last_seen_at));
  if (h.disk_pct !== undefined) add("cr.disk", `${Number(h.disk_pct).toFixed(0)}%`);
  if (h.clock_offset_ms !== undefined && h.clock_offset_ms !== null) {
    add("cr.clock", `${Number(h.clock_offset_ms).toFixed(0)} ms`);
  }
  return dl;
}

function hoursPicker(main, id) {
  const label = el("label", t("cr.hours"), "cr-hours");
  const select = el("select");
  select.id = "cr-hours";
  for (const h of HOURS) {
    const opt = el("option", tf("cr.hours_n", { n: h }));
    opt.value = String(h);
    opt.selected = h === hours;
    select.appendChild(opt);
  }
  select.addEventListener("change", () => {
    hours = Number(select.value);
    detail(main, id);
  });
  label.appendChild(select);
  return label;
}

function charts(doc) {
  const box = el("div", undefined, "cr-charts");
  box.id = "health-charts";
  for (const c of CHARTS) {
    const fig = el("figure", undefined, "cr-figure");
    fig.appendChild(el("figcaption", t(c.title)));
    fig.appendChild(
      healthChart(doc.samples, c.field, doc.since, doc.now, {
        title: t(c.title),
        unit: c.unit,
        min: c.min,
        max: c.max,
        everyS: doc.every_s,
        empty: t("cr.no_samples"),
      }),
    );
    box.appendChild(fig);
  }
  return box;
}

/** One classroom: its facts, devices and health charts over the chosen hours. */
export async function detail(main, id) {
  const token = loading();
  useClassroomStyles();
  const enc = encodeURIComponent(id);
  const [room, health] = await Promise.all([
    call("GET", `/api/v1/classrooms/${enc}`),
    call("GET", `/api/v1/classrooms/${enc}/health?hours=${hours}`),
  ]);
  if (!current(token)) return; // back to the list, or elsewhere, while this loaded
  const back = el("button", t("cr.back"), "link");
  back.type = "button";
  back.id = "cr-back";
  back.addEventListener("click", () => classrooms(main));
  if (!room.ok || !health.ok) {
    main.replaceChildren(back, el("p", errorText(room.ok ? health : room), "error"));
    ready();
    return;
  }
  const r = room.body;
  const view = el("section");
  view.id = "classroom-detail";
  view.dataset.classroom = r.id;
  view.append(
    back,
    el("h2", `${r.name || r.id} (${r.id})`),
    facts(r),
    el("h3", t("cr.devices")),
    devices(r),
    ...actionsPanel(r),
    el("h3", t("cr.history")),
    hoursPicker(main, id),
    el("p", tf("cr.samples", { n: health.body.samples.length }), "cr-muted"),
    charts(health.body),
  );
  main.replaceChildren(view);
  ready();
}
