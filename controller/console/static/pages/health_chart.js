// A small inline-SVG line chart of one health figure over time (no library; the CSP
// allows no inline scripts or styles, so looks come from pages/classrooms.css classes).
const SVG = "http://www.w3.org/2000/svg";
const W = 560;
const H = 160;
const PAD = { left: 76, right: 12, top: 12, bottom: 26 };

function svg(tag, attrs = {}, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

function hhmm(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/** The y range: fixed bounds where given; a side left free follows the data, widened a
 * little so the line stays off the frame. */
function yRange(values, fixed) {
  const dataLo = Math.min(...values);
  const dataHi = Math.max(...values);
  const pad = (dataHi - dataLo) * 0.15 || Math.abs(dataHi) * 0.15 || 1;
  const lo = fixed.min ?? Math.floor(dataLo - pad);
  let hi = fixed.max ?? Math.ceil(Math.max(dataHi, lo) + pad);
  if (hi <= lo) hi = lo + 1;
  return [lo, hi];
}

/** Runs of points without gaps: a sample missing the figure, or a pause longer than
 * `maxGapMs` between samples (agent offline), breaks the line. */
function runs(points, maxGapMs) {
  const out = [];
  let run = [];
  let lastT = null;
  for (const p of points) {
    if (p.v === null || (lastT !== null && p.t - lastT > maxGapMs)) {
      if (run.length) out.push(run);
      run = [];
    }
    if (p.v !== null) run.push(p);
    lastT = p.t;
  }
  if (run.length) out.push(run);
  return out;
}

/**
 * A line chart of `field` of `samples` ({at, <field>: number|null}) from `since` to
 * `now` (ISO times). `opts`: {title, unit, min, max, everyS, cls, empty}.
 */
export function healthChart(samples, field, since, now, opts) {
  const t0 = Date.parse(since);
  const t1 = Date.parse(now);
  const points = samples.map((s) => ({ t: Date.parse(s.at), v: s[field] ?? null }));
  const values = points.filter((p) => p.v !== null).map((p) => p.v);
  const chart = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    width: W,
    height: H,
    role: "img",
    class: `hc-chart ${opts.cls ?? ""}`,
    "data-field": field,
  });
  chart.appendChild(svg("title", {}, opts.title));
  const x0 = PAD.left;
  const x1 = W - PAD.right;
  const y0 = H - PAD.bottom;
  const y1 = PAD.top;
  chart.appendChild(svg("rect", { x: x0, y: y1, width: x1 - x0, height: y0 - y1, class: "hc-area" }));
  chart.appendChild(svg("text", { x: x0, y: H - 6, class: "hc-tick" }, hhmm(t0)));
  chart.appendChild(
    svg("text", { x: x1, y: H - 6, class: "hc-tick", "text-anchor": "end" }, hhmm(t1)),
  );
  if (!values.length) {
    chart.appendChild(
      svg("text", { x: (x0 + x1) / 2, y: (y0 + y1) / 2, class: "hc-empty", "text-anchor": "middle" }, opts.empty),
    );
    return chart;
  }
  const [lo, hi] = yRange(values, { min: opts.min, max: opts.max });
  const sx = (t) => x0 + ((t - t0) / Math.max(1, t1 - t0)) * (x1 - x0);
  const sy = (v) => y0 - ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (y0 - y1);
  const label = (v) => `${Number.isInteger(v) ? v : v.toFixed(1)}${opts.unit ? ` ${opts.unit}` : ""}`;
  for (const [v, y] of [[hi, y1 + 10], [lo, y0]]) {
    chart.appendChild(svg("text", { x: x0 - 4, y, class: "hc-tick", "text-anchor": "end" }, label(v)));
  }
  const maxGap = Math.max(3 * (opts.everyS ?? 60) * 1000, 5 * 60 * 1000);
  for (const run of runs(points, maxGap)) {
    if (run.length === 1) {
      chart.appendChild(svg("circle", { cx: sx(run[0].t), cy: sy(run[0].v), r: 2.5, class: "hc-dot" }));
      continue;
    }
    const d = run.map((p) => `${sx(p.t).toFixed(1)},${sy(p.v).toFixed(1)}`).join(" ");
    chart.appendChild(svg("polyline", { points: d, class: "hc-line" }));
  }
  const last = values[values.length - 1];
  chart.appendChild(
    svg("text", { x: x1 - 4, y: y1 + 12, class: "hc-last", "text-anchor": "end" }, label(last)),
  );
  return chart;
}
