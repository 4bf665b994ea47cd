// Lesson analytics (课堂分析) beside a recording: the S-T curve (each coded sample steps one
// unit along T, the teacher's axis, or S, the students'), the Rt–Ch chart with the four
// teaching types' regions and the lesson's point, and the figures: Rt, Ch, the type,
// teacher and student talk time, and how often and how long each receiving room spoke.
// Inline SVG, no library (the CSP allows no inline scripts or styles).
import { call } from "../api.js";
import { getLang } from "../i18n.js";
import { el, errorText } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const SIZE = 300;
const PAD = 36;

const WORDS = {
  zh: {
    title: "课堂分析 S-T",
    none: "尚无分析：本课没有教室发来讲话时间线。",
    curve: "S-T 曲线",
    rtch: "Rt–Ch 图",
    summary: "Rt {rt}，Ch {ch}，{type}（每 {interval} 秒取样，共 {n} 个）",
    talk: "教师讲话 {t}，学生讲话 {s}",
    room: "{room}：发言 {turns} 次，共 {s}",
    missing: "未收到时间线的教室：{rooms}",
  },
  en: {
    title: "Lesson analytics (S-T)",
    none: "No analysis yet: no classroom of this lesson sent a talk timeline.",
    curve: "S-T curve",
    rtch: "Rt–Ch chart",
    summary: "Rt {rt}, Ch {ch}, {type} (sampled every {interval} s, {n} samples)",
    talk: "teacher talk {t}, student talk {s}",
    room: "{room}: spoke {turns} time(s), {s} in all",
    missing: "No timeline from: {rooms}",
  },
};

function words() {
  return WORDS[getLang() === "en" ? "en" : "zh"];
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? ""));
}

function minutes(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function svg(tag, attrs = {}, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

function frame(cls, title) {
  const chart = svg("svg", { viewBox: `0 0 ${SIZE} ${SIZE}`, role: "img", class: `st-chart ${cls}` });
  chart.appendChild(svg("title", {}, title));
  chart.appendChild(svg("rect", { x: PAD, y: PAD / 2, width: SIZE - PAD * 1.5, height: SIZE - PAD * 1.5, class: "st-area" }));
  return chart;
}

/** The S-T curve of `samples` ("TTSST…"): x is the T count, y the S count, both to N. */
export function stCurve(samples, title) {
  const chart = frame("st-curve-chart", title);
  const n = Math.max(1, samples.length);
  const span = SIZE - PAD * 1.5;
  const sx = (v) => PAD + (v / n) * span;
  const sy = (v) => SIZE - PAD - (v / n) * span;
  chart.appendChild(svg("line", { x1: sx(0), y1: sy(0), x2: sx(n), y2: sy(n), class: "st-diagonal" }));
  let t = 0;
  let s = 0;
  const points = [`${sx(0)},${sy(0)}`];
  for (const c of samples) {
    if (c === "T") t += 1;
    else s += 1;
    points.push(`${sx(t).toFixed(1)},${sy(s).toFixed(1)}`);
  }
  chart.appendChild(svg("polyline", { points: points.join(" "), class: "st-curve", "data-t": t, "data-s": s }));
  chart.appendChild(svg("text", { x: SIZE - PAD / 2, y: SIZE - PAD / 3, class: "st-tick", "text-anchor": "end" }, `T (${t})`));
  chart.appendChild(svg("text", { x: 4, y: PAD / 2 + 10, class: "st-tick" }, `S (${s})`));
  return chart;
}

/** The Rt–Ch chart: the four regions (练习型 Rt ≤ 0.3, 讲授型 Rt ≥ 0.7, 对话型 Ch ≥ 0.4,
 * 混合型 the rest) and the lesson's point. */
export function rtChChart(rt, ch, title) {
  const chart = frame("st-rtch-chart", title);
  const span = SIZE - PAD * 1.5;
  const sx = (v) => PAD + v * span;
  const sy = (v) => SIZE - PAD - v * span;
  chart.appendChild(svg("line", { x1: sx(0.3), y1: sy(0), x2: sx(0.3), y2: sy(1), class: "st-bound" }));
  chart.appendChild(svg("line", { x1: sx(0.7), y1: sy(0), x2: sx(0.7), y2: sy(1), class: "st-bound" }));
  chart.appendChild(svg("line", { x1: sx(0.3), y1: sy(0.4), x2: sx(0.7), y2: sy(0.4), class: "st-bound" }));
  const regions = [
    [0.15, 0.5, "练习型"],
    [0.85, 0.5, "讲授型"],
    [0.5, 0.7, "对话型"],
    [0.5, 0.2, "混合型"],
  ];
  for (const [x, y, label] of regions) {
    chart.appendChild(svg("text", { x: sx(x), y: sy(y), class: "st-region", "text-anchor": "middle" }, label));
  }
  for (const v of [0, 0.3, 0.7, 1]) {
    chart.appendChild(svg("text", { x: sx(v), y: SIZE - PAD / 3, class: "st-tick", "text-anchor": "middle" }, String(v)));
  }
  for (const v of [0, 0.4, 1]) {
    chart.appendChild(svg("text", { x: PAD - 4, y: sy(v) + 4, class: "st-tick", "text-anchor": "end" }, String(v)));
  }
  chart.appendChild(svg("text", { x: SIZE - PAD / 2, y: SIZE - PAD / 3 - 12, class: "st-tick", "text-anchor": "end" }, "Rt"));
  chart.appendChild(svg("text", { x: 4, y: PAD / 2 + 10, class: "st-tick" }, "Ch"));
  if (rt !== null && ch !== null) {
    chart.appendChild(
      svg("circle", { cx: sx(rt), cy: sy(ch), r: 6, class: "st-point", "data-rt": rt, "data-ch": ch }),
    );
  }
  return chart;
}

/** Load pages/st_chart.css once (same-origin, as the CSP asks). */
function useStChartStyles() {
  if (document.getElementById("st-chart-css")) return;
  const link = document.createElement("link");
  link.id = "st-chart-css";
  link.rel = "stylesheet";
  link.href = "/console/pages/st_chart.css";
  document.head.appendChild(link);
}

/** The analytics panel of `lesson`: charts and figures, or why there are none. */
export async function stPanel(lesson) {
  useStChartStyles();
  const w = words();
  const panel = el("section", undefined, "st-panel");
  panel.id = "st-panel";
  const res = await call("GET", `/api/v1/lessons/${lesson}/analytics`);
  if (!res.ok) {
    panel.replaceChildren(el("h3", w.title), el("p", errorText(res), "error"));
    panel.dataset.ready = "1";
    return panel;
  }
  const doc = res.body;
  const parts = [el("h3", w.title)];
  if (!doc.n) {
    parts.push(el("p", w.none, "st-summary"));
  } else {
    const type = getLang() === "en" ? doc.type_en : `${doc.type_zh} ${doc.type_en}`;
    const summary = el(
      "p",
      fill(w.summary, { rt: doc.rt.toFixed(2), ch: doc.ch.toFixed(2), type, interval: doc.interval_s, n: doc.n }),
      "st-summary",
    );
    summary.id = "st-summary";
    summary.dataset.type = doc.type;
    const talk = el("p", fill(w.talk, { t: minutes(doc.teacher_talk_s), s: minutes(doc.student_talk_s) }), "st-summary");
    const charts = el("div", undefined, "st-charts");
    charts.append(stCurve(doc.samples, w.curve), rtChChart(doc.rt, doc.ch, w.rtch));
    const rooms = el("ul", undefined, "st-rooms");
    rooms.id = "st-rooms";
    for (const r of doc.rooms) {
      const item = el("li", fill(w.room, { room: r.classroom, turns: r.turns, s: minutes(r.talk_s) }));
      item.dataset.classroom = r.classroom;
      rooms.append(item);
    }
    parts.push(summary, talk, charts, rooms);
  }
  const missing = [doc.lead, ...doc.receivers].filter((c) => !doc.reported.includes(c));
  if (doc.reported.length && missing.length) parts.push(el("p", fill(w.missing, { rooms: missing.join(", ") }), "st-summary"));
  panel.replaceChildren(...parts);
  panel.dataset.ready = "1";
  return panel;
}
