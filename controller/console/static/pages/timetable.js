// The timetable: a week calendar (vendored FullCalendar) of a school, classroom, teacher or
// pairing. Schedulers create lessons by selecting a slot, move them by dragging and cancel
// them; every change is checked by the rules (POST /api/v1/lessons/check) before saving.
// Other roles see the calendar read only. Below it, a CSV import with a per-row preview.
import { call } from "../api.js";
import { getLang, t } from "../i18n.js";
import { current, el, errorText, loading, ready, table, tf, useStyles } from "./dom.js";
import { pushSection } from "./live_push.js";
import { publishSection } from "./publishing.js";

const FULLCALENDAR = "/console/vendor/fullcalendar/index.global.min.js";
const EDIT_ROLES = new Set(["admin", "scheduler"]);
const SCOPES = ["all", "school", "classroom", "teacher", "pairing"];
const CHECK_DELAY_MS = 250;

let calendar = null; // the live FullCalendar instance (destroyed when the page re-renders)
let scriptLoad = null;

/** FullCalendar adds its CSS through a <style data-fullcalendar> element it finds or
 * creates; the console's CSP (style-src 'self') blocks inline <style>, leaving its `sheet`
 * null. Give it an element whose `sheet` is a constructed, adopted stylesheet instead:
 * CSSOM rules are not inline styles, so the CSP allows them. */
function shimFullCalendarStyles() {
  if (document.querySelector("style[data-fullcalendar]")) return;
  const sheet = new CSSStyleSheet();
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  const holder = document.createElement("style");
  holder.setAttribute("data-fullcalendar", "");
  Object.defineProperty(holder, "sheet", { value: sheet });
  document.head.appendChild(holder);
}

/** Load the FullCalendar bundle once (a classic script defining window.FullCalendar). */
function loadFullCalendar() {
  if (window.FullCalendar) return Promise.resolve(window.FullCalendar);
  shimFullCalendarStyles();
  scriptLoad ??= new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = FULLCALENDAR;
    s.onload = () => resolve(window.FullCalendar);
    s.onerror = () => reject(new Error(`${FULLCALENDAR} did not load`));
    document.head.appendChild(s);
  });
  return scriptLoad;
}

/** A Date as the value of an <input type="datetime-local"> (local time). */
function localInput(date) {
  const p = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T${p(date.getHours())}:${p(date.getMinutes())}`;
}

function labelled(key, control) {
  const label = el("label");
  label.append(el("span", t(key)), control);
  return label;
}

function input(id, type = "text", value = "") {
  const node = el("input");
  node.id = id;
  node.type = type;
  node.value = value;
  return node;
}

function select(id, options, value) {
  const node = el("select");
  node.id = id;
  for (const [v, text] of options) {
    const opt = el("option", text);
    opt.value = v;
    node.appendChild(opt);
  }
  if (value !== undefined) node.value = value;
  return node;
}

/** POST a text body (the CSV) with the session's CSRF token. */
const XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/** POST a body (text, or a File's bytes as they are) with its content type. */
async function postText(path, text, type) {
  const session = await call("GET", "/api/v1/session");
  const res = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": type, "X-CSRF-Token": session.body?.csrf ?? "" },
    body: text,
  });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  return { ok: res.ok, status: res.status, body };
}

let kindsAsked = null; // the kinds change only with the controller, so ask once a load

/** The lesson kinds, from the API description (its enum is the server's list). */
function lessonKinds() {
  kindsAsked ??= call("GET", "/api/v1/openapi.json").then((res) => {
    if (!res.ok) kindsAsked = null; // ask again next time
    const schema =
      res.body?.paths?.["/api/v1/lessons"]?.post?.requestBody?.content?.["application/json"]
        ?.schema;
    return schema?.properties?.kind?.enum ?? ["synchronous"];
  });
  return kindsAsked;
}

/** Render the rules' answer (problems, placement) into `box`. */
function showCheck(box, answer) {
  box.replaceChildren();
  if (!answer) return;
  if (answer.problems?.length) {
    box.appendChild(el("p", t("tt.problems"), "error"));
    const list = el("ul");
    list.id = "tt-problems";
    for (const p of answer.problems) {
      const item = el("li", p.message, "error");
      item.dataset.code = p.code;
      list.appendChild(item);
    }
    box.appendChild(list);
  } else {
    box.appendChild(el("p", t("tt.ok"), "ok"));
  }
  const placement = answer.placement;
  const line = el("p");
  line.id = "tt-placement";
  if (placement) {
    line.textContent = tf("tt.placement", placement);
    if (placement.reason) line.append(el("br"), placement.reason);
    line.dataset.rung = placement.rung;
  } else {
    line.textContent = t("tt.no_placement");
  }
  box.appendChild(line);
}

/** The lesson dialog: create (from a selected slot), move (after a drag) or details. */
function lessonDialog(ctx, mode, data) {
  const dlg = el("dialog");
  dlg.id = "tt-dialog";
  dlg.dataset.mode = mode;
  const form = el("form");
  form.method = "dialog";
  const title = { create: "tt.new", move: "tt.move", details: "tt.details" }[mode];
  const rooms = ctx.classrooms.map((r) => [r.id, `${r.name || r.id} (${r.school})`]);
  const readonly = mode !== "create";
  const kind = select("tt-kind", ctx.kinds.map((k) => [k, k]), data.kind ?? ctx.kinds[0]);
  const lead = select("tt-lead", rooms, data.lead ?? rooms[0]?.[0]);
  const receivers = el("fieldset");
  receivers.id = "tt-receivers";
  receivers.appendChild(el("legend", t("tt.receivers")));
  for (const [id, text] of rooms) {
    const box = input(`tt-recv-${id}`, "checkbox");
    box.value = id;
    box.checked = (data.receivers ?? []).includes(id);
    const label = el("label");
    label.append(box, ` ${text}`);
    receivers.appendChild(label);
  }
  const teacher = input("tt-teacher", "text", data.teacher ?? "");
  const subject = input("tt-subject", "text", data.subject ?? "");
  const lessonTitle = input("tt-title", "text", data.title ?? "");
  const start = input("tt-start", "datetime-local", localInput(data.start));
  const end = input("tt-end", "datetime-local", localInput(data.end));
  const controls = [kind, lead, teacher, subject, lessonTitle, start, end];
  for (const c of controls) c.disabled = readonly;
  for (const c of receivers.querySelectorAll("input")) c.disabled = readonly;
  const result = el("div");
  result.id = "tt-check";
  result.setAttribute("aria-live", "polite");
  const buttons = el("div", undefined, "dialog-buttons");
  const save = el("button", t("tt.save"));
  save.type = "button";
  save.id = "tt-save";
  const close = el("button", t("tt.close"));
  close.type = "button";
  close.id = "tt-close";
  form.append(
    el("h3", t(title)),
    labelled("tt.kind", kind),
    labelled("tt.lead", lead),
    receivers,
    labelled("tt.teacher", teacher),
    labelled("tt.subject", subject),
    labelled("tt.title", lessonTitle),
    labelled("tt.start", start),
    labelled("tt.end", end),
    result,
    buttons,
  );
  dlg.appendChild(form);

  const body = () => ({
    kind: kind.value,
    lead: lead.value,
    receivers: [...receivers.querySelectorAll("input:checked")].map((b) => b.value),
    teacher: teacher.value.trim() || undefined,
    subject: subject.value.trim(),
    title: lessonTitle.value.trim(),
    start: new Date(start.value).toISOString(),
    end: new Date(end.value).toISOString(),
    lesson: data.id,
  });
  let timer = null;
  let seq = 0;
  const check = async () => {
    const n = ++seq;
    result.replaceChildren(el("p", t("tt.checking")));
    save.disabled = true;
    const res = await call("POST", "/api/v1/lessons/check", body());
    if (n !== seq) return;
    if (!res.ok) {
      result.replaceChildren(el("p", errorText(res), "error"));
      return;
    }
    showCheck(result, res.body);
    save.disabled = !res.body.ok;
    dlg.dataset.checked = "1";
  };
  const recheck = () => {
    clearTimeout(timer);
    timer = setTimeout(check, CHECK_DELAY_MS);
  };
  const finish = (changed) => {
    clearTimeout(timer);
    dlg.close();
    dlg.remove();
    data.onClose?.(changed);
    if (changed) calendar?.refetchEvents();
  };
  close.addEventListener("click", () => finish(false));
  dlg.addEventListener("cancel", () => finish(false));

  if (mode === "create") {
    form.addEventListener("input", recheck);
    form.addEventListener("change", recheck);
    save.addEventListener("click", async () => {
      save.disabled = true;
      const { lesson, ...fields } = body();
      const res = await call("POST", "/api/v1/lessons", fields);
      if (res.ok) finish(true);
      else if (res.body?.problems) showCheck(result, { problems: res.body.problems });
      else result.replaceChildren(el("p", errorText(res), "error"));
    });
    buttons.append(save, " ", close);
    check();
  } else if (mode === "move") {
    save.addEventListener("click", async () => {
      save.disabled = true;
      const { start: s, end: e } = body();
      const res = await call("POST", `/api/v1/lessons/${data.id}/move`, { start: s, end: e });
      if (res.ok) finish(true);
      else if (res.body?.problems) showCheck(result, res.body);
      else result.replaceChildren(el("p", errorText(res), "error"));
    });
    buttons.append(save, " ", close);
    check();
  } else {
    if (ctx.canEdit && data.state === "scheduled") {
      const cancel = el("button", t("tt.cancel_lesson"));
      cancel.type = "button";
      cancel.id = "tt-cancel-lesson";
      cancel.addEventListener("click", async () => {
        if (!window.confirm(t("tt.confirm_cancel"))) return;
        const res = await call("POST", `/api/v1/lessons/${data.id}/override`, {
          action: "cancel",
          actor: ctx.user,
        });
        if (res.ok) finish(true);
        else result.replaceChildren(el("p", errorText(res), "error"));
      });
      buttons.append(cancel, " ");
    }
    if (data.rung) result.appendChild(el("p", `${t("tt.rung")}: ${data.rung}`));
    if (ctx.role !== "teacher") {
      const push = pushSection(data.id, ctx.canEdit);
      form.insertBefore(push, buttons);
      // Each push's state as the lead reports it, while the dialog is open.
      const timer = setInterval(() => (push.isConnected ? push.refresh() : clearInterval(timer)), 3000);
      form.insertBefore(publishSection(data.id, ctx.canEdit, () => push.refresh()), buttons);
    }
    buttons.append(close);
  }
  document.body.appendChild(dlg);
  dlg.showModal();
  return dlg;
}

function lessonEvent(x, names) {
  const who = [names[x.lead] ?? x.lead, ...x.receivers.map((r) => names[r] ?? r)].join(" → ");
  return {
    id: x.id,
    title: `${x.subject || x.kind}${x.teacher ? ` · ${x.teacher}` : ""} — ${who}`,
    start: x.start_at,
    end: x.end_at,
    classNames: [`state-${x.state}`],
    startEditable: x.state === "scheduled",
    extendedProps: x,
  };
}

/** The scope selector: a kind (school, classroom, teacher, pairing) and its value. */
function scopeSelector(ctx, onChange) {
  const scope = select(
    "tt-scope",
    SCOPES.map((s) => [s, t(`tt.scope.${s}`)]),
    ctx.scope.kind,
  );
  const value = el("select");
  value.id = "tt-scope-value";
  const text = input("tt-scope-text");
  const choices = () => {
    const kind = scope.value;
    value.hidden = !(kind === "school" || kind === "classroom");
    text.hidden = !(kind === "teacher" || kind === "pairing");
    value.replaceChildren();
    const options =
      kind === "school"
        ? [...new Set(ctx.classrooms.map((r) => r.school))].map((s) => [s, s])
        : ctx.classrooms.map((r) => [r.id, r.name || r.id]);
    for (const [v, label] of options) {
      const opt = el("option", label);
      opt.value = v;
      value.appendChild(opt);
    }
  };
  choices();
  const apply = () => {
    const kind = scope.value;
    const v = kind === "school" || kind === "classroom" ? value.value : text.value.trim();
    ctx.scope = { kind, value: v };
    onChange();
  };
  scope.addEventListener("change", () => {
    choices();
    if (scope.value === "all" || !value.hidden) apply();
  });
  value.addEventListener("change", apply);
  text.addEventListener("change", apply);
  const bar = el("div", undefined, "tt-toolbar");
  bar.append(labelled("tt.scope", scope), value, text);
  return bar;
}

function importSection(ctx) {
  const section = el("section");
  section.id = "tt-import";
  const term = input("tt-term");
  const file = input("tt-file", "file");
  file.accept = `.csv,text/csv,.xlsx,${XLSX_TYPE}`;
  const preview = el("button", t("tt.preview"));
  preview.type = "button";
  preview.id = "tt-preview";
  const out = el("div");
  out.id = "tt-import-result";
  const run = async (mode) => {
    if (!term.value.trim() || !file.files.length) {
      out.replaceChildren(el("p", t("tt.need_term_file"), "error"));
      return null;
    }
    // The file's own bytes: the server detects GBK and reads workbooks (a browser's
    // text() would decode a GBK file as UTF-8 and spoil every Chinese name).
    const upload = file.files[0];
    const type = upload.name.toLowerCase().endsWith(".xlsx") ? XLSX_TYPE : "text/csv";
    const path = `/api/v1/timetable/import?term=${encodeURIComponent(term.value.trim())}&mode=${mode}`;
    return postText(path, upload, type);
  };
  preview.addEventListener("click", async () => {
    const res = await run("dry-run");
    if (!res) return;
    if (!res.body || res.body.rows === undefined) {
      out.replaceChildren(el("p", errorText(res), "error"));
      return;
    }
    const doc = res.body;
    const rows = doc.problems.map((p) => [String(p.row), p.code, p.message]);
    const rungs = doc.placements.map((p) => [String(p.row), p.rung ?? "", p.reason ?? ""]);
    const parts = [
      el("p", tf("tt.import_summary", { rows: doc.rows, good: doc.good, problems: doc.problems.length })),
    ];
    if (rows.length) parts.push(table(["tt.row", "tt.code", "dash.message"], rows, "tt-preview-table"));
    if (rungs.length) parts.push(table(["tt.row", "tt.rung", "dash.message"], rungs, "tt-placements"));
    // What the good rows will create: the preview a scheduler checks before writing.
    const hm = (iso) => iso.slice(11, 16);
    const made = (doc.lessons ?? []).map((l) => [
      String(l.row),
      `${l.start.slice(0, 10)} ${hm(l.start)}–${hm(l.end)}`,
      l.kind,
      `${l.lead} → ${l.receivers.join("、")}`,
      l.teacher ?? "",
      l.subject,
      l.title,
    ]);
    if (made.length) {
      parts.push(
        table(
          ["tt.row", "tt.when", "tt.kind", "tt.rooms", "tt.teacher", "tt.subject", "tt.title"],
          made,
          "tt-preview-lessons",
        ),
      );
    }
    if (ctx.canEdit && doc.good > 0) {
      const clean = doc.problems.length === 0;
      const commit = el("button", t(clean ? "tt.commit" : "tt.commit_good"));
      commit.type = "button";
      commit.id = "tt-commit";
      commit.addEventListener("click", async () => {
        commit.disabled = true;
        const done = await run(clean ? "commit" : "good-rows");
        if (done?.ok || done?.body?.written) {
          out.replaceChildren(el("p", tf("tt.imported", { n: done.body.created.length }), "ok"));
          calendar?.refetchEvents();
        } else if (done) {
          out.appendChild(el("p", errorText(done), "error"));
        }
      });
      parts.push(commit);
    }
    out.replaceChildren(...parts);
  });
  section.append(
    el("h2", t("tt.import")),
    labelled("tt.term", term),
    labelled("tt.file", file),
    preview,
    out,
  );
  return section;
}

/** Render the timetable page into `main`. */
export async function timetable(main) {
  const token = loading();
  useStyles();
  calendar?.destroy();
  calendar = null;
  const [session, rooms, kinds, FullCalendar] = await Promise.all([
    call("GET", "/api/v1/session"),
    call("GET", "/api/v1/classrooms?view=names"),
    lessonKinds(),
    loadFullCalendar().catch((err) => err),
  ]);
  if (!current(token)) return; // the person has moved on
  if (!rooms.ok || FullCalendar instanceof Error) {
    main.replaceChildren(el("p", rooms.ok ? String(FullCalendar) : errorText(rooms), "error"));
    ready();
    return;
  }
  const ctx = {
    user: session.body?.user ?? "",
    canEdit: EDIT_ROLES.has(session.body?.role),
    role: session.body?.role,
    classrooms: rooms.body,
    kinds,
    scope: { kind: "all", value: "" },
  };
  const names = Object.fromEntries(ctx.classrooms.map((r) => [r.id, r.name || r.id]));
  const holder = el("div");
  holder.id = "calendar";
  const message = el("p", "", "error");
  message.id = "tt-message";
  const page = el("div");
  page.id = "timetable";
  page.dataset.editable = ctx.canEdit ? "1" : "0";
  page.append(el("h2", t("nav.timetable")), scopeSelector(ctx, () => calendar?.refetchEvents()));
  if (!ctx.canEdit) page.appendChild(el("p", t("tt.readonly"), "readonly-note"));
  page.append(message, holder, importSection(ctx));
  main.replaceChildren(page);

  let first = true;
  calendar = new FullCalendar.Calendar(holder, {
    initialView: "timeGridWeek",
    firstDay: 1,
    locale: getLang() === "en" ? "en" : "zh-cn",
    buttonIcons: false,
    buttonText: {
      today: t("tt.today"),
      week: t("tt.week"),
      day: t("tt.day"),
      prev: "‹",
      next: "›",
    },
    headerToolbar: { left: "prev,next today", center: "title", right: "timeGridWeek,timeGridDay" },
    allDaySlot: false,
    slotMinTime: "07:00:00",
    slotMaxTime: "21:00:00",
    scrollTime: "08:00:00",
    nowIndicator: true,
    height: "auto",
    selectable: ctx.canEdit,
    selectMirror: ctx.canEdit,
    editable: ctx.canEdit,
    eventDurationEditable: false,
    events: async (info, success, failure) => {
      const q = new URLSearchParams({ start: info.start.toISOString(), end: info.end.toISOString() });
      if (ctx.scope.kind !== "all" && ctx.scope.value) q.set(ctx.scope.kind, ctx.scope.value);
      const res = await call("GET", `/api/v1/timetable?${q}`);
      if (!res.ok) {
        message.textContent = errorText(res);
        failure(new Error(res.body?.error ?? String(res.status)));
        return;
      }
      message.textContent = "";
      success(res.body.lessons.filter((x) => x.state !== "cancelled").map((x) => lessonEvent(x, names)));
    },
    loading: (busy) => {
      if (!busy && first) {
        first = false;
        ready();
      }
    },
    select: (info) => {
      lessonDialog(ctx, "create", {
        start: info.start,
        end: info.end,
        onClose: () => calendar?.unselect(),
      });
    },
    eventDrop: (info) => {
      const x = info.event.extendedProps;
      lessonDialog(ctx, "move", {
        ...x,
        id: info.event.id,
        start: info.event.start,
        end: info.event.end,
        onClose: (changed) => {
          if (!changed) info.revert();
        },
      });
    },
    eventDidMount: (info) => {
      info.el.dataset.lesson = info.event.id;
    },
    eventClick: (info) => {
      const x = info.event.extendedProps;
      lessonDialog(ctx, "details", { ...x, start: info.event.start, end: info.event.end });
    },
  });
  calendar.render();
  holder.dataset.view = "timeGridWeek";
}
