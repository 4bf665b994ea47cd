// Technicians' remote actions on a classroom PC (POST /api/v1/classrooms/{id}/actions):
// run doctor and show its list, pull the agent's recent log, recall a PTZ preset,
// restart the agent. Shown to admins and technicians; the API refuses everyone else.
import { call } from "../api.js";
import { t } from "../i18n.js";
import { el, errorText } from "./dom.js";

const PRESETS = ["wide", "teacher", "board", "students"];

function role() {
  return document.getElementById("user-role")?.dataset.role ?? "";
}

function button(key, id) {
  const b = el("button", t(key));
  b.type = "button";
  b.id = id;
  return b;
}

/** The actions panel for one classroom, or nothing for roles that may not act. */
export function actionsPanel(room) {
  if (!["admin", "technician"].includes(role())) return [];
  const out = el("pre", "", "action-output");
  out.id = "action-output";
  const status = el("p", "", "cr-muted");
  status.id = "action-status";
  const run = async (body, buttons) => {
    for (const b of buttons) b.disabled = true;
    status.textContent = t("act.running");
    out.textContent = "";
    const res = await call("POST", `/api/v1/classrooms/${encodeURIComponent(room.id)}/actions`, body);
    for (const b of buttons) b.disabled = false;
    if (!res.ok) {
      status.textContent = errorText(res);
      return;
    }
    status.textContent = res.body.ok ? t("act.ok") : t("act.failed");
    status.dataset.ok = String(res.body.ok);
    out.textContent = res.body.output;
  };
  const doctor = button("act.doctor", "act-doctor");
  const logs = button("act.logs", "act-logs");
  const restart = button("act.restart", "act-restart");
  const camera = el("select");
  camera.id = "act-camera";
  for (const d of room.inventory ?? []) {
    if (d.kind === "camera") camera.appendChild(new Option(d.name, d.name));
  }
  const preset = el("select");
  preset.id = "act-preset";
  for (const p of PRESETS) preset.appendChild(new Option(t(`act.preset.${p}`), p));
  const ptz = button("act.ptz", "act-ptz");
  const all = [doctor, logs, restart, ptz];
  doctor.addEventListener("click", () => run({ action: "doctor" }, all));
  logs.addEventListener("click", () => run({ action: "logs", lines: 200 }, all));
  restart.addEventListener("click", () => {
    if (window.confirm(t("act.restart_confirm"))) run({ action: "restart" }, all);
  });
  ptz.addEventListener("click", () =>
    run({ action: "ptz", camera: camera.value, preset: preset.value }, all),
  );
  const row = el("div", null, "action-row");
  row.append(doctor, logs, restart, camera, preset, ptz);
  return [el("h3", t("act.title")), row, status, out];
}
