// The emergency switch (线下线上瞬时切换): hold a school's lessons, or the county's, online
// only (broadcast one way, published for students at home) for some hours or until switched
// back; see what each switch holds, and switch back.
import { call } from "../api.js";
import { getLang } from "../i18n.js";
import { current, el, errorText, loading, ready, table } from "./dom.js";

const WORDS = {
  zh: {
    title: "应急切换：线下转线上",
    intro: "一次操作，把一所学校（或全县）的课程全部改为线上：单向直播，学生在家通过公开页面观看。切回时每节课恢复原样。",
    school: "学校",
    county: "全县",
    hours: "时长（小时，留空表示直到切回）",
    reason: "原因",
    go: "切换为线上",
    confirm: "确定把 {scope} 的课程全部切换为线上吗？",
    none: "没有生效中的应急切换",
    scope: "范围",
    since: "开始",
    until: "直到",
    until_back: "切回为止",
    by: "操作人",
    lessons: "课程数",
    state: "状态",
    active: "生效中",
    ended: "已切回",
    back: "切回线下",
    problems: "未能公开发布的课程",
    links: "学生在家观看的链接（发给家长）",
    lesson: "课程",
  },
  en: {
    title: "Emergency switch: offline to online",
    intro: "One action holds every lesson of a school (or the county) online only: broadcast one way, students watch at home on the public page. Switching back restores each lesson as it was.",
    school: "School",
    county: "The whole county",
    hours: "Hours (empty: until switched back)",
    reason: "Reason",
    go: "Switch to online",
    confirm: "Switch every lesson of {scope} to online only?",
    none: "No emergency switch holds now",
    scope: "Scope",
    since: "Since",
    until: "Until",
    until_back: "until switched back",
    by: "By",
    lessons: "Lessons",
    state: "State",
    active: "holding",
    ended: "switched back",
    back: "Switch back",
    problems: "Lessons not published",
    links: "Links for students at home (send them to the parents)",
    lesson: "Lesson",
  },
};
const w = (key) => WORDS[getLang()][key] ?? key;
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

function form(schools, message, refresh) {
  const box = el("form", undefined, "emergency-form");
  box.id = "emergency-form";
  const school = el("select");
  school.id = "emergency-school";
  const county = el("option", w("county"));
  county.value = "";
  school.appendChild(county);
  for (const name of schools) {
    const opt = el("option", name);
    opt.value = name;
    school.appendChild(opt);
  }
  const hours = el("input");
  hours.id = "emergency-hours";
  hours.type = "number";
  hours.min = "1";
  hours.max = "336";
  hours.value = "24";
  const reason = el("input");
  reason.id = "emergency-reason";
  reason.type = "text";
  reason.maxLength = 500;
  const go = el("button", w("go"), "danger");
  go.type = "submit";
  go.id = "emergency-go";
  const label = (text, control) => {
    const l = el("label", `${text} `);
    l.appendChild(control);
    return l;
  };
  box.append(label(w("school"), school), " ", label(w("hours"), hours), " ", label(w("reason"), reason), " ", go);
  box.addEventListener("submit", async (event) => {
    event.preventDefault();
    const scope = school.value || w("county");
    if (!window.confirm(w("confirm").replace("{scope}", scope))) return;
    const body = { school: school.value || null, reason: reason.value.trim() };
    if (hours.value) body.hours = Number(hours.value);
    const res = await call("POST", "/api/v1/emergency", body);
    message.textContent = res.ok ? "" : errorText(res);
    await refresh();
  });
  return box;
}

function switches(docs, message, refresh) {
  if (!docs.length) return el("p", w("none"));
  const rows = docs.map((s) => {
    const state = el("span", s.active ? w("active") : w("ended"), s.active ? "alert" : "");
    const cell = el("span");
    cell.appendChild(state);
    if (s.active) {
      const back = el("button", w("back"));
      back.type = "button";
      back.className = "emergency-back";
      back.addEventListener("click", async () => {
        const res = await call("POST", `/api/v1/emergency/${s.id}/end`);
        message.textContent = res.ok ? "" : errorText(res);
        await refresh();
      });
      cell.append(" ", back);
    }
    const problems = s.lessons.filter((l) => l.problem).length;
    const count = `${s.lessons.length}${problems ? ` (${w("problems")}: ${problems})` : ""}`;
    const shared = s.lessons.filter((l) => l.public_url);
    if (s.active && shared.length) {
      const links = el("details", undefined, "emergency-links");
      links.appendChild(el("summary", w("links")));
      const list = el("ul");
      for (const l of shared) {
        const item = el("li", `${w("lesson")} ${l.lesson}: `);
        const a = el("a", l.public_url);
        a.href = l.public_url;
        a.target = "_blank";
        a.rel = "noopener";
        item.appendChild(a);
        list.appendChild(item);
      }
      links.appendChild(list);
      cell.append(links);
    }
    return [s.school ?? w("county"), when(s.starts_at), s.until ? when(s.until) : w("until_back"), s.set_by, count, cell];
  });
  const tbl = table(["scope", "since", "until", "by", "lessons", "state"].map(w), rows, "emergency-switches");
  docs.forEach((s, i) => {
    tbl.tBodies[0].rows[i].dataset.switch = String(s.id);
    tbl.tBodies[0].rows[i].dataset.active = s.active ? "1" : "0";
  });
  return tbl;
}

/** Render the emergency switch page into `main`. */
export async function emergency(main) {
  const token = loading();
  const [rooms, list] = await Promise.all([
    call("GET", "/api/v1/classrooms?view=names"),
    call("GET", "/api/v1/emergency"),
  ]);
  if (!current(token)) return;
  if (!rooms.ok || !list.ok) {
    main.replaceChildren(el("p", errorText(rooms.ok ? list : rooms), "error"));
    ready();
    return;
  }
  const schools = [...new Set(rooms.body.map((r) => r.school).filter(Boolean))].sort();
  const message = el("p", "", "error");
  message.id = "emergency-error";
  const holder = el("div");
  const refresh = async () => {
    const got = await call("GET", "/api/v1/emergency");
    if (got.ok) holder.replaceChildren(switches(got.body, message, refresh));
    else message.textContent = errorText(got);
  };
  holder.appendChild(switches(list.body, message, refresh));
  main.replaceChildren(el("h2", w("title")), el("p", w("intro"), "hint"), form(schools, message, refresh), message, holder);
  ready();
}
