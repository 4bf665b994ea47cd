"""Alert notifications (告警通知): alerts reach people, not only the dashboard.

- ``config``: a subscription's settings (channel, school or county, minimum severity,
  quiet hours, hold-down, escalation), validated with errors naming the field;
- ``channels``: DingTalk and WeCom group robots (webhooks) and e-mail over SMTP;
- ``messages``: the Chinese-and-English text of each message;
- ``outbox``: which messages are owed (one per alert raise, escalations), kept in the
  database so a restart loses nothing, and each channel's health;
- ``dispatcher``: the task that plans and sends off the event loop's critical path, with
  retry and backoff;
- ``api``: ``/api/v1/notify/...`` routes; ``cli``: ``classroom-controller notify``.
"""
