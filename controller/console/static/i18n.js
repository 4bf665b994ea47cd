// The console's words in Chinese (default) and English; the choice lives in localStorage.
const WORDS = {
  zh: {
    "app.title": "classbridge 控制台",
    "signin.username": "用户名",
    "signin.password": "密码",
    "signin.submit": "登录",
    "signin.failed": "登录失败",
    "signout": "退出登录",
    "lang.switch": "English",
    "nav.dashboard": "概览",
    "nav.timetable": "课表",
    "nav.patrol": "巡课",
    "nav.classrooms": "教室",
    "nav.recordings": "录像",
    "nav.reports": "报表",
    "nav.audit": "审计日志",
    "role.admin": "管理员",
    "role.scheduler": "排课员",
    "role.technician": "技术员",
    "role.inspector": "督导",
    "dashboard.classrooms": "教室在线情况",
    "dashboard.none": "还没有教室",
    "online": "在线",
    "offline": "离线",
    "audit.ts": "时间",
    "audit.user": "用户",
    "audit.role": "角色",
    "audit.action": "操作",
    "audit.target": "对象",
    "audit.remote": "来源地址",
    "audit.none": "没有审计记录",
    "later": "此页面即将推出。",
    "error": "出错了",
  },
  en: {
    "app.title": "classbridge console",
    "signin.username": "User name",
    "signin.password": "Password",
    "signin.submit": "Sign in",
    "signin.failed": "Sign-in failed",
    "signout": "Sign out",
    "lang.switch": "中文",
    "nav.dashboard": "Dashboard",
    "nav.timetable": "Timetable",
    "nav.patrol": "Patrol",
    "nav.classrooms": "Classrooms",
    "nav.recordings": "Recordings",
    "nav.reports": "Reports",
    "nav.audit": "Audit",
    "role.admin": "Administrator",
    "role.scheduler": "Scheduler",
    "role.technician": "Technician",
    "role.inspector": "Inspector",
    "dashboard.classrooms": "Classrooms online",
    "dashboard.none": "No classrooms yet",
    "online": "online",
    "offline": "offline",
    "audit.ts": "Time",
    "audit.user": "User",
    "audit.role": "Role",
    "audit.action": "Action",
    "audit.target": "Target",
    "audit.remote": "From",
    "audit.none": "No audit rows",
    "later": "This page is coming soon.",
    "error": "Error",
  },
};

const KEY = "classbridge.lang";

/** The current language: "zh" or "en". */
export function getLang() {
  return localStorage.getItem(KEY) === "en" ? "en" : "zh";
}

/** Remember the language and relabel the page. */
export function setLang(lang) {
  localStorage.setItem(KEY, lang);
  applyI18n();
}

/** The word for `key` in the current language (the key itself if missing). */
export function t(key) {
  return WORDS[getLang()][key] ?? key;
}

/** Relabel every element with data-i18n. */
export function applyI18n(root = document) {
  document.documentElement.lang = getLang() === "en" ? "en" : "zh-CN";
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
}
