// Floor control (课堂互动) in a live lesson: each receiving room by school and classroom,
// call on one room, mute rooms, release the floor; the state refreshes every 2 s.
import { call } from "../api.js";
import { getLang } from "../i18n.js";
import { current, el, errorText, loading, ready, table } from "./dom.js";

const WORDS = {
  zh: {
    title: "课堂互动",
    lesson: "课程",
    none: "现在没有正在上的课",
    nobody: "无人发言",
    has_floor: "正在发言",
    muted: "已静音",
    listening: "听课中",
    school: "学校",
    classroom: "教室",
    state: "状态",
    actions: "操作",
    call_on: "点名发言",
    mute: "静音",
    unmute: "取消静音",
    release: "结束发言",
    lead: "主讲教室",
    read_only: "只有管理员、排课员和本课主讲教师可以点名发言。",
  },
  en: {
    title: "Floor",
    lesson: "Lesson",
    none: "No lesson is live now",
    nobody: "Nobody has the floor",
    has_floor: "Has the floor",
    muted: "Muted",
    listening: "Listening",
    school: "School",
    classroom: "Classroom",
    state: "State",
    actions: "Actions",
    call_on: "Call on",
    mute: "Mute",
    unmute: "Unmute",
    release: "Release floor",
    lead: "Lead classroom",
    read_only: "Only admins, schedulers and the lesson's teacher may give the floor.",
  },
};
const w = (key) => WORDS[getLang()][key] ?? key;
const REFRESH_MS = 2000;
const LIVE = ["preparing", "live"];
// Which lesson the page shows; kept while the console is open (the dashboard sets it).
const chosen = { lesson: null };

const label = (room) => `${room.school ? `${room.school} · ` : ""}${room.name || room.classroom_id}`;

function button(text, cls, onClick, disabled) {
  const b = el("button", text, cls);
  b.type = "button";
  b.disabled = disabled;
  b.addEventListener("click", onClick);
  return b;
}

/** Render the floor document into `panel`; changes PUT the whole floor. */
function render(panel, doc, message, refresh) {
  const put = async (speaking, muted) => {
    const res = await call("PUT", `/api/v1/lessons/${encodeURIComponent(doc.lesson_id)}/floor`, {
      speaking,
      muted,
    });
    message.textContent = res.ok ? "" : errorText(res);
    if (res.ok) render(panel, res.body, message, refresh);
    else await refresh();
  };
  const off = !doc.can_change;
  const speaking = doc.rooms.find((r) => r.classroom_id === doc.speaking);
  const now = el("p", speaking ? `${w("has_floor")}: ${label(speaking)}` : w("nobody"), "floor-now");
  now.id = "floor-speaking";
  now.dataset.speaking = doc.speaking ?? "";
  now.dataset.seq = String(doc.seq);
  const rows = doc.rooms.map((room) => {
    const id = room.classroom_id;
    const isMuted = doc.muted.includes(id);
    const state = id === doc.speaking ? w("has_floor") : isMuted ? w("muted") : w("listening");
    const callOn = button(w("call_on"), "call-on", () => put(id, doc.muted), off || id === doc.speaking);
    const mute = button(isMuted ? w("unmute") : w("mute"), "mute", () =>
      put(doc.speaking, isMuted ? doc.muted.filter((m) => m !== id) : [...doc.muted, id]), off);
    mute.setAttribute("aria-pressed", String(isMuted));
    const actions = el("span", undefined, "floor-actions");
    actions.append(callOn, " ", mute);
    return [room.school, room.name || id, state, actions];
  });
  const tbl = table(["school", "classroom", "state", "actions"].map(w), rows, "floor-rooms");
  doc.rooms.forEach((room, i) => {
    const tr = tbl.tBodies[0].rows[i];
    tr.dataset.classroom = room.classroom_id;
    if (room.classroom_id === doc.speaking) tr.classList.add("speaking");
  });
  const release = button(w("release"), "release", () => put(null, doc.muted), off || !doc.speaking);
  release.id = "floor-release";
  const parts = [el("p", `${w("lead")}: ${label(doc.lead)}`), now, tbl, release];
  if (off) parts.push(el("p", w("read_only"), "hint"));
  panel.replaceChildren(...parts);
}

/** Show the floor of lesson `lessonId` in `main` (from the dashboard's live lessons). */
export function floorOf(main, lessonId) {
  chosen.lesson = lessonId;
  return floor(main);
}

/** Render the floor page into `main`. */
export async function floor(main) {
  const token = loading();
  const res = await call("GET", "/api/v1/lessons");
  if (!current(token)) return; // the person has moved on
  if (!res.ok) {
    main.replaceChildren(el("p", errorText(res), "error"));
    ready();
    return;
  }
  const live = res.body.filter((x) => LIVE.includes(x.state));
  if (!live.length) {
    main.replaceChildren(el("h2", w("title")), el("p", w("none")));
    ready();
    return;
  }
  if (!live.some((x) => x.id === chosen.lesson)) chosen.lesson = live[0].id;
  const pick = el("select");
  pick.id = "floor-lesson";
  pick.setAttribute("aria-label", w("lesson"));
  for (const x of live) {
    const opt = el("option", `${x.id} · ${x.lead} → ${x.receivers.join(", ")}`);
    opt.value = x.id;
    opt.selected = x.id === chosen.lesson;
    pick.appendChild(opt);
  }
  const panel = el("div");
  panel.id = "floor-panel";
  const message = el("p", "", "error");
  message.id = "floor-error";
  const refresh = async () => {
    const got = await call("GET", `/api/v1/lessons/${encodeURIComponent(chosen.lesson)}/floor`);
    if (got.ok) render(panel, got.body, message, refresh);
    else message.textContent = errorText(got);
  };
  pick.addEventListener("change", () => {
    chosen.lesson = pick.value;
    refresh();
  });
  main.replaceChildren(el("h2", w("title")), pick, panel, message);
  await refresh();
  const timer = setInterval(() => {
    if (!panel.isConnected) clearInterval(timer); // the user went to another page
    else refresh();
  }, REFRESH_MS);
  ready();
}
