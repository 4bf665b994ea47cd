// Recordings: search the catalogue (GET /api/v1/recordings), play a track in the browser
// with its coverage under the player (gaps marked, their reason on hover; a click seeks),
// download it, and — admin or scheduler — ask to publish it to the resource library, or
// cut a clip (微课) from it; a reviewer approves either on the library page.
import { call } from "../api.js";
import { t } from "../i18n.js";
import { current, el, errorText, loading, ready, table, tf, useStyles } from "./dom.js";
import { coverageBar } from "./coverage_bar.js";
import { libraryForm } from "./library_forms.js";
import { REVIEW_ROLES, reviewPanel } from "./review.js";
import { stPanel } from "./st_chart.js";

const PUBLISH_ROLES = new Set(["admin", "scheduler"]);
const PAGE_SIZE = 20;

/** Load pages/recordings.css once (same-origin, as the CSP asks). */
function useRecordingStyles() {
  if (document.getElementById("recordings-css")) return;
  const link = document.createElement("link");
  link.id = "recordings-css";
  link.rel = "stylesheet";
  link.href = "/console/pages/recordings.css";
  document.head.appendChild(link);
}

function labelled(key, control) {
  const label = el("label");
  label.append(el("span", t(key)), control);
  return label;
}

function input(id, type = "text") {
  const node = el("input");
  node.id = id;
  node.type = type;
  return node;
}

function select(id, options) {
  const node = el("select");
  node.id = id;
  for (const [value, text] of options) {
    const opt = el("option", text);
    opt.value = value;
    node.appendChild(opt);
  }
  return node;
}

/** "1:05:03" or "4:07" for seconds. */
function clock(seconds) {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

/** The lesson kinds, from the API description (its enum is the server's list). */
async function lessonKinds() {
  const res = await call("GET", "/api/v1/openapi.json");
  const schema =
    res.body?.paths?.["/api/v1/lessons"]?.post?.requestBody?.content?.["application/json"]?.schema;
  return schema?.properties?.kind?.enum ?? [];
}

/** A local day as the ISO time of its midnight (or of the next midnight, for `end`). */
function dayBound(value, end) {
  if (!value) return "";
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + (end ? 1 : 0)).toISOString();
}

function filters(ctx) {
  const schools = [...new Set(ctx.classrooms.map((r) => r.school).filter(Boolean))].sort();
  const form = el("form", undefined, "rec-filters");
  form.id = "rec-filters";
  const fields = {
    school: select("rec-school", [["", t("rec.any")], ...schools.map((s) => [s, s])]),
    teacher: input("rec-teacher"),
    subject: input("rec-subject"),
    kind: select("rec-kind", [["", t("rec.any")], ...ctx.kinds.map((k) => [k, k])]),
    from: input("rec-from", "date"),
    to: input("rec-to", "date"),
  };
  const search = el("button", t("rec.search"));
  search.type = "submit";
  search.id = "rec-search";
  form.append(
    labelled("rec.school", fields.school),
    labelled("rec.teacher", fields.teacher),
    labelled("rec.subject", fields.subject),
    labelled("rec.kind", fields.kind),
    labelled("rec.from", fields.from),
    labelled("rec.to", fields.to),
    search,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.query = new URLSearchParams();
    for (const name of ["school", "teacher", "subject", "kind"]) {
      const v = fields[name].value.trim();
      if (v) ctx.query.set(name, v);
    }
    if (fields.from.value) ctx.query.set("from", dayBound(fields.from.value, false));
    if (fields.to.value) ctx.query.set("to", dayBound(fields.to.value, true));
    ctx.offset = 0;
    ctx.load();
  });
  return form;
}

function publishCell(ctx, row) {
  const box = el("span", undefined, "rec-published");
  if (row.published) {
    box.textContent = t("rec.published");
    box.title = row.published_at ? new Date(row.published_at).toLocaleString() : "";
    return box;
  }
  if (row.library_pending) box.textContent = t("lib.s.pending");
  if (!ctx.canPublish) {
    if (!row.library_pending) box.textContent = t("rec.not_published");
    return box;
  }
  // Publishing asks a reviewer (资源库审核): the form sends the item's metadata.
  const open = (cls, label, clip) => {
    const btn = el("button", t(label));
    btn.type = "button";
    btn.className = cls;
    btn.addEventListener("click", () => {
      box.querySelector("form")?.remove();
      box.appendChild(
        libraryForm(row, clip, (item) => {
          if (!clip) box.replaceWith(el("span", t(`lib.s.${item.status}`), "rec-published"));
        }),
      );
    });
    return btn;
  };
  if (!row.library_pending) box.append(open("rec-publish", "rec.publish", false), " ");
  box.append(open("rec-clip", "lib.clip", true));
  return box;
}

function actionsCell(ctx, row) {
  const box = el("span", undefined, "rec-actions");
  const play = el("button", t("rec.play"));
  play.type = "button";
  play.className = "rec-play";
  play.addEventListener("click", () => ctx.play(row));
  const download = el("a", t("rec.download"));
  download.className = "rec-download";
  download.href = row.url;
  download.download = `${row.lesson}-${row.classroom}-${row.track}.mp4`;
  box.append(play, " ", download);
  return box;
}

function resultsTable(ctx, rows) {
  const headers = [
    "rec.when", "rec.lesson", "rec.teacher", "rec.classroom", "rec.track", "rec.duration",
    "rec.coverage", "rec.gaps", "rec.library", "rec.actions",
  ];
  const body = rows.map((r) => [
    new Date(r.start_at).toLocaleString(),
    [r.title || r.subject || r.kind, r.kind].filter(Boolean).join(" · "),
    r.teacher ?? "",
    `${r.classroom_name || r.classroom} (${r.school})`,
    r.track,
    clock(r.duration_s),
    r.coverage_pct === null ? "—" : `${r.coverage_pct}%`,
    r.gaps === null ? "—" : String(r.gaps),
    publishCell(ctx, r),
    actionsCell(ctx, r),
  ]);
  const tbl = table(headers, body, "rec-results");
  rows.forEach((r, i) => {
    const tr = tbl.tBodies[0].rows[i];
    tr.dataset.lesson = r.lesson;
    tr.dataset.classroom = r.classroom;
    tr.dataset.track = r.track;
  });
  return tbl;
}

function pager(ctx, doc) {
  const bar = el("div", undefined, "rec-pager");
  const first = doc.total ? doc.offset + 1 : 0;
  const last = doc.offset + doc.recordings.length;
  const summary = el("span", tf("rec.page", { first, last, total: doc.total }));
  summary.id = "rec-count";
  summary.dataset.total = String(doc.total);
  const prev = el("button", t("rec.prev"));
  prev.type = "button";
  prev.disabled = doc.offset === 0;
  prev.addEventListener("click", () => {
    ctx.offset = Math.max(0, ctx.offset - PAGE_SIZE);
    ctx.load();
  });
  const next = el("button", t("rec.next"));
  next.type = "button";
  next.disabled = last >= doc.total;
  next.addEventListener("click", () => {
    ctx.offset += PAGE_SIZE;
    ctx.load();
  });
  bar.append(prev, " ", summary, " ", next);
  return bar;
}

/** Coverage and gaps of one track, from the lesson's catalogue. */
async function trackCoverage(row) {
  const res = await call("GET", `/api/v1/lessons/${row.lesson}/recordings`);
  if (!res.ok) return { error: errorText(res) };
  const room = res.body.classrooms.find((c) => c.classroom === row.classroom);
  const track = room?.coverage?.tracks?.find((x) => x.key === row.track);
  return {
    scheduled: Number(room?.coverage?.scheduled_s ?? row.duration_s),
    ratio: track ? Number(track.ratio) : null,
    gaps: track?.gaps ?? [],
  };
}

function playerSection(ctx) {
  const section = el("section", undefined, "rec-player");
  section.id = "rec-player";
  section.hidden = true;
  const title = el("h3");
  title.id = "rec-playing";
  const video = el("video");
  video.id = "rec-video";
  video.controls = true;
  video.preload = "metadata";
  video.muted = true;
  const barHolder = el("div");
  barHolder.id = "rec-bar-holder";
  const legend = el("p", "", "rec-legend");
  legend.id = "rec-legend";
  const reviewHolder = el("div");
  reviewHolder.id = "rev-holder";
  const analyticsHolder = el("div");
  analyticsHolder.id = "st-holder";
  section.append(title, video, barHolder, legend, reviewHolder, analyticsHolder);

  ctx.play = async (row) => {
    section.hidden = false;
    delete section.dataset.ready;
    title.textContent = `${row.title || row.subject || row.lesson} — ${row.classroom_name || row.classroom} · ${row.track}`;
    video.src = row.url;
    video.play().catch(() => {});
    const cover = await trackCoverage(row);
    if (cover.error) {
      legend.textContent = cover.error;
      barHolder.replaceChildren();
    } else {
      const bar = coverageBar(video, cover.scheduled, cover.gaps, (gap) =>
        tf("rec.gap_title", {
          from: clock(gap.start_s),
          to: clock(gap.end_s),
          reason: reasonText(gap.reason),
          detail: gap.detail ?? "",
        }),
      );
      barHolder.replaceChildren(bar);
      const pct = cover.ratio === null ? "—" : `${Math.round(cover.ratio * 1000) / 10}%`;
      legend.textContent = tf("rec.legend", { pct, gaps: cover.gaps.length });
    }
    const [review, analytics] = await Promise.all([
      reviewPanel(row.lesson, video, ctx.canReview, ctx.me),
      stPanel(row.lesson),
    ]);
    reviewHolder.replaceChildren(review);
    analyticsHolder.replaceChildren(analytics);
    section.dataset.ready = "1";
    section.scrollIntoView({ block: "nearest" });
  };
  return section;
}

function reasonText(reason) {
  const key = `rec.reason.${reason}`;
  const word = t(key);
  return word === key ? reason : word;
}

/** Render the recordings page into `main`. */
export async function recordings(main) {
  const token = loading();
  useStyles();
  useRecordingStyles();
  const [session, rooms, kinds] = await Promise.all([
    call("GET", "/api/v1/session"),
    call("GET", "/api/v1/classrooms?view=names"),
    lessonKinds(),
  ]);
  if (!current(token)) return; // the person has moved on
  if (!rooms.ok) {
    main.replaceChildren(el("p", errorText(rooms), "error"));
    ready();
    return;
  }
  const message = el("p", "", "error");
  message.id = "rec-message";
  const results = el("div");
  results.id = "rec-results-holder";
  const ctx = {
    canPublish: PUBLISH_ROLES.has(session.body?.role),
    canReview: REVIEW_ROLES.has(session.body?.role),
    me: session.body?.user,
    classrooms: rooms.body,
    kinds,
    query: new URLSearchParams(),
    offset: 0,
    message,
    play: () => {},
    load: async () => {
      loading();
      const q = new URLSearchParams(ctx.query);
      q.set("limit", String(PAGE_SIZE));
      q.set("offset", String(ctx.offset));
      const res = await call("GET", `/api/v1/recordings?${q}`);
      if (!res.ok) {
        message.textContent = errorText(res);
        results.replaceChildren();
      } else {
        message.textContent = "";
        const doc = res.body;
        results.replaceChildren(
          pager(ctx, doc),
          doc.recordings.length ? resultsTable(ctx, doc.recordings) : el("p", t("rec.none")),
        );
      }
      ready();
    },
  };
  const page = el("div");
  page.id = "recordings";
  page.append(el("h2", t("nav.recordings")), filters(ctx), message, playerSection(ctx), results);
  main.replaceChildren(page);
  await ctx.load();
}
