"""The README's proto example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_proto_example_runs() -> None:
    text = README.read_text()
    section = text.split("## Use proto as a library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    exec(compile(code.group(1), "README.md", "exec"), {"__name__": "readme"})


def test_readme_webhook_verification_snippet_accepts_relay_s_signature() -> None:
    from relay import webhooks

    section = README.read_text().split("## Webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    verify = namespace["verify"]
    secret, body = webhooks.new_secret(), b'{"id":"e1","type":"message.sent"}'
    import time

    now = int(time.time())
    headers = {"Relay-Webhook-Timestamp": str(now),
               "Relay-Webhook-Signature": webhooks.sign(secret, now, body)}
    assert verify(secret, headers, body)  # type: ignore[operator]
    assert not verify(secret, headers, body + b" ")  # type: ignore[operator]
    assert not verify(webhooks.new_secret(), headers, body)  # type: ignore[operator]
    old = {**headers, "Relay-Webhook-Timestamp": str(now - 3600),
           "Relay-Webhook-Signature": webhooks.sign(secret, now - 3600, body)}
    assert not verify(secret, old, body)  # type: ignore[operator]
