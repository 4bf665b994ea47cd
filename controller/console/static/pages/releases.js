// Agent updates (分批升级): the releases held (each signed with the release key, which
// never comes here), the ring of each school or classroom, and the latest rollouts with
// each classroom's progress (GET /api/v1/releases). An administrator puts schools and
// classrooms in rings (PUT /api/v1/releases/rings), starts a rollout inside a maintenance
// window (POST /api/v1/releases/rollouts) and pauses, resumes or cancels it. Releases are
// added on the controller with `classroom-controller release add`.
import { call } from "../api.js";
import { t } from "../i18n.js";
import { current, el, errorText, loading, ready, table, tf } from "./dom.js";

const RINGS = ["pilot", "early", "general"];

function role() {
  return document.getElementById("user-role")?.dataset.role ?? "";
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function labelled(key, node) {
  const label = el("label");
  label.append(el("span", t(key)), node);
  return label;
}

function input(id, value, size) {
  const node = el("input");
  node.id = id;
  node.value = value;
  if (size) node.size = size;
  return node;
}

function select(id, options) {
  const node = el("select");
  node.id = id;
  for (const [value, text] of options) {
    const opt = el("option", text);
    opt.value = value;
    node.appendChild(opt);
  }
  return node;
}

function releasesSection(doc) {
  const rows = doc.releases.map((r) => [
    r.version,
    `${Math.round(r.size / 1024)} KiB`,
    r.key_id,
    r.notes || "—",
    when(r.added_at),
  ]);
  const tbl = table(
    ["rl.version", "rl.size", "rl.key", "rl.notes", "rl.added"],
    rows,
    "rl-releases",
  );
  return [el("h3", t("rl.releases")), rows.length ? tbl : el("p", t("rl.no_releases"))];
}

function ringsSection(doc) {
  const rows = doc.rings.map((r) => [t(`rl.scope.${r.scope}`), r.id, t(`rl.ring.${r.ring}`)]);
  const tbl = table(["rl.scope", "rl.name", "rl.ring"], rows, "rl-rings");
  return [
    el("h3", t("rl.rings")),
    el("p", t("rl.rings_intro")),
    rows.length ? tbl : el("p", t("rl.no_rings")),
  ];
}

function rolloutBlock(r, admin, refresh) {
  const box = el("section", undefined, `rl-rollout rl-${r.state}`);
  box.dataset.rollout = String(r.id);
  box.appendChild(
    el(
      "h4",
      tf("rl.rollout_head", {
        id: r.id,
        v: r.version,
        state: t(`rl.state.${r.state}`),
        ring: t(`rl.ring.${r.ring}`),
      }),
    ),
  );
  box.appendChild(el("p", tf("rl.window", { w: r.window, s: r.health_deadline_s })));
  if (r.paused_reason) box.appendChild(el("p", r.paused_reason, "rl-reason error"));
  const rows = r.targets.map((x) => [
    x.classroom,
    t(`rl.ring.${x.ring}`),
    t(`rl.tstate.${x.state}`),
    x.from_version || "—",
    x.detail || "",
  ]);
  const tbl = table(["rl.classroom", "rl.ring", "rl.progress", "rl.from", "rl.detail"], rows);
  tbl.classList.add("rl-targets");
  tbl.querySelectorAll("tbody tr").forEach((tr, i) => {
    tr.dataset.classroom = r.targets[i].classroom;
    tr.dataset.state = r.targets[i].state;
  });
  box.appendChild(tbl);
  if (admin && (r.state === "running" || r.state === "paused")) {
    const actions = el("p");
    const act = r.state === "running" ? "pause" : "resume";
    for (const name of [act, "cancel"]) {
      const b = el("button", t(`rl.${name}`));
      b.type = "button";
      b.id = `rl-${name}-${r.id}`;
      b.addEventListener("click", async () => {
        const res = await call("POST", `/api/v1/releases/rollouts/${r.id}/${name}`);
        refresh(res.ok ? tf(`rl.done_${name}`, { id: r.id }) : errorText(res), !res.ok);
      });
      actions.appendChild(b);
    }
    box.appendChild(actions);
  }
  return box;
}

function ringForm(refresh) {
  const form = el("form");
  form.id = "rl-ring-form";
  const scope = select("rl-ring-scope", [
    ["school", t("rl.scope.school")],
    ["classroom", t("rl.scope.classroom")],
  ]);
  const name = input("rl-ring-name", "", 24);
  const ring = select("rl-ring-ring", [
    ...RINGS.map((r) => [r, t(`rl.ring.${r}`)]),
    ["", t("rl.ring.none")],
  ]);
  const save = el("button", t("rl.set_ring"));
  save.id = "rl-ring-save";
  form.append(
    labelled("rl.scope", scope),
    labelled("rl.name", name),
    labelled("rl.ring", ring),
    save,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { scope: scope.value, id: name.value.trim(), ring: ring.value };
    const res = await call("PUT", "/api/v1/releases/rings", body);
    refresh(res.ok ? tf("rl.ring_set", { name: body.id }) : errorText(res), !res.ok);
  });
  return [el("h3", t("rl.set_ring")), form];
}

function rolloutForm(doc, refresh) {
  const form = el("form");
  form.id = "rl-start-form";
  const version = select(
    "rl-version",
    doc.releases.map((r) => [r.version, r.version]),
  );
  const start = input("rl-window-start", "22:00", 5);
  const end = input("rl-window-end", "06:00", 5);
  const zone = input("rl-timezone", "Asia/Shanghai", 16);
  const deadline = input("rl-deadline", "600", 6);
  const go = el("button", t("rl.start"));
  go.id = "rl-start";
  form.append(
    labelled("rl.version", version),
    labelled("rl.window_start", start),
    labelled("rl.window_end", end),
    labelled("rl.timezone", zone),
    labelled("rl.deadline", deadline),
    go,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {
      version: version.value,
      window_start: start.value.trim(),
      window_end: end.value.trim(),
      timezone: zone.value.trim(),
      health_deadline_s: Number.parseInt(deadline.value, 10),
    };
    const res = await call("POST", "/api/v1/releases/rollouts", body);
    refresh(res.ok ? tf("rl.started", { v: body.version }) : errorText(res), !res.ok);
  });
  return [el("h3", t("rl.new_rollout")), el("p", t("rl.rollout_intro")), form];
}

export async function releases(main, message = "", isError = false) {
  const token = loading();
  const res = await call("GET", "/api/v1/releases");
  if (!current(token)) return;
  if (!res.ok) {
    main.replaceChildren(el("p", errorText(res), "error"));
    ready();
    return;
  }
  const doc = res.body;
  const admin = role() === "admin";
  const refresh = (text, err) => releases(main, text, err);
  const root = el("div");
  root.id = "releases";
  const note = el("p", message, isError ? "error" : "ok");
  note.id = "rl-message";
  root.append(el("h2", t("nav.releases")), note);
  root.append(el("h3", t("rl.rollouts")));
  if (doc.rollouts.length)
    for (const r of doc.rollouts) root.appendChild(rolloutBlock(r, admin, refresh));
  else root.appendChild(el("p", t("rl.no_rollouts")));
  if (admin && doc.releases.length) root.append(...rolloutForm(doc, refresh));
  root.append(...ringsSection(doc));
  if (admin) root.append(...ringForm(refresh));
  root.append(...releasesSection(doc));
  main.replaceChildren(root);
  ready();
}
