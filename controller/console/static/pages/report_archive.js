// The archived monthly and term reports (GET /api/v1/reports/archive): each with its
// printable HTML (charts inside; the browser prints it, or saves it as PDF) and a CSV per
// view; admins and schedulers can write one now (POST /api/v1/reports/archive).
import { call } from "../api.js";
import { t } from "../i18n.js";
import { el, errorText, table, tf } from "./dom.js";

const WRITERS = new Set(["admin", "scheduler"]);

function link(file) {
  const a = el("a", t(`ra.file.${file.name}`));
  a.href = file.url;
  if (file.name === "report.html") a.target = "_blank";
  else a.download = "";
  a.dataset.file = file.name;
  return a;
}

/** The archive section; `term` fills the write-now form. */
export async function reportArchive(term) {
  const section = el("section", undefined, "rp-pairing no-print");
  section.id = "ra";
  const message = el("p", "", "error");
  message.id = "ra-message";
  const render = async () => {
    const res = await call("GET", "/api/v1/reports/archive");
    const parts = [el("h3", t("ra.title"))];
    if (!res.ok) parts.push(el("p", errorText(res), "error"));
    else if (!res.body.reports.length) parts.push(el("p", t("ra.none"), "rp-note"));
    else {
      const rows = res.body.reports.map((r) => {
        const files = el("span", undefined, "ra-files");
        for (const f of r.files) files.append(link(f), " ");
        const period = r.kind === "term" ? t("ra.term") : tf("ra.month", r);
        return [r.term, period, r.complete ? files : t("ra.incomplete")];
      });
      const tbl = table(["ra.col.term", "ra.col.period", "ra.col.files"], rows, "ra-table");
      Array.from(tbl.tBodies[0].rows).forEach((tr, i) => {
        tr.dataset.term = res.body.reports[i].term;
        tr.dataset.period = res.body.reports[i].period;
      });
      parts.push(tbl, el("p", t("ra.pdf"), "rp-note"));
    }
    const role = document.getElementById("user-role")?.dataset.role ?? "";
    if (WRITERS.has(role)) {
      const form = el("form", undefined, "rp-toolbar");
      form.id = "ra-form";
      const termBox = el("input");
      termBox.id = "ra-term";
      termBox.value = term;
      termBox.placeholder = t("rp.term_hint");
      const period = el("input");
      period.id = "ra-period";
      period.placeholder = t("ra.period_hint");
      const run = el("button", t("ra.run"));
      run.type = "submit";
      run.id = "ra-run";
      form.append(termBox, period, run);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        message.textContent = t("ra.running");
        const done = await call("POST", "/api/v1/reports/archive", {
          term: termBox.value.trim(),
          period: period.value.trim() || "term",
        });
        message.textContent = done.ok ? "" : errorText(done);
        if (done.ok) await render();
      });
      parts.push(form, message);
    }
    section.replaceChildren(...parts);
  };
  await render();
  return section;
}
