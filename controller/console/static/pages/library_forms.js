// The resource library's forms on a recording's row: ask to publish it with its metadata
// (POST /api/v1/library/items), or cut a clip of at most 5 minutes from it
// (POST /api/v1/library/clips). Either becomes a pending item a reviewer approves.
import { call } from "../api.js";
import { t } from "../i18n.js";
import { el, errorText, tf } from "./dom.js";

// The metadata fields and the longest value the API takes for each.
const FIELDS = [
  ["title", 200],
  ["subject", 64],
  ["grade", 32],
  ["chapter", 200],
  ["teacher", 64],
  ["school", 200],
];

function field(name, value, max, type = "text") {
  const label = el("label");
  const box = el("input");
  box.name = name;
  box.type = type;
  if (type === "text") box.maxLength = max;
  else box.step = "0.1";
  box.value = value ?? "";
  label.append(el("span", t(`lib.${name}`)), box);
  return label;
}

/** A form on ``row`` (a recording search row); ``clip`` adds start and end seconds.
 * ``done(item)`` is called with the created item. */
export function libraryForm(row, clip, done) {
  const form = el("form", undefined, clip ? "lib-clip-form" : "lib-publish-form");
  const values = {
    title: row.title,
    subject: row.subject,
    teacher: row.teacher,
    school: row.school,
  };
  if (clip) form.append(field("start_s", "0", 0, "number"), field("end_s", "", 0, "number"));
  for (const [name, max] of FIELDS) form.append(field(name, values[name], max));
  const send = el("button", t(clip ? "lib.cut" : "lib.ask"));
  send.type = "submit";
  send.className = "lib-send";
  const message = el("span", "", "lib-message");
  form.append(send, message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { lesson: row.lesson, classroom: row.classroom, track: row.track };
    for (const input of form.querySelectorAll("input")) {
      body[input.name] = input.type === "number" ? Number(input.value) : input.value;
    }
    send.disabled = true;
    message.textContent = clip ? t("lib.cutting") : "";
    const res = await call("POST", clip ? "/api/v1/library/clips" : "/api/v1/library/items", body);
    send.disabled = false;
    if (!res.ok) {
      message.textContent = errorText(res);
      message.classList.add("error");
      return;
    }
    message.classList.remove("error");
    message.textContent = tf("lib.asked", { id: res.body.id, status: t(`lib.s.${res.body.status}`) });
    done(res.body);
  });
  return form;
}
