// Publishing a lesson for many viewers (公开课直播): the lead's programme goes to the
// controller's HLS origin, and schedulers hand out a signed watch link that expires, or
// the intranet link. Each "publish" signs a fresh link; "stop" ends every link at once.
import { call } from "../api.js";
import { getLang } from "../i18n.js";
import { el, errorText } from "./dom.js";

const WORDS = {
  zh: {
    title: "公开课直播（HLS）",
    off: "未发布",
    on: "已发布",
    no_origin: "本控制器未启用 HLS 源站（--hls-origin），无法发布",
    hours: "链接有效（小时）",
    publish: "发布并生成观看链接",
    again: "生成新的观看链接",
    stop: "停止发布",
    public: "公网观看链接",
    until: "有效至",
    intranet: "内网观看链接",
    push: "推流状态",
  },
  en: {
    title: "Open lesson (HLS)",
    off: "Not published",
    on: "Published",
    no_origin: "This controller runs no HLS origin (--hls-origin); publishing is off",
    hours: "Link valid (hours)",
    publish: "Publish and make a watch link",
    again: "Make a new watch link",
    stop: "Stop publishing",
    public: "Public watch link",
    until: "valid until",
    intranet: "Intranet watch link",
    push: "Push",
  },
};
const w = (key) => WORDS[getLang()][key] ?? key;
const path = (id) => `/api/v1/lessons/${encodeURIComponent(id)}/publish`;

function link(label, url, id) {
  const a = el("a", url);
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  a.id = id;
  const p = el("p", undefined, "publish-link");
  p.append(`${label}: `, a);
  return p;
}

/** A panel that shows, and for schedulers changes, whether lesson `lessonId` is
 * published; `onChange` runs after a change (the push panel lists the origin's target). */
export function publishSection(lessonId, canEdit, onChange = () => {}) {
  const panel = el("section", undefined, "publishing");
  panel.id = "publish-panel";
  const message = el("p", "", "error");
  message.id = "publish-error";
  let links = null; // the last links this page signed
  const render = (doc) => {
    const parts = [el("h3", w("title"))];
    const state = el("p", doc.published ? w("on") : w("off"), "publish-state");
    state.id = "publish-state";
    state.dataset.published = doc.published ? "1" : "0";
    if (doc.push) state.append(` · ${w("push")}: ${doc.push.state}`);
    parts.push(state);
    if (!doc.origin) parts.push(el("p", w("no_origin"), "hint"));
    if (doc.published && links) {
      const until = new Date(links.expires_at * 1000).toLocaleString();
      parts.push(link(`${w("public")} (${w("until")} ${until})`, links.public_url, "publish-public"));
    }
    if (doc.published && doc.intranet_url) {
      parts.push(link(w("intranet"), doc.intranet_url, "publish-intranet"));
    }
    if (canEdit && doc.origin && doc.changeable) {
      const hours = el("input");
      hours.type = "number";
      hours.min = "0.05";
      hours.max = "168";
      hours.step = "any";
      hours.value = "4";
      hours.id = "publish-hours";
      hours.setAttribute("aria-label", w("hours"));
      const go = el("button", doc.published ? w("again") : w("publish"));
      go.type = "button";
      go.id = "publish-go";
      go.addEventListener("click", async () => {
        const res = await call("POST", path(lessonId), { valid_hours: Number(hours.value) });
        message.textContent = res.ok ? "" : errorText(res);
        if (res.ok) {
          links = res.body;
          render({ ...res.body, origin: true });
          onChange();
        }
      });
      const row = el("p");
      row.append(`${w("hours")} `, hours, " ", go);
      if (doc.published) {
        const stop = el("button", w("stop"));
        stop.type = "button";
        stop.id = "publish-stop";
        stop.addEventListener("click", async () => {
          const res = await call("DELETE", path(lessonId));
          message.textContent = res.ok ? "" : errorText(res);
          if (res.ok) {
            links = null;
            render({ ...res.body, origin: true });
            onChange();
          }
        });
        row.append(" ", stop);
      }
      parts.push(row);
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
