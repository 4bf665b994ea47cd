// A lesson's live push targets (直播推流): DingTalk or WeChat live rooms the lead's
// programme is pushed to, each with its state as the lead classroom reports it. Schedulers
// edit the list; the stream keys are never shown back (the server redacts them), so a
// target whose address is left blank is sent by name alone, and the server keeps its key.
import { call } from "../api.js";
import { getLang } from "../i18n.js";
import { el, errorText, table } from "./dom.js";

const WORDS = {
  zh: {
    title: "直播推流",
    none: "本课没有推流目标",
    name: "平台",
    where: "推流地址",
    state: "状态",
    traffic: "已发送",
    add: "添加推流目标",
    save: "保存推流目标",
    remove: "删除",
    name_hint: "名称（如 钉钉直播）",
    url_hint: "rtmp://主机/应用/推流码",
    saved: "已保存",
    unknown: "未上报",
    idle: "未开始",
    connecting: "连接中",
    live: "直播中",
    retrying: "重连中",
    stopped: "已停止",
    key_kept: "（推流码已隐藏；留空则保持不变）",
  },
  en: {
    title: "Live push",
    none: "This lesson has no live push target",
    name: "Platform",
    where: "Push address",
    state: "State",
    traffic: "Sent",
    add: "Add a target",
    save: "Save push targets",
    remove: "Remove",
    name_hint: "name (e.g. DingTalk live)",
    url_hint: "rtmp://host/app/stream-key",
    saved: "Saved",
    unknown: "not reported",
    idle: "idle",
    connecting: "connecting",
    live: "live",
    retrying: "retrying",
    stopped: "stopped",
    key_kept: "(stream key hidden; leave blank to keep it)",
  },
};
const w = (key) => WORDS[getLang()][key] ?? key;
const path = (id) => `/api/v1/lessons/${encodeURIComponent(id)}/push`;
const mb = (bytes) => `${(Number(bytes || 0) / 1e6).toFixed(1)} MB`;

function field(value, hint, cls) {
  const box = el("input", undefined, cls);
  box.type = "text";
  box.value = value;
  box.placeholder = hint;
  box.setAttribute("aria-label", hint);
  return box;
}

/** The rows of the editor: each keeps the address it was shown with (redacted). */
function editor(doc, onSave) {
  const box = el("div", undefined, "push-editor");
  const rows = el("div");
  const addRow = (name = "", where = "") => {
    const row = el("div", undefined, "push-row");
    row.dataset.where = where;
    const n = field(name, w("name_hint"), "push-name");
    const u = field("", where ? `${where} ${w("key_kept")}` : w("url_hint"), "push-url");
    const drop = el("button", w("remove"));
    drop.type = "button";
    drop.addEventListener("click", () => row.remove());
    row.append(n, " ", u, " ", drop);
    rows.appendChild(row);
  };
  for (const t of doc.targets) addRow(t.name, t.where);
  const add = el("button", w("add"));
  add.type = "button";
  add.id = "push-add";
  add.addEventListener("click", () => addRow());
  const save = el("button", w("save"));
  save.type = "button";
  save.id = "push-save";
  save.addEventListener("click", () => {
    const targets = [...rows.querySelectorAll(".push-row")].map((row) => ({
      name: row.querySelector(".push-name").value.trim(),
      url: row.querySelector(".push-url").value.trim(),
      where: row.dataset.where,
    }));
    onSave(targets);
  });
  box.append(rows, add, " ", save);
  return box;
}

/** A panel showing (and, for schedulers, editing) lesson `lessonId`'s push targets. */
export function pushSection(lessonId, canEdit) {
  const panel = el("section", undefined, "live-push");
  panel.id = "push-panel";
  const message = el("p", "", "error");
  message.id = "push-error";
  const render = (doc) => {
    const rows = doc.targets.map((t) => {
      const state = el("span", w(t.state), `push-state push-${t.state}`);
      state.dataset.state = t.state;
      if (t.last_error) state.title = t.last_error;
      return [t.name, t.where, state, mb(t.bytes)];
    });
    const parts = [el("h3", w("title"))];
    parts.push(
      rows.length
        ? table(["name", "where", "state", "traffic"].map(w), rows, "push-targets")
        : el("p", w("none")),
    );
    if (canEdit && doc.changeable) {
      parts.push(
        editor(doc, async (targets) => {
          const body = targets.map((t) => (t.url ? { name: t.name, url: t.url } : { name: t.name }));
          const res = await call("PUT", path(lessonId), { targets: body });
          message.textContent = res.ok ? w("saved") : errorText(res);
          message.className = res.ok ? "hint" : "error";
          if (res.ok) render(res.body);
        }),
      );
    }
    parts.push(message);
    panel.replaceChildren(...parts);
  };
  panel.refresh = async () => {
    const res = await call("GET", path(lessonId));
    if (res.ok) render(res.body);
    else panel.replaceChildren(el("h3", w("title")), el("p", errorText(res), "error"));
  };
  panel.refresh();
  return panel;
}
