"""The alert notifications page in a real headless Chromium: a technician adds a school's
DingTalk robot and a county mailbox, edits one, sends test messages that reach the real
loopback robot and SMTP inbox, sees a failing channel with its error, and deletes one. A
school's technician sees and sets only their school's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from console.harness import PASSWORD, Console, require_browser
from peers.robot_webhook import RobotReceiver
from peers.smtp_inbox import SmtpInbox

from controller.auth.accounts import add_user
from controller.auth.scope import set_school
from controller.db.models import NotifySubscription
from controller.db.session import utcnow
from controller.notify.api import TEST_TEXT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

require_browser()
from playwright.async_api import Page, expect  # noqa: E402


@pytest.fixture
async def robot() -> AsyncIterator[RobotReceiver]:
    async with RobotReceiver() as peer:
        yield peer


@pytest.fixture
def inbox() -> Iterator[SmtpInbox]:
    with SmtpInbox() as peer:
        yield peer


async def _sign_in(page: Page, user: str) -> None:
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-button")
    await page.wait_for_selector("#shell:not([hidden])")
    await page.click("nav button[data-page='notify']")
    await page.wait_for_selector("body[data-ready='1'] #notify")


async def test_a_technician_adds_edits_tests_and_deletes_subscriptions(
    page: Page, console: Console, robot: RobotReceiver, inbox: SmtpInbox
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await _sign_in(page, "technician")
    await expect(page.locator("#notify-summary")).to_have_text("所有通道正常")

    # Add the City School's DingTalk group robot; a wrong secret is refused naming it.
    await page.click("#nt-new")
    await page.fill("#nt-name", "城区技术员群")
    await page.select_option("#nt-school", "City School")
    await page.select_option("#nt-channel", "dingtalk")
    await page.fill("#nt-cfg-webhook", robot.dingtalk_url)
    await page.fill("#nt-cfg-secret", "plain")
    await page.select_option("#nt-severity", "critical")
    await page.fill("#nt-quiet-start", "22:00")
    await page.fill("#nt-quiet-end", "07:00")
    await page.click("#nt-save")
    await expect(page.locator("#notify-form-error")).to_contain_text("'config.secret'")
    await page.fill("#nt-cfg-secret", robot.secret)
    await page.click("#nt-save")
    await expect(page.locator("#notify-message")).to_have_text("已添加订阅")
    row = page.locator("#notify-subs tbody tr", has_text="城区技术员群")
    await expect(row).to_contain_text("City School")
    await expect(row).to_contain_text("钉钉群机器人")
    await expect(row).to_contain_text(f"127.0.0.1:{robot.port}/robot/send?***")
    await expect(row).to_contain_text("已加签")
    await expect(row).to_contain_text("严重")
    await expect(row).to_contain_text("22:00–07:00")
    html = await page.content()
    assert robot.secret not in html and "test-access-token" not in html

    # Edit it: a new name and severity; the secret, not typed again, is kept.
    await row.locator(".nt-edit").click()
    await expect(page.locator("#notify-form[data-mode='edit']")).to_be_visible()
    await expect(page.locator("#nt-cfg-secret")).to_have_value("")
    await page.fill("#nt-name", "城区值班群")
    await page.select_option("#nt-severity", "warning")
    await page.click("#nt-save")
    await expect(page.locator("#notify-message")).to_have_text("已保存")
    row = page.locator("#notify-subs tbody tr", has_text="城区值班群")
    await expect(row).to_contain_text("警告")
    with console.db() as s:
        [sub] = s.query(NotifySubscription).all()
        assert sub.config["secret"] == robot.secret and sub.min_severity == "warning"

    # A test message reaches the real robot, signed.
    await row.locator(".nt-test").click()
    await expect(page.locator("#notify-message")).to_contain_text("测试消息已发到「城区值班群」")
    assert [m.text for m in robot.messages] == ["### " + TEST_TEXT] and robot.refused == []
    status = page.locator("#notify-status tbody tr", has_text="城区值班群")
    await expect(status).to_contain_text("正常")

    # A county mailbox, escalated to; its test message reaches the real SMTP inbox.
    await page.click("#nt-new")
    await page.fill("#nt-name", "县电教中心值班")
    await page.select_option("#nt-school", "")
    await page.select_option("#nt-channel", "email")
    await page.fill("#nt-cfg-host", "127.0.0.1")
    await page.fill("#nt-cfg-port", str(inbox.port))
    await page.select_option("#nt-cfg-security", "none")
    await page.fill("#nt-cfg-from", "alerts@county.edu.cn")
    await page.fill("#nt-cfg-to", "duty@county.edu.cn, head@county.edu.cn")
    await page.check("#nt-escalation")
    await page.fill("#nt-escalate-after", "20")
    await page.click("#nt-save")
    await expect(page.locator("#notify-message")).to_have_text("已添加订阅")
    mail = page.locator("#notify-subs tbody tr", has_text="县电教中心值班")
    await expect(mail).to_contain_text("全县")
    await expect(mail).to_contain_text("20 分钟无人确认后")
    await mail.locator(".nt-test").click()
    await expect(page.locator("#notify-message")).to_contain_text(
        "测试消息已发到「县电教中心值班」"
    )
    assert inbox.recipients == [["duty@county.edu.cn", "head@county.edu.cn"]]
    assert "alert notification test" in inbox.messages[0].get_content()

    # A wrong secret typed in: the test fails, and the channel shows failing with why.
    row = page.locator("#notify-subs tbody tr", has_text="城区值班群")
    await row.locator(".nt-edit").click()
    await page.fill("#nt-cfg-secret", "SECnot-the-robots")
    await page.click("#nt-save")
    await expect(page.locator("#notify-message")).to_have_text("已保存")
    row = page.locator("#notify-subs tbody tr", has_text="城区值班群")
    await row.locator(".nt-test").click()
    await expect(page.locator("#notify-message")).to_contain_text("sign not match")
    await expect(page.locator("#notify-summary")).to_contain_text("1 个通道发送失败")
    status = page.locator("#notify-status tbody tr.failing", has_text="城区值班群")
    await expect(status).to_contain_text("失败，自")
    await expect(status).to_contain_text("sign not match")

    # The dashboard says so too, with the way to this page.
    await page.click("nav button[data-page='dashboard']")
    await expect(page.locator("#notify-failing")).to_contain_text("1 个通道发送失败")
    await page.click("#notify-failing button")
    await page.wait_for_selector("body[data-ready='1'] #notify")

    # Delete the mailbox (confirmed).
    page.once("dialog", lambda d: d.accept())
    await mail.locator(".nt-delete").click()
    await expect(page.locator("#notify-message")).to_contain_text("已删除 县电教中心值班")
    await expect(page.locator("#notify-subs tbody tr")).to_have_count(1)
    assert not [e for e in errors if "Content Security Policy" in e], errors


async def test_a_school_technician_sees_and_sets_only_its_school(
    page: Page, console: Console, robot: RobotReceiver
) -> None:
    with console.db() as s:
        add_user(s, "tech-village", "technician", PASSWORD)
        set_school(s, "tech-village", "Village School")
        for name, school in (("city group", "City School"), ("village group", "Village School")):
            s.add(
                NotifySubscription(
                    name=name,
                    school=school,
                    channel="wecom",
                    config={"webhook": robot.wecom_url, "msgtype": "text"},
                    created_at=utcnow(),
                    last_error="",
                )
            )
        s.commit()
    await _sign_in(page, "tech-village")
    await expect(page.locator("#notify-subs tbody tr")).to_have_count(1)
    await expect(page.locator("#notify-subs tbody tr")).to_contain_text("village group")
    await expect(page.locator("#notify-status tbody tr")).to_have_count(1)
    await page.click("#nt-new")
    await expect(page.locator("#nt-school")).to_be_disabled()
    await expect(page.locator("#nt-school")).to_have_value("Village School")
    await page.click("#nt-cancel")
    row = page.locator("#notify-subs tbody tr", has_text="village group")
    await row.locator(".nt-test").click()
    await expect(page.locator("#notify-message")).to_contain_text("测试消息已发到「village group」")
    assert [m.robot for m in robot.messages] == ["wecom"]
