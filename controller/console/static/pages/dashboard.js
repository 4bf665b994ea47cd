// The dashboard: lessons live now and next today, classroom agents, and alerts from the
// agents' heartbeats (acknowledge or silence them, if the role may).
import { call } from "../api.js";
import { t } from "../i18n.js";
import { current, el, errorText, hhmm, loading, ready, table, tf, useStyles } from "./dom.js";

const SILENCE_HOURS = [1, 2, 4, 8, 24, 72];

/** "5 min", "2 h 3 min", "1 d 4 h" for a number of seconds. */
function age(seconds) {
  if (seconds < 60) return tf("age.s", { n: seconds });
  const m = Math.floor(seconds / 60);
  if (m < 60) return tf("age.m", { n: m });
  const h = Math.floor(m / 60);
  if (h < 24) return tf("age.h", { h, m: m % 60 });
  return tf("age.d", { d: Math.floor(h / 24), h: h % 24 });
}

function kindLabel(kind) {
  const key = `alert.kind.${kind}`;
  const word = t(key);
  return word === key ? kind : word;
}

function lessonRows(lessons) {
  return lessons.map((x) => [
    `${hhmm(x.start_at)}–${hhmm(x.end_at)}`,
    x.title || x.subject || x.kind,
    x.lead_name,
    x.receivers.join(", "),
    x.state,
  ]);
}

function lessonSection(titleKey, lessons, noneKey, id, main) {
  const headers = ["dash.time", "dash.lesson", "dash.lead", "dash.receivers", "dash.state"];
  let rows = lessonRows(lessons);
  if (main) {
    // Live lessons open the floor panel (课堂互动): call on a receiving room.
    headers.push("nav.floor");
    rows = rows.map((row, i) => {
      const open = el("button", t("nav.floor"), "open-floor");
      open.type = "button";
      open.dataset.lesson = lessons[i].id;
      open.addEventListener("click", () =>
        import("./floor.js").then((m) => m.floorOf(main, lessons[i].id)),
      );
      return [...row, open];
    });
  }
  return [el("h2", t(titleKey)), lessons.length ? table(headers, rows, id) : el("p", t(noneKey))];
}

function agentsSection(agents) {
  const list = el("ul");
  list.id = "classrooms";
  for (const room of agents.classrooms) {
    const state = room.online ? "online" : "offline";
    const item = el("li", `${room.name || room.id} (${room.school}) — ${t(state)}`, state);
    item.dataset.classroom = room.id;
    list.appendChild(item);
  }
  return [
    el("h2", t("dash.agents")),
    el("p", tf("dash.agents_summary", agents), "agents-summary"),
    agents.classrooms.length ? list : el("p", t("dashboard.none")),
  ];
}

function status(alert) {
  const parts = [];
  if (alert.acknowledged_by) parts.push(tf("dash.acked_by", { who: alert.acknowledged_by }));
  if (alert.silenced) {
    parts.push(tf("dash.silenced_until", { until: new Date(alert.silenced_until).toLocaleString() }));
  }
  return parts.join("; ") || t("dash.new");
}

function actions(alert, rerender, message) {
  const box = el("span", undefined, "alert-actions");
  const ack = el("button", t("dash.ack"));
  ack.type = "button";
  ack.className = "ack";
  ack.disabled = Boolean(alert.acknowledged_by);
  ack.addEventListener("click", async () => {
    const res = await call("POST", `/api/v1/alerts/${alert.id}/ack`);
    if (res.ok) await rerender();
    else message.textContent = errorText(res);
  });
  const hours = el("select");
  hours.className = "silence-hours";
  hours.setAttribute("aria-label", t("dash.hours"));
  for (const n of SILENCE_HOURS) {
    const opt = el("option", `${n} ${t("dash.hours")}`);
    opt.value = String(n);
    hours.appendChild(opt);
  }
  const silence = el("button", t("dash.silence"));
  silence.type = "button";
  silence.className = "silence";
  silence.addEventListener("click", async () => {
    const res = await call("POST", `/api/v1/alerts/${alert.id}/silence`, {
      hours: Number(hours.value),
    });
    if (res.ok) await rerender();
    else message.textContent = errorText(res);
  });
  box.append(ack, " ", hours, " ", silence);
  return box;
}

function alertsSection(doc, rerender) {
  const message = el("p", "", "error");
  message.id = "alert-error";
  const headers = ["dash.classroom", "dash.alert", "dash.message", "dash.age", "dash.status"];
  if (doc.can_act) headers.push("dash.actions");
  const rows = doc.alerts.map((a) => {
    const since = el("span", age(a.age_s));
    since.title = new Date(a.first_seen).toLocaleString();
    const row = [a.classroom_name, kindLabel(a.kind), a.message, since, status(a)];
    if (doc.can_act) row.push(actions(a, rerender, message));
    return row;
  });
  const tbl = table(headers, rows, "alerts");
  doc.alerts.forEach((a, i) => {
    const tr = tbl.tBodies[0].rows[i];
    tr.dataset.alert = String(a.id);
    tr.dataset.key = a.key;
    tr.dataset.classroom = a.classroom;
    if (a.silenced) tr.classList.add("silenced");
    else if (!a.acknowledged_by) tr.classList.add("unacknowledged");
  });
  return [el("h2", t("dash.alerts")), doc.alerts.length ? tbl : el("p", t("dash.no_alerts")), message];
}

/** A bar of `value` against `limit` (the school's uplink), red when over. */
function meter(value, limit) {
  const bar = el("span", `${Math.round(value)} kbps`, "meter");
  if (limit > 0) {
    const pct = Math.min(100, Math.round((100 * value) / limit));
    bar.dataset.pct = String(pct);
    if (value > limit) bar.classList.add("over");
  }
  return bar;
}

/** Each school's uplink: planned (booked lessons under way) against measured (agents). */
function bandwidthSection(doc) {
  const rows = (doc?.schools ?? []).map((s) => [
    s.school || "—",
    s.uplink_kbps ? `${s.uplink_kbps} kbps` : t("dash.uplink_unknown"),
    meter(s.planned_kbps, s.uplink_kbps),
    meter(s.measured_kbps, s.uplink_kbps),
  ]);
  const tbl = table(
    ["dash.school", "dash.uplink", "dash.planned", "dash.measured"],
    rows,
    "bandwidth",
  );
  return [el("h2", t("dash.bandwidth")), rows.length ? tbl : el("p", t("dash.no_schools"))];
}

/** A line when alert channels fail (nobody would be told), with a way to the page. */
function notifySection(doc) {
  const failing = doc.notify?.failing ?? 0;
  if (!failing) return [];
  const line = el("p", `${tf("nt.n_failing", { n: failing })} `, "error");
  line.id = "notify-failing";
  const open = el("button", t("nav.notify"), "link");
  open.type = "button";
  open.addEventListener("click", () => document.querySelector("nav [data-page='notify']")?.click());
  line.appendChild(open);
  return [line];
}

/** Render the dashboard into `main`. */
export async function dashboard(main) {
  const token = loading();
  useStyles();
  const rerender = () => dashboard(main);
  const [res, bw] = await Promise.all([
    call("GET", "/api/v1/dashboard"),
    call("GET", "/api/v1/bandwidth"),
  ]);
  if (!current(token)) return; // the person has moved on
  if (!res.ok) {
    main.replaceChildren(el("p", errorText(res), "error"));
    ready();
    return;
  }
  const doc = res.body;
  const refresh = el("button", t("dash.refresh"));
  refresh.type = "button";
  refresh.id = "dashboard-refresh";
  refresh.addEventListener("click", rerender);
  const page = el("div");
  page.id = "dashboard";
  page.append(
    refresh,
    ...notifySection(doc),
    ...alertsSection(doc, rerender),
    ...lessonSection("dash.live", doc.live, "dash.none_live", "live-lessons", main),
    ...lessonSection("dash.next", doc.next, "dash.none_next", "next-lessons"),
    ...agentsSection(doc.agents),
    ...(bw.ok ? bandwidthSection(bw.body) : []),
  );
  main.replaceChildren(page);
  ready();
}
