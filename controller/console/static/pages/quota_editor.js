// The term's quotas (考核指标) on the reports page: each with its Chinese and English
// labels, its kind, period, scope and threshold; add, remove, save (PUT
// /api/v1/terms/{term}/quotas), or go back to the county plans' defaults. A refusal is shown
// beside the quota it names. Admins and schedulers edit; other roles read.
import { call } from "../api.js";
import { t } from "../i18n.js";
import { el, errorText, tf } from "./dom.js";

const EDITORS = new Set(["admin", "scheduler"]);
const CHOSEN = ["kind", "period", "scope"];

function role() {
  return document.getElementById("user-role")?.dataset.role ?? "";
}

/** A choice's words: the console's name for it, with the value the API takes beside. */
function choiceText(field, value) {
  const key = field === "kind" && value !== "any" ? `rp.kind.${value}` : `qe.${field}.${value}`;
  const word = t(key);
  return word === key ? value : `${word} (${value})`;
}

function input(value, cls, type = "text") {
  const box = el("input", undefined, cls);
  box.type = type;
  box.value = value ?? "";
  return box;
}

function select(field, value, choices) {
  const box = el("select", undefined, `qe-${field}`);
  for (const c of choices) {
    const option = el("option", choiceText(field, c));
    option.value = c;
    box.appendChild(option);
  }
  box.value = value;
  return box;
}

/** One quota's row: the fields the editor changes, the rest kept as they came. */
function quotaRow(q, choices, editable, onRemove) {
  const tr = el("tr", undefined, "qe-row");
  tr.dataset.id = q.id;
  const fields = {
    id: input(q.id, "qe-id"),
    label_zh: input(q.label_zh, "qe-label-zh"),
    label_en: input(q.label_en, "qe-label-en"),
  };
  for (const f of CHOSEN) fields[f] = select(f, q[f], choices[f]);
  fields.min = input(q.min, "qe-min", "number");
  fields.min.min = "1";
  const cells = [fields.id, fields.label_zh, fields.label_en, ...CHOSEN.map((f) => fields[f]), fields.min];
  for (const box of cells) {
    box.disabled = !editable;
    tr.appendChild(el("td")).appendChild(box);
  }
  const last = el("td");
  if (editable) {
    const remove = el("button", t("qe.remove"), "qe-remove");
    remove.type = "button";
    remove.addEventListener("click", () => onRemove(tr));
    last.appendChild(remove);
  }
  const problem = el("div", "", "error qe-error");
  last.appendChild(problem);
  tr.appendChild(last);
  tr.quota = () => ({
    ...q,
    id: fields.id.value.trim(),
    label_zh: fields.label_zh.value.trim(),
    label_en: fields.label_en.value.trim(),
    ...Object.fromEntries(CHOSEN.map((f) => [f, fields[f].value])),
    min: Number(fields.min.value),
  });
  tr.showError = (message, field) => {
    problem.textContent = message;
    for (const [name, box] of Object.entries(fields)) box.classList.toggle("qe-bad", name === field);
  };
  return tr;
}

/** The editor of `term`'s quotas, in a section it fills once the API answers. */
export async function quotaEditor(term) {
  const section = el("section", undefined, "rp-pairing no-print");
  section.id = "qe";
  const editable = EDITORS.has(role());
  const render = (doc, note) => {
    const head = el("h3", tf("qe.title", { term: doc.term }));
    const source = el("p", t(doc.source === "defaults" ? "qe.defaults" : "qe.declared"), "rp-note");
    source.id = "qe-source";
    const message = el("p", note ?? "", note ? "ok" : "error");
    message.id = "qe-message";
    const tbl = el("table", undefined, "qe-table");
    const hr = tbl.createTHead().insertRow();
    for (const h of ["qe.id", "qe.label_zh", "qe.label_en", "qe.kind", "qe.period", "qe.scope", "qe.min", ""]) {
      hr.appendChild(el("th", h ? t(h) : ""));
    }
    const body = tbl.createTBody();
    const remove = (tr) => tr.remove();
    for (const q of doc.quotas) body.appendChild(quotaRow(q, doc.choices, editable, remove));
    const parts = [head, source, tbl, message];
    if (editable) {
      const add = el("button", t("qe.add"), "qe-add");
      add.type = "button";
      add.id = "qe-add";
      add.addEventListener("click", () => {
        const n = body.rows.length + 1;
        const fresh = { id: `quota-${n}`, label_zh: "", label_en: "", kind: "synchronous", period: "semester", scope: "school", min: 1 };
        body.appendChild(quotaRow(fresh, doc.choices, true, remove));
      });
      const send = async (payload) => {
        message.textContent = "";
        for (const tr of body.rows) tr.showError("", null);
        const res = await call("PUT", `/api/v1/terms/${encodeURIComponent(doc.term)}/quotas`, payload);
        if (res.ok) return render(res.body, t("qe.saved"));
        const index = res.body?.index;
        if (res.status === 400 && index && body.rows[index - 1]) {
          body.rows[index - 1].showError(res.body.error, res.body.field);
        } else {
          message.textContent = errorText(res);
        }
      };
      const save = el("button", t("qe.save"));
      save.type = "button";
      save.id = "qe-save";
      save.addEventListener("click", () => send({ quotas: Array.from(body.rows, (tr) => tr.quota()) }));
      const reset = el("button", t("qe.reset"));
      reset.type = "button";
      reset.id = "qe-reset";
      reset.addEventListener("click", () => send({ defaults: true }));
      const bar = el("div", undefined, "rp-toolbar");
      bar.append(add, save, reset);
      parts.push(bar);
    }
    section.replaceChildren(...parts);
  };
  const res = await call("GET", `/api/v1/terms/${encodeURIComponent(term)}/quotas`);
  if (!res.ok) section.replaceChildren(el("p", errorText(res), "error"));
  else render(res.body);
  return section;
}
