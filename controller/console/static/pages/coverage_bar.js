// The coverage bar under a recording's player: the lesson's scheduled time left to right,
// covered stretches and gaps (the reason in each gap's tooltip), a playhead; a click seeks.
// Drawn as SVG with presentation attributes, so the console's CSP needs no inline style.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 1000;
const HEIGHT = 24;

function node(tag, attrs = {}) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
}

/** Covered stretches of [0, total]: what the gaps leave. */
function covered(total, gaps) {
  const out = [];
  let cursor = 0;
  for (const g of [...gaps].sort((a, b) => a.start_s - b.start_s)) {
    if (g.start_s > cursor) out.push([cursor, g.start_s]);
    cursor = Math.max(cursor, g.end_s);
  }
  if (cursor < total) out.push([cursor, total]);
  return out;
}

/**
 * An <svg id="rec-bar"> for `video`: `total` seconds scheduled, `gaps` from the manifest's
 * coverage ({start_s, end_s, reason, detail}), `describe(gap)` the text shown on hover.
 */
export function coverageBar(video, total, gaps, describe) {
  const span = Math.max(total, 0.001);
  const x = (s) => (Math.min(Math.max(s, 0), span) / span) * WIDTH;
  const svg = node("svg", {
    id: "rec-bar",
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: "none",
    role: "slider",
    "aria-valuemin": 0,
    "aria-valuemax": Math.round(span),
    "aria-valuenow": 0,
  });
  svg.classList.add("rec-bar");
  svg.dataset.scheduled = String(span);
  svg.appendChild(node("rect", { x: 0, y: 0, width: WIDTH, height: HEIGHT, class: "track" }));
  for (const [a, b] of covered(span, gaps)) {
    svg.appendChild(node("rect", { x: x(a), y: 0, width: x(b) - x(a), height: HEIGHT, class: "covered" }));
  }
  for (const g of gaps) {
    const rect = node("rect", {
      x: x(g.start_s),
      y: 0,
      width: Math.max(x(g.end_s) - x(g.start_s), 2),
      height: HEIGHT,
      class: `gap gap-${g.reason}`,
    });
    rect.dataset.reason = g.reason;
    const title = node("title");
    title.textContent = describe(g);
    rect.appendChild(title);
    svg.appendChild(rect);
  }
  const head = node("rect", { x: 0, y: 0, width: 3, height: HEIGHT, class: "playhead" });
  svg.appendChild(head);
  const move = () => {
    head.setAttribute("x", String(Math.min(x(video.currentTime), WIDTH - 3)));
    svg.setAttribute("aria-valuenow", String(Math.round(video.currentTime)));
  };
  video.addEventListener("timeupdate", move);
  video.addEventListener("seeked", move);
  svg.addEventListener("click", (event) => {
    const box = svg.getBoundingClientRect();
    const share = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
    let target = share * span;
    if (Number.isFinite(video.duration)) target = Math.min(target, Math.max(video.duration - 0.05, 0));
    video.currentTime = target;
    svg.dataset.seekedTo = String(target);
    move();
  });
  return svg;
}

/** Mark review notes (评课) on a bar made by coverageBar: a thin tick at each note's moment,
 * its text on hover. Marks drawn before are replaced. */
export function markNotes(svg, notes) {
  for (const old of svg.querySelectorAll("rect.note")) old.remove();
  const span = Number(svg.dataset.scheduled) || 0.001;
  for (const n of notes) {
    const at = (Math.min(Math.max(n.at_s, 0), span) / span) * WIDTH;
    const mark = node("rect", { x: Math.max(at - 2, 0), y: 0, width: 4, height: HEIGHT, class: "note" });
    mark.dataset.at = String(n.at_s);
    const title = node("title");
    title.textContent = `${n.author}: ${n.text}`;
    mark.appendChild(title);
    svg.appendChild(mark);
  }
}
