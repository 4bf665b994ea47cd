// Reports: the term's pairings against their quotas (GET /api/v1/reports/pairings), each
// with an SVG bar chart of held lessons against what the quota requires, and its figures;
// and a term's declared quotas by school (ranked), teacher, subject or pairing
// (GET /api/v1/reports/quotas). Each downloads as CSV (the API's format=csv) and prints.
// Quota labels show in Chinese with the English beside; in English, the English alone.
import { call } from "../api.js";
import { getLang, t } from "../i18n.js";
import { el, errorText, loading, ready, table, tf, useStyles } from "./dom.js";
import { quotaEditor } from "./quota_editor.js";
import { reportArchive } from "./report_archive.js";

const SVG = "http://www.w3.org/2000/svg";
const BAR_H = 22;
const GAP = 10;
const LABEL_W = 330;
const CHART_W = 820;
const CHART_MAX = 12; // figures drawn as bars; more are listed in the table only
const VIEWS = ["pairings", "school", "teacher", "subject", "pairing"];

/** Load pages/reports.css once: the page's look and its print rules. */
function useReportStyles() {
  if (document.getElementById("reports-css")) return;
  const link = document.createElement("link");
  link.id = "reports-css";
  link.rel = "stylesheet";
  link.href = "/console/pages/reports.css";
  document.head.appendChild(link);
}

function svg(tag, attrs = {}, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

/** An ISO date (YYYY-MM-DD) of a local Date. */
function isoDay(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** The current term's likely first day: 1 February or 1 September. */
function termStart(today) {
  const m = today.getMonth();
  if (m >= 1 && m < 7) return new Date(today.getFullYear(), 1, 1);
  return new Date(m >= 7 ? today.getFullYear() : today.getFullYear() - 1, 8, 1);
}

/** A quota's label: "中文 (English)" in the Chinese console, the English in English. */
export function quotaLabel(q) {
  const zh = q.label_zh ?? q.quota;
  const en = q.label_en ?? q.quota;
  return getLang() === "en" ? en : zh === en ? zh : `${zh} (${en})`;
}

/** A lesson kind's name in the console's language (the key if unknown). */
function kindName(kind) {
  const word = t(`rp.kind.${kind}`);
  return word === `rp.kind.${kind}` ? kind : word;
}

/** Horizontal bars: held (green when met, red when short) over the required amount. */
export function quotaChart(quotas) {
  const n = quotas.length;
  const pitch = BAR_H + GAP + 8; // room for a label's second (English) line
  const height = n * pitch + GAP;
  const most = Math.max(1, ...quotas.map((q) => Math.max(q.held, q.required)));
  const scale = (v) => (v / most) * (CHART_W - LABEL_W - 60);
  // A quota drawn more than once (each week, each room) says which bar is which.
  const seen = {};
  for (const q of quotas) seen[q.quota] = (seen[q.quota] ?? 0) + 1;
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_W} ${height}`,
    width: CHART_W,
    height,
    role: "img",
    class: "rp-chart",
  });
  chart.appendChild(svg("title", {}, t("rp.chart")));
  quotas.forEach((q, i) => {
    const y = GAP + i * pitch;
    const row = svg("g", { class: `rp-bar ${q.met ? "met" : "short"}` });
    row.dataset.quota = q.quota;
    const which = seen[q.quota] > 1 ? ` · ${[q.instance, q.subject, q.period].filter(Boolean).join(" ")}` : "";
    const label = svg("text", { x: LABEL_W - 8, y: y + 11, "text-anchor": "end" });
    const zh = q.label_zh ?? q.quota;
    const en = q.label_en ?? q.quota;
    if (getLang() === "en" || zh === en) {
      label.setAttribute("y", String(y + BAR_H * 0.7));
      label.textContent = `${en}${which}`;
    } else {
      // Chinese on the first line, the English beside it on the second, smaller.
      label.appendChild(svg("tspan", { x: LABEL_W - 8 }, `${zh}${which}`));
      label.appendChild(svg("tspan", { x: LABEL_W - 8, dy: 14, class: "en" }, `(${en})`));
    }
    row.appendChild(label);
    row.appendChild(svg("rect", { x: LABEL_W, y, width: scale(q.required), height: BAR_H, class: "required" }));
    const held = svg("rect", { x: LABEL_W, y: y + 4, width: scale(q.held), height: BAR_H - 8, class: "held" });
    held.appendChild(svg("title", {}, tf("rp.bar_title", { ...q, quota: quotaLabel(q) })));
    row.appendChild(held);
    const end = LABEL_W + scale(Math.max(q.held, q.required)) + 6;
    row.appendChild(svg("text", { x: end, y: y + BAR_H * 0.7 }, `${q.held} / ${q.required}`));
    chart.appendChild(row);
  });
  return chart;
}

function countsTable(counts) {
  const rows = Object.entries(counts).map(([kind, c]) => [
    kindName(kind),
    String(c.scheduled),
    String(c.held),
    String(c.recorded),
  ]);
  return table(["rp.kind", "rp.scheduled", "rp.held", "rp.recorded"], rows);
}

function pairingSection(r) {
  const section = el("section", undefined, "rp-pairing");
  section.dataset.pairing = r.pairing;
  section.dataset.met = r.met ? "1" : "0";
  const status = el("span", t(r.met ? "rp.met" : "rp.not_met"), r.met ? "ok" : "error");
  const head = el("h3", `${r.pairing} — ${r.schools.join(" · ")} `);
  head.appendChild(status);
  const quotas = table(
    ["rp.quota", "rp.held", "rp.required", "rp.status"],
    r.quotas.map((q) => [
      quotaLabel(q),
      String(q.held),
      String(q.required),
      t(q.met ? "rp.met" : "rp.not_met"),
    ]),
  );
  quotas.className = "rp-quotas";
  const subjects = Object.entries(r.synchronous_held_by_subject ?? {});
  const parts = [head, quotaChart(r.quotas), quotas];
  if (Object.keys(r.counts).length) parts.push(el("h4", t("rp.by_kind")), countsTable(r.counts));
  if (subjects.length) {
    parts.push(
      el("h4", t("rp.by_subject")),
      table(["rp.subject", "rp.held"], subjects.map(([s, n]) => [s || "—", String(n)])),
    );
  }
  section.append(...parts);
  return section;
}

/** One school, teacher, subject or pairing of a quota view: its figures and its lessons. */
function entrySection(e, by) {
  const section = el("section", undefined, "rp-pairing rp-entry");
  section.dataset.key = e.key;
  section.dataset.met = String(e.met);
  // A school's rank is within its level (学段): say which.
  const level = by === "school" ? ` (${t(`rp.level.${e.level || "none"}`)})` : "";
  const rank = e.rank ? `${tf("rp.rank", e)}${level} · ` : "";
  const title = e.name && e.name !== e.key ? `${e.key} (${e.name})` : e.key;
  const head = el("h3", `${rank}${t(`rp.by.${by}`)} ${title} `);
  head.appendChild(
    el("span", tf("rp.met_of", { met: e.met, quotas: e.quotas }), e.met === e.quotas ? "ok" : "error"),
  );
  const parts = [head];
  // A chart for a handful of figures; weekly figures of many rooms read better as a table.
  if (e.results.length && e.results.length <= CHART_MAX) parts.push(quotaChart(e.results));
  if (e.results.length) {
    const rows = e.results.map((r) => [
      quotaLabel(r),
      r.instance,
      r.subject || "—",
      r.period,
      String(r.held),
      String(r.required),
      t(r.met ? "rp.met" : "rp.not_met"),
    ]);
    const figures = table(
      ["rp.quota", "rp.instance", "rp.subject", "rp.period_col", "rp.held", "rp.required", "rp.status"],
      rows,
    );
    figures.className = "rp-quotas";
    parts.push(figures);
  }
  if (Object.keys(e.counts).length) parts.push(el("h4", t("rp.by_kind")), countsTable(e.counts));
  section.append(...parts);
  return section;
}

/** The query and CSV link of the view chosen. */
function viewUrl(ctx, format) {
  if (ctx.view === "pairings") {
    const q = new URLSearchParams({ from: ctx.from, to: ctx.to });
    if (format) q.set("format", format);
    return `/api/v1/reports/pairings?${q}`;
  }
  const q = new URLSearchParams({ term: ctx.term, by: ctx.view });
  if (format) q.set("format", format);
  return `/api/v1/reports/quotas?${q}`;
}

function toolbar(ctx) {
  const form = el("form", undefined, "rp-toolbar no-print");
  form.id = "rp-form";
  const from = el("input");
  from.type = "date";
  from.id = "rp-from";
  from.value = ctx.from;
  const to = el("input");
  to.type = "date";
  to.id = "rp-to";
  to.value = ctx.to;
  const show = el("button", t("rp.show"));
  show.type = "submit";
  show.id = "rp-show";
  const csv = el("a", t("rp.csv"));
  csv.id = "rp-csv";
  const print = el("button", t("rp.print"));
  print.type = "button";
  print.id = "rp-print";
  print.addEventListener("click", () => window.print());
  const view = el("select");
  view.id = "rp-view";
  for (const v of VIEWS) {
    const option = el("option", t(`rp.view.${v}`));
    option.value = v;
    view.appendChild(option);
  }
  view.value = ctx.view;
  const term = el("input");
  term.id = "rp-term";
  term.value = ctx.term;
  term.placeholder = t("rp.term_hint");
  const setCsv = () => {
    csv.href = viewUrl(ctx, "csv");
    csv.download =
      ctx.view === "pairings" ? `pairings-${ctx.from}-${ctx.to}.csv` : `quotas-${ctx.term}-${ctx.view}.csv`;
  };
  const label = (key, control) => {
    const l = el("label");
    l.append(el("span", t(key)), control);
    return l;
  };
  const dates = [label("rp.from", from), label("rp.to", to)];
  const termLabel = label("rp.term", term);
  const showFields = () => {
    for (const d of dates) d.hidden = ctx.view !== "pairings";
  };
  const take = () => {
    ctx.view = view.value;
    ctx.from = from.value;
    ctx.to = to.value;
    ctx.term = term.value.trim();
    showFields();
    setCsv();
  };
  take();
  view.addEventListener("change", take);
  form.append(label("rp.view", view), ...dates, termLabel, show, csv, print);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    take();
    ctx.load();
  });
  return form;
}

/** Render the reports page into `main`. */
export async function reports(main) {
  loading();
  useStyles();
  useReportStyles();
  const today = new Date();
  const out = el("div");
  out.id = "rp-results";
  const ctx = {
    view: "pairings",
    term: "",
    from: isoDay(termStart(today)),
    to: isoDay(today),
    load: async () => {
      loading();
      if (ctx.view !== "pairings" && !ctx.term) {
        out.replaceChildren(el("p", t("rp.term_needed")));
        ready();
        return;
      }
      const res = await call("GET", viewUrl(ctx));
      if (!res.ok) out.replaceChildren(el("p", errorText(res), "error"));
      else if (ctx.view === "pairings") {
        if (!res.body.length) out.replaceChildren(el("p", t("rp.none")));
        else out.replaceChildren(...res.body.map(pairingSection));
      } else {
        const parts = [];
        if (res.body.ranking) parts.push(el("p", t("rp.ranking_all"), "rp-note"));
        if (res.body.truncated) parts.push(el("p", t("rp.truncated"), "rp-note"));
        if (!res.body.entries.length) parts.push(el("p", t("rp.none_view")));
        parts.push(...res.body.entries.map((e) => entrySection(e, ctx.view)));
        out.replaceChildren(...parts);
      }
      ready();
    },
  };
  const page = el("div");
  page.id = "reports";
  const heading = el("h2", t("rp.title"));
  const period = el("p", "", "rp-period");
  period.id = "rp-period";
  const updatePeriod = () => {
    heading.textContent = t(ctx.view === "pairings" ? "rp.title" : "rp.title_quotas");
    period.textContent = ctx.view === "pairings" ? tf("rp.period", ctx) : tf("rp.term_period", ctx);
  };
  const load = ctx.load;
  ctx.load = async () => {
    updatePeriod();
    await load();
  };
  // The term's quotas and the archived reports, each opened by its button.
  const extra = el("div");
  extra.id = "rp-extra";
  const openQuotas = el("button", t("qe.open"));
  openQuotas.type = "button";
  openQuotas.id = "rp-quotas-edit";
  openQuotas.addEventListener("click", async () => {
    const term = document.getElementById("rp-term").value.trim();
    extra.replaceChildren(term ? await quotaEditor(term) : el("p", t("rp.term_needed"), "error"));
  });
  const openArchive = el("button", t("ra.open"));
  openArchive.type = "button";
  openArchive.id = "rp-archive";
  openArchive.addEventListener("click", async () => {
    extra.replaceChildren(await reportArchive(document.getElementById("rp-term").value.trim()));
  });
  const more = el("div", undefined, "rp-toolbar no-print");
  more.append(openQuotas, openArchive);
  page.append(heading, period, toolbar(ctx), more, extra, out);
  main.replaceChildren(page);
  await ctx.load();
}
