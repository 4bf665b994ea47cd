// Alert notifications (告警通知): who is told of alerts, per school or for the county
// (GET/POST /api/v1/notify/subscriptions, PATCH/DELETE .../{id}, POST .../{id}/test), and
// each channel's health (GET /api/v1/notify/status). Secrets never come back from the
// API: editing leaves a webhook, signing secret or password as it is unless typed again.
// A school account sees and sets only its own school's; the API enforces it.
import { call } from "../api.js";
import { t } from "../i18n.js";
import { current, el, errorText, loading, ready, table, tf } from "./dom.js";

const CHANNELS = ["dingtalk", "wecom", "email"];
const SEVERITIES = ["info", "warning", "critical"];
// Config fields by channel: [name, input type, secret?]
const CONFIG = {
  dingtalk: [
    ["webhook", "url", true],
    ["secret", "password", true],
  ],
  wecom: [
    ["webhook", "url", true],
    ["msgtype", "select", false],
  ],
  email: [
    ["host", "text", false],
    ["port", "number", false],
    ["security", "select", false],
    ["from", "email", false],
    ["to", "text", false],
    ["username", "text", false],
    ["password", "password", true],
  ],
};
const CHOICES = { msgtype: ["markdown", "text"], security: ["starttls", "tls", "none"] };
const MAY_CHANGE = ["admin", "scheduler", "technician"];

function useNotifyStyles() {
  if (document.getElementById("notify-css")) return;
  const link = document.createElement("link");
  link.id = "notify-css";
  link.rel = "stylesheet";
  link.href = "/console/pages/notify.css";
  document.head.appendChild(link);
}

function role() {
  return document.getElementById("user-role")?.dataset.role ?? "";
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** Where the messages go, without the secret (the API masks it already). */
function target(sub) {
  const c = sub.config ?? {};
  if (sub.channel === "email") return `${(c.to ?? []).join(", ")} (${c.host}:${c.port})`;
  const signed = sub.channel === "dingtalk" && c.secret_set ? ` ${t("nt.signed")}` : "";
  return `${c.webhook ?? ""}${signed}`;
}

function scopeText(school) {
  return school ?? t("nt.county");
}

function quiet(sub) {
  return sub.quiet_hours ? `${sub.quiet_hours.start}–${sub.quiet_hours.end}` : "—";
}

function escalation(sub) {
  return sub.escalation ? tf("nt.escalate_after", { n: sub.escalate_after_minutes }) : "—";
}

function stateCell(c) {
  if (!c.failing) return el("span", t("nt.ok"), "nt-ok");
  return el("span", tf("nt.failing_since", { t: when(c.failing_since) }), "nt-failing");
}

function statusSection(doc) {
  const rows = doc.channels.map((c) => [
    c.name,
    scopeText(c.school),
    t(`nt.ch.${c.channel}`),
    stateCell(c),
    c.last_error ?? "—",
    when(c.last_sent_at),
    String(c.pending),
  ]);
  const tbl = table(
    [
      "nt.name",
      "nt.scope",
      "nt.channel",
      "nt.state",
      "nt.last_error",
      "nt.last_sent",
      "nt.pending",
    ],
    rows,
    "notify-status",
  );
  tbl.querySelectorAll("tbody tr").forEach((tr, i) => {
    tr.dataset.sub = String(doc.channels[i].id);
    if (doc.channels[i].failing) tr.classList.add("failing");
  });
  const summary = doc.failing
    ? el("p", tf("nt.n_failing", { n: doc.failing }), "nt-failing")
    : el("p", t("nt.all_ok"), "nt-ok");
  summary.id = "notify-summary";
  return [el("h3", t("nt.status")), summary, doc.channels.length ? tbl : el("p", t("nt.none"))];
}

function labelled(key, input) {
  const label = el("label");
  label.append(el("span", t(key)), input);
  return label;
}

function input(id, type, value) {
  const node = el("input");
  node.id = id;
  node.type = type;
  if (value !== undefined && value !== null) node.value = String(value);
  return node;
}

function select(id, options, value, label = (o) => o) {
  const node = el("select");
  node.id = id;
  for (const o of options) node.appendChild(new Option(label(o), o, false, o === value));
  return node;
}

/** The add/edit form; `sub` is the subscription edited, or null to add one. */
function form(main, session, schools, sub) {
  const box = el("form", undefined, "nt-form");
  box.id = "notify-form";
  box.dataset.mode = sub ? "edit" : "add";
  const error = el("p", "", "error");
  error.id = "notify-form-error";
  error.setAttribute("role", "alert");
  const name = input("nt-name", "text", sub?.name ?? "");
  name.required = true;
  name.maxLength = 100;
  // A school account: its school only. The county: any school, or the whole county.
  const scopes = session.school ? [session.school] : ["", ...schools];
  const school = select("nt-school", scopes, sub ? (sub.school ?? "") : scopes[0], (s) =>
    s === "" ? t("nt.county") : s,
  );
  school.disabled = Boolean(session.school);
  const channel = select("nt-channel", CHANNELS, sub?.channel ?? "dingtalk", (c) =>
    t(`nt.ch.${c}`),
  );
  const fields = el("fieldset", undefined, "nt-config");
  const drawConfig = () => {
    const kind = channel.value;
    const same = sub && sub.channel === kind;
    const have = same ? (sub.config ?? {}) : {};
    fields.replaceChildren(el("legend", t(`nt.ch.${kind}`)));
    for (const [key, type, secret] of CONFIG[kind]) {
      let node;
      if (type === "select") node = select(`nt-cfg-${key}`, CHOICES[key], have[key]);
      else {
        const shown = key === "to" ? (have.to ?? []).join(", ") : have[key];
        node = input(`nt-cfg-${key}`, type, secret ? "" : shown);
        if (secret && same) node.placeholder = t("nt.keep_secret");
        if (key === "webhook" && same && have.webhook) {
          node.placeholder = `${have.webhook} — ${t("nt.keep_secret")}`;
        }
        if (key === "port" && !same) node.value = "25";
        if (key === "secret") node.placeholder ||= "SEC…";
        if (key === "to") node.placeholder = "a@school.cn, b@school.cn";
      }
      node.dataset.key = key;
      node.dataset.secret = String(secret);
      fields.appendChild(labelled(`nt.cfg.${key}`, node));
    }
  };
  channel.addEventListener("change", drawConfig);
  drawConfig();
  const severity = select("nt-severity", SEVERITIES, sub?.min_severity ?? "warning", (s) =>
    t(`nt.sev.${s}`),
  );
  const qStart = input("nt-quiet-start", "text", sub?.quiet_hours?.start ?? "");
  const qEnd = input("nt-quiet-end", "text", sub?.quiet_hours?.end ?? "");
  qStart.placeholder = "22:00";
  qEnd.placeholder = "07:00";
  const esc = input("nt-escalation", "checkbox");
  esc.checked = Boolean(sub?.escalation);
  const escAfter = input("nt-escalate-after", "number", sub?.escalate_after_minutes ?? 15);
  const holdDown = input("nt-hold-down", "number", sub?.hold_down_minutes ?? 10);
  const save = el("button", t(sub ? "nt.save" : "nt.add"));
  save.type = "submit";
  save.id = "nt-save";
  const cancel = el("button", t("nt.cancel"));
  cancel.type = "button";
  cancel.id = "nt-cancel";
  cancel.addEventListener("click", () => notify(main));

  const body = () => {
    const kind = channel.value;
    const config = {};
    for (const node of fields.querySelectorAll("[data-key]")) {
      const key = node.dataset.key;
      let value = node.value.trim();
      if (node.dataset.secret === "true" && value === "" && sub && sub.channel === kind) continue;
      if (key === "port") value = Number(value);
      else if (key === "to") value = value.split(/[,;\s]+/).filter(Boolean);
      else if (value === "" && ["username", "password", "secret"].includes(key)) continue;
      config[key] = value;
    }
    const out = {
      name: name.value.trim(),
      school: school.value === "" ? null : school.value,
      channel: kind,
      min_severity: severity.value,
      quiet_hours:
        qStart.value.trim() || qEnd.value.trim()
          ? { start: qStart.value.trim(), end: qEnd.value.trim() }
          : null,
      escalation: esc.checked,
      escalate_after_minutes: Number(escAfter.value),
      hold_down_minutes: Number(holdDown.value),
    };
    if (!sub || Object.keys(config).length || sub.channel !== kind) out.config = config;
    return out;
  };
  box.addEventListener("submit", async (event) => {
    event.preventDefault();
    save.disabled = true;
    const res = sub
      ? await call("PATCH", `/api/v1/notify/subscriptions/${sub.id}`, body())
      : await call("POST", "/api/v1/notify/subscriptions", body());
    save.disabled = false;
    if (!res.ok) {
      error.textContent = errorText(res);
      return;
    }
    notify(main, t(sub ? "nt.saved" : "nt.added"));
  });
  const timing = el("div", undefined, "nt-row");
  timing.append(
    labelled("nt.quiet_start", qStart),
    labelled("nt.quiet_end", qEnd),
    labelled("nt.hold_down", holdDown),
  );
  const escRow = el("div", undefined, "nt-row");
  escRow.append(labelled("nt.escalation", esc), labelled("nt.escalate_minutes", escAfter));
  const buttons = el("div", undefined, "dialog-buttons");
  buttons.append(cancel, save);
  box.append(
    el("h3", sub ? tf("nt.edit_title", { name: sub.name }) : t("nt.add_title")),
    labelled("nt.name", name),
    labelled("nt.scope", school),
    labelled("nt.channel", channel),
    fields,
    labelled("nt.min_severity", severity),
    timing,
    el("p", t("nt.quiet_note"), "cr-muted"),
    escRow,
    error,
    buttons,
  );
  return box;
}

function actionButton(key, cls, sub, onClick) {
  const b = el("button", t(key), cls);
  b.type = "button";
  b.dataset.sub = String(sub.id);
  b.addEventListener("click", () => onClick(sub, b));
  return b;
}

function subscriptionsSection(main, session, schools, subs, message) {
  const may = MAY_CHANGE.includes(role());
  const note = el("p", message ?? "", "nt-message");
  note.id = "notify-message";
  note.setAttribute("role", "status");
  const test = async (sub, b) => {
    b.disabled = true;
    note.textContent = t("nt.testing");
    const res = await call("POST", `/api/v1/notify/subscriptions/${sub.id}/test`);
    b.disabled = false;
    if (res.ok && res.body.delivered) notify(main, tf("nt.test_sent", { name: sub.name }));
    else {
      const why = res.ok ? res.body.error : errorText(res);
      notify(main, `${tf("nt.test_failed", { name: sub.name })} ${why}`);
    }
  };
  const remove = async (sub) => {
    if (!window.confirm(tf("nt.delete_confirm", { name: sub.name }))) return;
    const res = await call("DELETE", `/api/v1/notify/subscriptions/${sub.id}`);
    notify(main, res.ok ? tf("nt.deleted", { name: sub.name }) : errorText(res));
  };
  const edit = (sub) => {
    const box = main.querySelector("#notify-form-box");
    box.replaceChildren(form(main, session, schools, sub));
    box.querySelector("#nt-name").focus();
  };
  const headers = [
    "nt.name",
    "nt.scope",
    "nt.channel",
    "nt.target",
    "nt.min_severity",
    "nt.quiet",
    "nt.escalation",
  ];
  if (may) headers.push("nt.actions");
  const rows = subs.map((sub) => {
    const row = [
      sub.name,
      scopeText(sub.school),
      t(`nt.ch.${sub.channel}`),
      target(sub),
      t(`nt.sev.${sub.min_severity}`),
      quiet(sub),
      escalation(sub),
    ];
    if (may) {
      const cell = el("span", undefined, "nt-actions");
      cell.append(
        actionButton("nt.edit", "nt-edit", sub, edit),
        actionButton("nt.test", "nt-test", sub, test),
        actionButton("nt.delete", "nt-delete", sub, remove),
      );
      row.push(cell);
    }
    return row;
  });
  const tbl = table(headers, rows, "notify-subs");
  tbl.querySelectorAll("tbody tr").forEach((tr, i) => {
    tr.dataset.sub = String(subs[i].id);
  });
  const out = [el("h3", t("nt.subscriptions")), note, subs.length ? tbl : el("p", t("nt.none"))];
  const formBox = el("div");
  formBox.id = "notify-form-box";
  if (may) {
    const add = el("button", t("nt.add_title"));
    add.type = "button";
    add.id = "nt-new";
    add.addEventListener("click", () => {
      formBox.replaceChildren(form(main, session, schools, null));
      formBox.querySelector("#nt-name").focus();
    });
    out.push(add);
  } else {
    out.push(el("p", t("nt.readonly"), "readonly-note"));
  }
  out.push(formBox);
  return out;
}

/** The page: channel health first (what is broken), then the subscriptions. */
export async function notify(main, message) {
  const token = loading();
  useNotifyStyles();
  const [session, subs, status, rooms] = await Promise.all([
    call("GET", "/api/v1/session"),
    call("GET", "/api/v1/notify/subscriptions"),
    call("GET", "/api/v1/notify/status"),
    call("GET", "/api/v1/classrooms?view=names"),
  ]);
  if (!current(token)) return; // the person has moved on
  const failed = [session, subs, status, rooms].find((r) => !r.ok);
  if (failed) {
    main.replaceChildren(el("p", errorText(failed), "error"));
    ready();
    return;
  }
  const schools = [...new Set(rooms.body.map((r) => r.school).filter(Boolean))].sort();
  const view = el("section");
  view.id = "notify";
  view.append(
    el("h2", t("nav.notify")),
    el(
      "p",
      session.body.school
        ? tf("nt.school_only", { school: session.body.school })
        : t("nt.intro"),
      "cr-muted",
    ),
    ...statusSection(status.body),
    ...subscriptionsSection(main, session.body, schools, subs.body, message),
  );
  main.replaceChildren(view);
  ready();
}
