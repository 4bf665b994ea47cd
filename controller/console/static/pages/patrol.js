// Patrol (巡课): every live lesson as a tile with a live, muted thumbnail of the lead's
// camera (a small receive-only WebRTC viewer, through the controller's relay or, for a
// lesson on Janus, through Janus itself) and the agents' QoS; a click opens the big view: the lead with sound, the receiving rooms beside.
import { call } from "../api.js";
import { getLang } from "../i18n.js";
import { current, loading, ready } from "./dom.js";
import { REVIEW_ROLES, reviewPanel } from "./review.js";

const WORDS = {
  zh: {
    title: "网络巡课",
    none: "现在没有正在上的课",
    lead: "主讲",
    receivers: "听课",
    bitrate: "码率",
    fps: "帧率",
    rtt: "往返时延",
    frozen: "卡顿",
    loss: "丢包",
    na: "无数据",
    close: "返回",
    viewers: "巡课人数",
    inbound: "本机接收",
    failed: "无法观看",
  },
  en: {
    title: "Patrol",
    none: "No lesson is live now",
    lead: "Lead",
    receivers: "Receivers",
    bitrate: "Bitrate",
    fps: "fps",
    rtt: "RTT",
    frozen: "Frozen",
    loss: "Loss",
    na: "n/a",
    close: "Back",
    viewers: "Viewers",
    inbound: "Received here",
    failed: "Cannot watch",
  },
};
const w = (key) => WORDS[getLang()][key] ?? key;
const REFRESH_MS = 2000;

// Open connections; also read by the browser test and scripts/bench_console.py.
const state = { thumbs: new Map(), view: null, timer: null, root: null, lessons: [] };
window.classbridgePatrol = state;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function useStyles() {
  if (document.getElementById("patrol-css")) return;
  const link = document.createElement("link");
  link.id = "patrol-css";
  link.rel = "stylesheet";
  link.href = "/console/pages/patrol.css";
  document.head.appendChild(link);
}

function gathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

/** Watch `feeds` of a lesson through the controller's relay: the browser offers one
 * recvonly transceiver per feed, in order, and the relay answers. */
async function watchRelay(lessonId, feeds) {
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  const tracks = feeds.map((f) => pc.addTransceiver(f.kind, { direction: "recvonly" }).receiver.track);
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, 1000); // the relay does not trickle: send the candidates in the offer
  const path = `/api/v1/lessons/${encodeURIComponent(lessonId)}/watch`;
  const res = await call("POST", path, {
    sdp: pc.localDescription.sdp,
    feeds: feeds.map(({ classroom, track, kind }) => ({ classroom, track, kind })),
  });
  if (!res.ok) {
    pc.close();
    throw new Error(res.body?.error ?? `HTTP ${res.status}`);
  }
  await pc.setRemoteDescription({ type: "answer", sdp: res.body.sdp });
  return { pc, lessonId, viewer: res.body.viewer, tracks, feeds };
}

/** Watch `feeds` of a lesson carried by Janus: the controller subscribes us in the
 * lesson's room and hands over Janus's offer; our answer goes back through it, and the
 * media flows between this browser and Janus. */
async function watchJanus(lessonId, feeds) {
  const base = `/api/v1/lessons/${encodeURIComponent(lessonId)}/watch`;
  const res = await call("POST", base, {
    feeds: feeds.map(({ classroom, track, kind }) => ({ classroom, track, kind })),
  });
  if (!res.ok) throw new Error(res.body?.error ?? `HTTP ${res.status}`);
  const { viewer, mids } = res.body;
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  const conn = { pc, lessonId, viewer, tracks: [], feeds };
  try {
    await pc.setRemoteDescription({ type: "offer", sdp: res.body.sdp });
    const byMid = new Map(pc.getTransceivers().map((t) => [t.mid, t]));
    conn.tracks = mids.map((mid) => byMid.get(mid).receiver.track);
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc, 1000); // Janus is not sent trickled candidates: they go in the answer
    const sent = await call("POST", `${base}/${viewer}/answer`, { sdp: pc.localDescription.sdp });
    if (!sent.ok) throw new Error(sent.body?.error ?? `HTTP ${sent.status}`);
  } catch (err) {
    hangUp(conn);
    throw err;
  }
  return conn;
}

/** Watch `feeds` of a live lesson, the way its backend ("builtin" or "janus") wants. */
function watch(lesson, feeds) {
  return lesson.backend === "janus" ? watchJanus(lesson.id, feeds) : watchRelay(lesson.id, feeds);
}

function hangUp(conn) {
  if (!conn) return;
  conn.pc.close();
  const path = `/api/v1/lessons/${encodeURIComponent(conn.lessonId)}/watch/${conn.viewer}`;
  call("DELETE", path).catch(() => {});
}

function stopAll() {
  clearInterval(state.timer);
  state.timer = null;
  for (const conn of state.thumbs.values()) hangUp(conn);
  state.thumbs.clear();
  hangUp(state.view);
  state.view = null;
}

const kbps = (bps) => (bps == null ? w("na") : `${(bps / 1e6).toFixed(2)} Mbps`);
const num = (x, unit = "") => (x == null ? w("na") : `${Math.round(x)}${unit}`);

function leadCamera(lesson) {
  const mine = lesson.feeds.filter((f) => f.classroom === lesson.lead && f.kind === "video");
  return mine.find((f) => f.track === "teacher") ?? mine[0];
}

function qosLine(lesson) {
  const cam = leadCamera(lesson);
  const room = lesson.classrooms[lesson.lead] ?? {};
  const line = el("div", undefined, "patrol-qos");
  const frozen = cam?.frozen_s ?? null;
  const items = [
    [w("bitrate"), kbps(cam?.bitrate_bps)],
    [w("fps"), num(cam?.fps)],
    [w("rtt"), num(cam?.rtt_ms ?? room.control_rtt_ms, " ms")],
    [w("frozen"), frozen == null ? w("na") : `${frozen} s`, frozen > 0],
    [w("loss"), cam?.loss_pct == null ? w("na") : `${cam.loss_pct}%`, cam?.loss_pct > 2],
    [w("viewers"), String(lesson.viewers)],
  ];
  for (const [label, value, bad] of items) {
    const span = el("span", `${label} ${value}`);
    if (bad) span.className = "bad";
    if (label === w("rtt")) span.title = lesson.unavailable?.media_latency_ms ?? "";
    line.appendChild(span);
  }
  return line;
}

function names(lesson, ids) {
  return ids.map((c) => lesson.classrooms[c]?.name || c).join("、");
}

async function startThumb(lesson, video) {
  const cam = leadCamera(lesson);
  if (!cam || state.thumbs.has(lesson.id)) return;
  state.thumbs.set(lesson.id, null);
  try {
    const conn = await watch(lesson, [cam]);
    if (!state.thumbs.has(lesson.id) || !video.isConnected) return hangUp(conn);
    state.thumbs.set(lesson.id, conn);
    video.srcObject = new MediaStream(conn.tracks);
  } catch (err) {
    state.thumbs.delete(lesson.id);
    video.title = `${w("failed")}: ${err.message}`;
  }
}

function tile(lesson) {
  const button = el("button", undefined, "patrol-tile");
  button.type = "button";
  button.dataset.lesson = lesson.id;
  const video = el("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  const title = el("strong", `${w("lead")}: ${names(lesson, [lesson.lead])}`);
  const sub = el("span", `${w("receivers")}: ${names(lesson, lesson.receivers)}`);
  button.append(video, title, sub, qosLine(lesson));
  button.addEventListener("click", () => openView(lesson.id));
  startThumb(lesson, video);
  return button;
}

function figure(stream, caption, main) {
  const fig = el("figure");
  const video = el("video");
  video.autoplay = true;
  video.playsInline = true;
  video.muted = !main;
  if (main) video.id = "patrol-main";
  video.srcObject = stream;
  fig.append(video, el("figcaption", caption));
  return fig;
}

async function inboundLine(conn, line) {
  const mid = conn.pc.getTransceivers()[0].mid; // the lead camera
  const stats = await conn.pc.getStats();
  for (const s of stats.values()) {
    if (s.type !== "inbound-rtp" || s.mid !== mid) continue;
    const lost = s.packetsLost ?? 0;
    const total = lost + (s.packetsReceived ?? 0);
    line.textContent =
      `${w("inbound")}: ${num(s.framesPerSecond)} ${w("fps")} · ` +
      `${w("loss")} ${total ? ((100 * lost) / total).toFixed(1) : "0.0"}% · ` +
      `jitter ${num((s.jitter ?? 0) * 1000, " ms")} · ` +
      `${w("frozen")} ${(s.totalFreezesDuration ?? 0).toFixed(1)} s`;
    return;
  }
}

/** The big view: the lead's feeds (its microphone plays) and each receiver's camera. */
async function openView(lessonId) {
  const lesson = state.lessons.find((x) => x.id === lessonId);
  const section = document.getElementById("patrol-view");
  if (!lesson || !section) return;
  hangUp(state.view);
  state.view = null;
  const cam = leadCamera(lesson);
  const leadAudio = lesson.feeds.filter((f) => f.classroom === lesson.lead && f.kind === "audio");
  const others = lesson.feeds.filter((f) => f.kind === "video" && f !== cam);
  const feeds = [cam, ...leadAudio, ...others].filter(Boolean);
  section.hidden = false;
  section.dataset.lesson = lessonId;
  const close = el("button", w("close"));
  close.type = "button";
  close.addEventListener("click", () => {
    hangUp(state.view);
    state.view = null;
    section.hidden = true;
    section.replaceChildren();
  });
  const inbound = el("div", "", "patrol-qos");
  inbound.id = "patrol-inbound";
  section.replaceChildren(el("h3", `${w("lead")}: ${names(lesson, [lesson.lead])}`), close);
  let conn;
  try {
    conn = await watch(lesson, feeds);
  } catch (err) {
    section.append(el("p", `${w("failed")}: ${err.message}`, "error"));
    return;
  }
  if (section.dataset.lesson !== lessonId || !section.isConnected) return hangUp(conn);
  state.view = conn;
  const main = new MediaStream([conn.tracks[0], ...conn.tracks.slice(1, 1 + leadAudio.length)]);
  const side = el("div", undefined, "side");
  others.forEach((f, i) => {
    const stream = new MediaStream([conn.tracks[1 + leadAudio.length + i]]);
    side.appendChild(figure(stream, `${names(lesson, [f.classroom])} · ${f.track}`, false));
  });
  const stage = el("div", undefined, "stage");
  stage.append(figure(main, `${names(lesson, [lesson.lead])} · ${cam.track}`, true), side);
  section.append(stage, inbound);
  // Review (评课) while watching: a note is pinned to the lesson's clock now.
  const session = await call("GET", "/api/v1/session");
  const live = {
    get currentTime() {
      return Math.max(0, (Date.now() - Date.parse(lesson.start_at)) / 1000);
    },
    set currentTime(_) {}, // a live lesson cannot be seeked
  };
  const role = session.body?.role;
  const panel = await reviewPanel(lessonId, live, REVIEW_ROLES.has(role), session.body?.user);
  if (section.dataset.lesson === lessonId && section.isConnected) section.append(panel);
}

function render(grid, lessons) {
  state.lessons = lessons;
  const seen = new Set(lessons.map((x) => x.id));
  for (const [id, conn] of state.thumbs) {
    if (!seen.has(id)) {
      hangUp(conn);
      state.thumbs.delete(id);
    }
  }
  const old = new Map([...grid.querySelectorAll(".patrol-tile")].map((t) => [t.dataset.lesson, t]));
  const tiles = lessons.map((lesson) => {
    const existing = old.get(lesson.id);
    if (!existing) return tile(lesson);
    existing.querySelector(".patrol-qos").replaceWith(qosLine(lesson));
    if (!state.thumbs.has(lesson.id)) startThumb(lesson, existing.querySelector("video"));
    return existing;
  });
  grid.replaceChildren(...tiles);
  document.getElementById("patrol-none").hidden = lessons.length > 0;
}

async function refresh(root, grid) {
  if (!root.isConnected) return stopAll(); // the console moved to another page
  const res = await call("GET", "/api/v1/live");
  if (res.ok) render(grid, res.body);
  if (state.view) inboundLine(state.view, document.getElementById("patrol-inbound"));
}

/** Render the patrol page into `main`; resolves when the live lessons are shown. */
export async function patrol(main) {
  stopAll();
  useStyles();
  const token = loading();
  const res = await call("GET", "/api/v1/live");
  // A person who moved on meanwhile gets no page, and no viewer of a classroom's camera.
  if (!current(token)) return;
  ready();
  if (!res.ok) {
    main.replaceChildren(el("p", `${w("failed")}: ${res.body?.error ?? res.status}`, "error"));
    return;
  }
  const root = el("section");
  root.id = "patrol";
  const view = el("section");
  view.id = "patrol-view";
  view.hidden = true;
  const grid = el("div");
  grid.id = "patrol-grid";
  const none = el("p", w("none"));
  none.id = "patrol-none";
  root.append(el("h2", w("title")), view, none, grid);
  main.replaceChildren(root);
  state.root = root;
  render(grid, res.body);
  state.timer = setInterval(() => refresh(root, grid), REFRESH_MS);
  window.addEventListener("pagehide", stopAll, { once: true });
}
