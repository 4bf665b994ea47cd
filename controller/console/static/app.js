// The console: sign-in, then the shell with its navigation. No build step.
import { call, setCsrf } from "./api.js";
import { applyI18n, getLang, setLang, t } from "./i18n.js";
import { PAGES } from "./pages.js";

const $ = (id) => document.getElementById(id);
let session = null;
let current = "dashboard";

function showSignIn(message = "") {
  session = null;
  setCsrf("");
  $("shell").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("password").value = "";
  $("username").focus();
}

async function show(page) {
  current = page;
  for (const b of $("nav").querySelectorAll("button")) {
    if (b.dataset.page === page) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  await Promise.resolve(PAGES[page]($("page")));
  // A page answered late is not the one shown: only the page still chosen is ready.
  if (current === page) $("page").dataset.ready = page;
}

function showShell(doc) {
  session = doc;
  setCsrf(doc.csrf);
  $("sign-in").hidden = true;
  $("shell").hidden = false;
  $("user-name").textContent = doc.display_name || doc.user;
  $("user-role").textContent = `${t(`role.${doc.role}`)} (${doc.role})`;
  $("user-role").dataset.role = doc.role;
  return show("dashboard");
}

async function signIn(event) {
  event.preventDefault();
  $("sign-in-button").disabled = true;
  try {
    const res = await call("POST", "/api/v1/session", {
      username: $("username").value,
      password: $("password").value,
    });
    if (res.ok) await showShell(res.body);
    else showSignIn(res.body?.error ?? t("signin.failed"));
  } finally {
    $("sign-in-button").disabled = false;
  }
}

async function signOut() {
  await call("DELETE", "/api/v1/session");
  showSignIn();
}

function switchLang() {
  setLang(getLang() === "zh" ? "en" : "zh");
  if (session) {
    $("user-role").textContent = `${t(`role.${session.role}`)} (${session.role})`;
    show(current);
  }
}

async function start() {
  applyI18n();
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  for (const b of document.querySelectorAll(".lang-switch")) b.addEventListener("click", switchLang);
  for (const b of $("nav").querySelectorAll("button")) {
    b.addEventListener("click", () => show(b.dataset.page));
  }
  const res = await call("GET", "/api/v1/session");
  if (res.ok) await showShell(res.body);
  else showSignIn();
  document.body.dataset.ready = "1";
}

start();
