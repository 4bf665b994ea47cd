// Lesson review (评课) beside a recording: the notes pinned to moments (a click seeks the
// player there), the scores and their mean, and, for reviewers, a note at the player's
// moment and a score against the county's rubric.
import { call } from "../api.js";
import { getLang, t } from "../i18n.js";
import { markNotes } from "./coverage_bar.js";
import { el, errorText, tf } from "./dom.js";

export const REVIEW_ROLES = new Set(["admin", "inspector"]);

function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function label(criterion) {
  return getLang() === "en" ? criterion.label_en : `${criterion.label_zh} ${criterion.label_en}`;
}

/** The review panel of `lesson`, tied to `video`; `canReview` shows the forms, filled
 * with the score `me` gave before. */
export async function reviewPanel(lesson, video, canReview, me) {
  const panel = el("section", undefined, "rev-panel");
  panel.id = "rev-panel";
  const message = el("p", "", "error");
  message.id = "rev-message";
  const render = async () => {
    const res = await call("GET", `/api/v1/lessons/${lesson}/review`);
    if (!res.ok) {
      panel.replaceChildren(el("p", errorText(res), "error"));
      return;
    }
    const doc = res.body;
    const bar = document.getElementById("rec-bar");
    if (bar) markNotes(bar, doc.notes); // the recording's timeline, when beside one
    const notes = el("ol");
    notes.id = "rev-notes";
    for (const note of doc.notes) {
      const item = el("li");
      item.dataset.at = String(note.at_s);
      const at = el("button", clock(note.at_s), "rev-at");
      at.type = "button";
      at.addEventListener("click", () => {
        video.currentTime = note.at_s;
      });
      item.append(at, ` ${note.author}：${note.text}`);
      notes.append(item);
    }
    const mean = el(
      "p",
      doc.mean_pct === null ? t("rev.no_scores") : tf("rev.mean", { pct: doc.mean_pct, n: doc.scores.length }),
    );
    mean.id = "rev-mean";
    const parts = [el("h3", t("rev.title")), notes, mean, message];
    if (canReview) parts.push(noteForm(lesson, video, message, render), scoreForm(lesson, doc, message, render, me));
    panel.replaceChildren(...parts);
    panel.dataset.ready = "1";
  };
  await render();
  return panel;
}

function noteForm(lesson, video, message, render) {
  const form = el("div", undefined, "rev-note-form");
  const text = el("textarea");
  text.id = "rev-text";
  text.maxLength = 2000;
  text.placeholder = t("rev.note_placeholder");
  const add = el("button", t("rev.add_note"));
  add.type = "button";
  add.id = "rev-add";
  add.addEventListener("click", async () => {
    const at = Number.isFinite(video.currentTime) ? video.currentTime : 0;
    const res = await call("POST", `/api/v1/lessons/${lesson}/notes`, { at_s: at, text: text.value });
    if (!res.ok) {
      message.textContent = errorText(res);
      return;
    }
    message.textContent = "";
    text.value = "";
    await render();
  });
  form.append(text, add);
  return form;
}

function scoreForm(lesson, doc, message, render, me) {
  const form = el("div", undefined, "rev-score-form");
  const inputs = new Map();
  const mine = doc.scores.find((s) => s.author === me);
  for (const c of doc.rubric) {
    const row = el("label", `${label(c)} (0–${c.points}) `);
    const box = el("input");
    box.type = "number";
    box.min = "0";
    box.max = String(c.points);
    box.id = `rev-score-${c.id}`;
    if (mine && mine.scores[c.id] !== undefined) box.value = String(mine.scores[c.id]);
    row.append(box);
    inputs.set(c.id, box);
    form.append(row);
  }
  const comment = el("input");
  comment.id = "rev-comment";
  comment.placeholder = t("rev.comment");
  if (mine) comment.value = mine.comment;
  const save = el("button", t("rev.save_score"));
  save.type = "button";
  save.id = "rev-save";
  save.addEventListener("click", async () => {
    const scores = {};
    for (const [id, box] of inputs) scores[id] = box.value === "" ? null : Number(box.value);
    const res = await call("PUT", `/api/v1/lessons/${lesson}/score`, { scores, comment: comment.value });
    if (!res.ok) {
      message.textContent = errorText(res);
      return;
    }
    message.textContent = "";
    await render();
  });
  form.append(comment, save);
  return form;
}
