// Reports: the term's pairings against their quotas (GET /api/v1/reports/pairings), each
// with an SVG bar chart of held lessons against what the quota requires, and its figures.
// The same report downloads as CSV (the API's format=csv) and prints (print stylesheet).
import { call } from "../api.js";
import { t } from "../i18n.js";
import { el, errorText, loading, ready, table, tf, useStyles } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const BAR_H = 22;
const GAP = 10;
const LABEL_W = 230;
const CHART_W = 720;

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

/** Horizontal bars: held (green when met, red when short) over the required amount. */
export function quotaChart(quotas) {
  const n = quotas.length;
  const height = n * (BAR_H + GAP) + GAP;
  const most = Math.max(1, ...quotas.map((q) => Math.max(q.held, q.required)));
  const scale = (v) => (v / most) * (CHART_W - LABEL_W - 60);
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_W} ${height}`,
    width: CHART_W,
    height,
    role: "img",
    class: "rp-chart",
  });
  chart.appendChild(svg("title", {}, t("rp.chart")));
  quotas.forEach((q, i) => {
    const y = GAP + i * (BAR_H + GAP);
    const row = svg("g", { class: `rp-bar ${q.met ? "met" : "short"}` });
    row.dataset.quota = q.quota;
    row.appendChild(svg("text", { x: LABEL_W - 8, y: y + BAR_H * 0.7, "text-anchor": "end" }, q.quota));
    row.appendChild(svg("rect", { x: LABEL_W, y, width: scale(q.required), height: BAR_H, class: "required" }));
    const held = svg("rect", { x: LABEL_W, y: y + 4, width: scale(q.held), height: BAR_H - 8, class: "held" });
    held.appendChild(svg("title", {}, tf("rp.bar_title", q)));
    row.appendChild(held);
    const end = LABEL_W + scale(Math.max(q.held, q.required)) + 6;
    row.appendChild(svg("text", { x: end, y: y + BAR_H * 0.7 }, `${q.held} / ${q.required}`));
    chart.appendChild(row);
  });
  return chart;
}

function countsTable(counts) {
  const rows = Object.entries(counts).map(([kind, c]) => [
    kind,
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
    r.quotas.map((q) => [q.quota, String(q.held), String(q.required), t(q.met ? "rp.met" : "rp.not_met")]),
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
  const setCsv = () => {
    const q = new URLSearchParams({ from: from.value, to: to.value, format: "csv" });
    csv.href = `/api/v1/reports/pairings?${q}`;
    csv.download = `pairings-${from.value}-${to.value}.csv`;
  };
  setCsv();
  const label = (key, control) => {
    const l = el("label");
    l.append(el("span", t(key)), control);
    return l;
  };
  form.append(label("rp.from", from), label("rp.to", to), show, csv, print);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.from = from.value;
    ctx.to = to.value;
    setCsv();
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
    from: isoDay(termStart(today)),
    to: isoDay(today),
    load: async () => {
      loading();
      const q = new URLSearchParams({ from: ctx.from, to: ctx.to });
      const res = await call("GET", `/api/v1/reports/pairings?${q}`);
      if (!res.ok) out.replaceChildren(el("p", errorText(res), "error"));
      else if (!res.body.length) out.replaceChildren(el("p", t("rp.none")));
      else out.replaceChildren(...res.body.map(pairingSection));
      ready();
    },
  };
  const page = el("div");
  page.id = "reports";
  const heading = el("h2", t("rp.title"));
  const period = el("p", "", "rp-period");
  period.id = "rp-period";
  const updatePeriod = () => (period.textContent = tf("rp.period", ctx));
  const load = ctx.load;
  ctx.load = async () => {
    updatePeriod();
    await load();
  };
  page.append(heading, period, toolbar(ctx), out);
  main.replaceChildren(page);
  await ctx.load();
}
