"""The text of an alert message: Chinese first with English beside, naming the school,
classroom, what happened, when, and what to do (the users are school technicians)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from controller.agents.alerts import severity
from controller.db.models import AlertState, Classroom
from controller.db.session import as_utc
from controller.notify.channels import Message

SEVERITY_TEXT = {"critical": "严重 Critical", "warning": "警告 Warning", "info": "提示 Info"}
# By alert kind: (what happened, what to do), in Chinese; the alert's own message (English,
# with its specifics) follows.
KIND_TEXT: dict[str, tuple[str, str]] = {
    "offline": ("教室主机离线", "检查录播主机的电源和网络，并在主机上查看 classroom-agent 服务"),
    "not_ready": ("课前未就绪", "上课前检查设备，在主机上运行 classroom-agent doctor"),
    "device_lost": ("设备丢失（摄像头/麦克风）", "检查设备的线缆和电源，再看代理的设备日志"),
    "mic_silent": ("麦克风无声", "检查麦克风是否插好、打开且未静音"),
    "disk_low": ("磁盘将满", "等待上传完成，或清理录播主机的磁盘空间"),
    "clock_offset": ("时钟偏差", "检查录播主机的时间同步（chrony/NTP）"),
    "packet_loss": ("网络丢包持续过高", "检查学校出口带宽和教室专线"),
    "latency": ("网络往返时延持续过高", "检查学校出口带宽和教室专线"),
    "upload_stuck": (
        "录像上传卡住超过一小时",
        "检查学校上行网络，并在主机上运行 classroom-agent doctor",
    ),
    "upload_backlog": ("待上传录像积压", "检查学校上行网络和中心存储"),
    "key_replaced": ("代理密钥被替换", "如无人重装该主机，请重新签发注册令牌并重新注册"),
}


def render(
    alert: AlertState,
    room: Classroom | None,
    tz: str,
    escalated_after_min: int | None = None,
) -> Message:
    """The message for ``alert`` (an escalation when ``escalated_after_min`` is given)."""
    kind = alert.key.split(":", 1)[0]
    what_zh, todo_zh = KIND_TEXT.get(kind, ("课堂告警", "请查看控制台仪表盘"))
    level = SEVERITY_TEXT.get(severity(alert.key), severity(alert.key))
    school = (room.school if room is not None else "") or "-"
    name = room.name if room is not None and room.name else alert.classroom_id
    when = as_utc(alert.first_seen).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
    head = "升级 Escalated: " if escalated_after_min is not None else ""
    title = f"{head}[{level}] {school} {name}: {what_zh} {kind}"[:200]
    lines = [
        f"学校 School: {school}",
        f"教室 Classroom: {name} ({alert.classroom_id})",
        f"事件 What: {what_zh} / {alert.key}",
        f"详情 Detail: {alert.message}",
        f"时间 When: {when} ({tz})",
        f"处理 To do: {todo_zh}",
    ]
    if escalated_after_min is not None:
        lines.append(
            f"升级 Escalation: {escalated_after_min} 分钟内无人确认 / not acknowledged within "
            f"{escalated_after_min} minutes"
        )
    lines.append("确认 Acknowledge: 控制台仪表盘 / the console's dashboard")
    text = title + "\n" + "\n".join(lines)
    markdown = f"### {title}\n\n" + "\n\n".join(f"- {line}" for line in lines)
    return Message(title=title, text=text, markdown=markdown)
