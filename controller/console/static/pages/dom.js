// Small DOM helpers the console's pages share.
import { t } from "../i18n.js";

/** A new element with text and class. */
export function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

/** `t(key)` with {name} placeholders filled from `values`. */
export function tf(key, values) {
  return t(key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

/** A table with translated headers; each row is a list of strings or nodes. */
export function table(headers, rows, id) {
  const tbl = el("table");
  if (id) tbl.id = id;
  const head = tbl.createTHead().insertRow();
  for (const h of headers) head.appendChild(el("th", t(h)));
  const body = tbl.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const cell of row) {
      const td = el("td");
      if (cell instanceof Node) td.appendChild(cell);
      else td.textContent = cell ?? "";
      tr.appendChild(td);
    }
  }
  return tbl;
}

/** The server's error (or the HTTP status) after the word for "Error". */
export function errorText(res) {
  return `${t("error")}: ${res.body?.error ?? res.status}`;
}

/** A local "HH:MM" of an ISO time. */
export function hhmm(iso) {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/** Mark the page rendered (a benchmark and the browser tests wait for it). */
export function ready() {
  document.body.dataset.ready = "1";
}

let viewSeq = 0;

/** Mark the page as loading; returns this view's token. A page that awaits the API
 * renders only if its token is still ``current`` when the answer comes: a person who
 * moved on meanwhile is not pulled back by a late answer. */
export function loading() {
  delete document.body.dataset.ready;
  viewSeq += 1;
  return viewSeq;
}

/** Whether the view that got ``token`` from ``loading`` is still the one shown. */
export function current(token) {
  return token === viewSeq;
}

/** Load pages/pages.css once (a same-origin stylesheet, as the CSP asks). */
export function useStyles() {
  if (document.getElementById("pages-css")) return;
  const link = document.createElement("link");
  link.id = "pages-css";
  link.rel = "stylesheet";
  link.href = "/console/pages/pages.css";
  document.head.appendChild(link);
}
