"""The printable report (HTML with inline SVG charts, Chinese with English beside): it
prints to paper or PDF from any browser (its own print rules, A4), and needs no script,
no font and no file beside it."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from controller.report_archive.periods import TERM
from controller.timetable.kinds import KIND_ALIASES
from controller.timetable.quota_engine import QuotaResult
from controller.timetable.quota_reports import HEADERS, RANKING_NOTE, VIEWS, ReportEntry
from controller.timetable.school_levels import level_label

if TYPE_CHECKING:
    from controller.report_archive.build import ReportContent

HTML_ROWS = 500  # entries per view in the HTML; the CSVs hold every one
CHART_ROWS = 30
KIND_ZH: dict[str, str] = {}
for _zh, _en in KIND_ALIASES.items():
    KIND_ZH.setdefault(_en, _zh)

STYLE = """
body { font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif;
  color: #1d2733; margin: 1.5rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .85rem; }
th, td { border: 1px solid #9ca3af; padding: .2rem .45rem; text-align: left; }
td.n { text-align: right; }
.note { color: #4b5563; font-size: .85rem; }
svg text { font-size: 12px; fill: #1d2733; }
svg .a { fill: #e5e7eb; stroke: #9ca3af; } svg .b { fill: #2e7d32; } svg .c { fill: #b3261e; }
section { break-inside: avoid; }
@page { size: A4; margin: 15mm; }
@media print { body { margin: 0; } svg rect { print-color-adjust: exact;
  -webkit-print-color-adjust: exact; } }
"""


def _kind(kind: str) -> str:
    zh = KIND_ZH.get(kind)
    return f"{zh} {kind}" if zh else kind


def bar_chart(title: str, rows: list[tuple[str, float, float, bool]]) -> str:
    """Horizontal bars as inline SVG: each row is (label, value, out of, good); the value's
    bar (green when good, red else) over its ``out of`` bar (grey)."""
    rows = rows[:CHART_ROWS]
    label_w, width, pitch = 300, 760, 24
    height = pitch * len(rows) + 10
    most = max([1.0, *(max(v, o) for _, v, o, _ in rows)])

    def scale(v: float) -> float:
        return round(v / most * (width - label_w - 90), 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img"><title>{escape(title)}</title>'
    ]
    for i, (label, value, out_of, good) in enumerate(rows):
        y = 5 + i * pitch
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="a" x="{label_w}" y="{y}" width="{scale(out_of)}" height="18"/>'
            f'<rect class="{"b" if good else "c"}" x="{label_w}" y="{y + 3}" '
            f'width="{scale(value)}" height="12"/>'
            f'<text x="{label_w + scale(max(value, out_of)) + 6}" y="{y + 14}">'
            f"{value:g} / {out_of:g}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _cell(c: object) -> str:
    if isinstance(c, int | float):
        return f'<td class="n">{c}</td>'
    return f"<td>{escape(str(c))}</td>"


def _table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _view(by: str, entries: list[ReportEntry]) -> str:
    shown = entries[:HTML_ROWS]
    rows: list[list[object]] = []
    for e in shown:
        st = e.st.document()
        rows.append(
            [
                "" if e.rank is None else e.rank,
                "" if e.level is None else level_label(e.level),
                e.key,
                e.name if e.name != e.key else "",
                e.held,
                f"{e.met} / {len(e.results)}",
                "" if e.review_mean_pct is None else e.review_mean_pct,
                "" if st.get("rt_mean") is None else st["rt_mean"],
            ]
        )
    headers = [
        "排名 rank",
        "学段 level",
        HEADERS[by],
        "名称 name",
        "已开 held",
        "达标/指标 met / quotas",
        "评课均分% review mean %",
        "Rt均值 Rt mean",
    ]
    more = (
        f'<p class="note">仅列出前 {HTML_ROWS} 项，完整内容见 CSV (the first {HTML_ROWS} '
        f"of {len(entries)}; the CSV holds every one)</p>"
        if len(entries) > HTML_ROWS
        else ""
    )
    title = {"school": "按学校 by school", "teacher": "按教师 by teacher"}.get(
        by, {"subject": "按学科 by subject", "pairing": "按结对 by pairing"}.get(by, by)
    )
    chart = ""
    if by == "school" and shown:
        chart = bar_chart(
            "学校达标指标 quota figures met by school",
            [
                (
                    f"{level_label(e.level)} {e.rank}. {e.name}",
                    e.met,
                    len(e.results),
                    e.met == len(e.results),
                )
                for e in shown
            ],
        )
    empty = '<p class="note">无数据 (none)</p>' if not entries else ""
    note = f'<p class="note">{escape(RANKING_NOTE)}</p>' if by == "school" else ""
    tbl = _table(headers, rows) if rows else empty
    return f"<section><h2>{title}</h2>{note}{chart}{tbl}{more}</section>"


def _figures(content: ReportContent) -> str:
    """Every quota figure once (the views share them), those not met first."""
    seen: dict[tuple[str, str, str, str], QuotaResult] = {}
    for entries in content.views.values():
        for e in entries:
            for r in e.results:
                seen.setdefault((r.quota.id, r.instance, r.subject, r.period.label), r)
    figures = sorted(seen.values(), key=lambda r: (r.met, r.quota.id, r.instance, r.period.label))
    if not figures:
        return ""
    short = sum(not r.met for r in figures)
    rows: list[list[object]] = [
        [
            r.quota.label,
            r.instance,
            r.subject,
            r.period.label,
            r.held,
            r.required,
            "是 yes" if r.met else "否 no",
        ]
        for r in figures[:HTML_ROWS]
    ]
    headers = [
        "指标 quota",
        "对象 instance",
        "学科 subject",
        "期间 period",
        "已开 held",
        "要求 required",
        "达标 met",
    ]
    more = (
        f'<p class="note">仅列出前 {HTML_ROWS} 项，完整内容见 CSV (the first {HTML_ROWS} '
        f"of {len(figures)}; the CSVs hold every one)</p>"
        if len(figures) > HTML_ROWS
        else ""
    )
    return (
        f"<section><h2>指标完成情况 quota figures</h2><p>未达标 not met: {short} / "
        f"{len(figures)}</p>{_table(headers, rows)}{more}</section>"
    )


def report_html(content: ReportContent) -> str:
    """The whole report as one HTML document."""
    p = content.period
    if p.period == TERM:
        kind = "学期报表 term report"
        scope = ""
    else:
        kind = f"月度报表 monthly report {p.period}"
        scope = (
            '<p class="note">学期、学年指标为截至月末的进度 (term and year figures are the '
            "progress to the month's end); 周、月指标为本月所含各期 (week and month figures: "
            "those overlapping the month)</p>"
        )
    named = content.name if content.name == p.term else f"{content.name} ({p.term})"
    title = f"{kind} · {named}"
    kinds = [[_kind(k), scheduled, held] for k, (scheduled, held) in content.kinds.items()]
    kind_chart = bar_chart(
        "按课型已开/已排 held of scheduled by kind",
        [(_kind(k), h, s, h >= s) for k, (s, h) in content.kinds.items()],
    )
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p>统计期间 period: {p.first} – {p.last} · 课程 lessons: {content.lessons} · "
        f"生成时间 generated: {content.generated_at.isoformat(timespec='seconds')}</p>",
        '<p class="note">媒体流通即计为已开课 (a lesson counts as held when media flowed)</p>',
        scope,
        "<section><h2>按课型 by kind</h2>",
        kind_chart if kinds else "",
        _table(["课型 kind", "已排 scheduled", "已开 held"], kinds)
        if kinds
        else '<p class="note">本期没有课程 (no lessons in the period)</p>',
        "</section>",
        _figures(content),
        *(_view(by, content.views[by]) for by in VIEWS),
    ]
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
