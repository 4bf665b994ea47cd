// The resource library (资源库): browse approved items (every staff role), play them and
// download their packages; the review queue (pending, rejected, unpublished) for admins,
// schedulers and inspectors; approve or reject (admin, inspector — not one's own
// request); unpublish with a reason; a scheduler sets a room to play an approved item
// in class (专递课堂 on demand). Items are asked for on the recordings page.
import { call } from "../api.js";
import { t } from "../i18n.js";
import { current, el, errorText, loading, ready, table, tf, useStyles } from "./dom.js";

const QUEUE_ROLES = new Set(["admin", "scheduler", "inspector"]);
const REVIEW_ROLES = new Set(["admin", "inspector"]);
const SCHEDULE_ROLES = new Set(["admin", "scheduler"]);
const STATUSES = ["approved", "pending", "rejected", "unpublished", "all"];

function button(text, cls, onClick) {
  const b = el("button", text, cls);
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

function span(item) {
  if (!item.clip) return t("lib.k.recording");
  return tf("lib.k.clip", { from: item.clip.start_s.toFixed(1), to: item.clip.end_s.toFixed(1) });
}

function actions(ctx, item) {
  const box = el("span", undefined, "lib-actions");
  const play = el("a", t("rec.play"), "lib-play");
  play.href = item.media_url;
  play.target = "_blank";
  box.append(play);
  if (item.package_url) {
    const pkg = el("a", t("lib.package"), "lib-package");
    pkg.href = item.package_url;
    pkg.download = `classbridge-resource-${item.id}.zip`;
    box.append(" ", pkg);
  }
  const reason = el("input", undefined, "lib-reason");
  reason.placeholder = t("lib.reason");
  reason.maxLength = 500;
  const act = (path, body) => async () => {
    const res = await call("POST", `/api/v1/library/items/${item.id}/${path}`, body());
    if (res.ok) ctx.load();
    else ctx.message.textContent = errorText(res);
  };
  const mine = item.requested_by === ctx.me;
  if (item.status === "pending" && ctx.canReview && !mine) {
    box.append(
      " ",
      button(t("lib.approve"), "lib-approve", act("review", () => ({ decision: "approve" }))),
      " ",
      button(
        t("lib.reject"),
        "lib-reject",
        act("review", () => ({ decision: "reject", reason: reason.value })),
      ),
    );
  }
  if ((item.status === "pending" || item.status === "approved") && ctx.canQueue) {
    box.append(
      " ",
      button(t("lib.unpublish"), "lib-unpublish", act("unpublish", () => ({ reason: reason.value }))),
    );
  }
  if (box.querySelector("button")) box.append(" ", reason);
  if (item.status === "approved" && ctx.canSchedule) box.append(" ", deliveryForm(ctx, item));
  return box;
}

// 专递课堂 on demand: a room plays this item in class at a time (controller.delivery).
function deliveryForm(ctx, item) {
  const form = el("span", undefined, "lib-delivery");
  const room = el("input", undefined, "lib-delivery-room");
  room.placeholder = t("lib.delivery.room");
  room.maxLength = 64;
  const at = el("input", undefined, "lib-delivery-start");
  at.type = "datetime-local";
  const go = button(t("lib.delivery.go"), "lib-delivery-go", async () => {
    if (!room.value || !at.value) {
      ctx.message.textContent = t("lib.delivery.need");
      return;
    }
    const start = new Date(at.value).toISOString();
    const res = await call("POST", `/api/v1/library/items/${item.id}/deliveries`, {
      classroom: room.value.trim(),
      start,
    });
    ctx.message.textContent = res.ok
      ? tf("lib.delivery.done", { lesson: res.body.lesson.id, room: res.body.lesson.classroom })
      : errorText(res);
  });
  form.append(room, " ", at, " ", go);
  return form;
}

function itemsTable(ctx, items) {
  const headers = [
    "lib.title", "lib.subject", "lib.grade", "lib.chapter", "lib.teacher", "lib.school",
    "lib.kind", "rec.duration", "lib.status", "rec.actions",
  ];
  const rows = items.map((i) => [
    i.metadata.title,
    i.metadata.subject,
    i.metadata.grade,
    i.metadata.chapter,
    i.metadata.teacher,
    i.metadata.school,
    span(i),
    i.duration_s === null ? "—" : `${Math.round(i.duration_s)} s`,
    t(`lib.s.${i.status}`) + (i.review_reason ? ` (${i.review_reason})` : ""),
    actions(ctx, i),
  ]);
  const tbl = table(headers, rows, "lib-items");
  items.forEach((item, n) => {
    tbl.tBodies[0].rows[n].dataset.item = String(item.id);
    tbl.tBodies[0].rows[n].dataset.status = item.status;
  });
  return tbl;
}

export async function library(main) {
  const token = loading();
  useStyles();
  const session = await call("GET", "/api/v1/session");
  if (!current(token)) return;
  const role = session.body?.role;
  const root = el("section");
  root.id = "library";
  const ctx = {
    me: session.body?.user,
    canQueue: QUEUE_ROLES.has(role),
    canReview: REVIEW_ROLES.has(role),
    canSchedule: SCHEDULE_ROLES.has(role),
    message: el("p", "", "error"),
    status: "approved",
  };
  const list = el("div");
  const pick = el("select");
  pick.id = "lib-status";
  for (const s of ctx.canQueue ? STATUSES : ["approved"]) {
    const opt = el("option", t(`lib.s.${s}`));
    opt.value = s;
    pick.appendChild(opt);
  }
  pick.addEventListener("change", () => {
    ctx.status = pick.value;
    ctx.load();
  });
  ctx.load = async () => {
    const mine = loading();
    const res = await call("GET", `/api/v1/library/items?status=${ctx.status}&limit=200`);
    if (!current(mine)) return;
    if (!res.ok) {
      list.replaceChildren(el("p", errorText(res), "error"));
    } else {
      const count = el("p", tf("lib.count", { total: res.body.total }));
      count.id = "lib-count";
      list.replaceChildren(
        count,
        res.body.items.length ? itemsTable(ctx, res.body.items) : el("p", t("lib.none")),
      );
    }
    ready();
  };
  root.append(el("h2", t("nav.library")), el("p", t("lib.hint")), pick, ctx.message, list);
  main.replaceChildren(root);
  await ctx.load();
}
