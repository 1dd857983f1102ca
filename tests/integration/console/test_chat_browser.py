"""The chat playground in headless Chromium: "Deploy" on a finished task's page opens the chat page, which
waits for the server, sends a message through the service, shows the answer with its model, and stops the
deployment."""
from __future__ import annotations

import json

import psutil
import pytest

pytestmark = pytest.mark.browser


def test_deploy_and_chat_from_the_console(live_service, page_factory, shot, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(8)))
    task = live_service.service.submit({"model": "builtin:toy", "train_data": str(data), "max_steps": 2,
                                        "seq_length": 64, "lora_dim": 4, "eval_steps": 0}, "browser chat")
    assert live_service.wait_final(task["id"], 180)["status"] == "succeeded"

    page, _ = page_factory(390, 844)  # phone width: the playground must fit too
    page.goto(f"{live_service.url}/tasks/{task['id']}")
    page.click("#deploy-button")
    page.wait_for_url(f"**/tasks/{task['id']}/chat")
    page.wait_for_function("document.getElementById('dep-status').textContent.trim() === 'ready'", timeout=180_000)
    assert page.locator("#dep-model").text_content() == "browser-chat"
    # the answer streams: its text changes many times before it is complete
    page.evaluate("""() => { window.chatUpdates = 0;
        new MutationObserver(() => window.chatUpdates++).observe(document.getElementById('chat-messages'),
                                                                  {subtree: true, characterData: true, childList: true}); }""")
    page.fill("#chat-input", "What is 2 plus 2?")
    page.fill("#chat-max-tokens", "24")
    page.fill("#chat-temperature", "1")
    page.click("#chat-send")
    answer = page.locator(".chat-assistant")
    page.wait_for_function("document.querySelector('.chat-assistant .note').textContent.includes('finish:')", timeout=60_000)
    assert "model browser-chat" in answer.text_content()
    assert "answer tokens" in page.locator("#chat-usage").text_content()
    assert page.evaluate("window.chatUpdates") >= 5, "the answer arrived in one piece, not streamed"
    said = answer.locator("pre").text_content()
    page.reload()  # the conversation is kept across a reload
    page.locator(".chat-assistant").wait_for(timeout=30_000)
    assert page.locator(".chat-user pre").first.text_content() == "What is 2 plus 2?"
    assert page.locator(".chat-assistant pre").first.text_content() == said
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    shot(page, "chat-playground")

    page.click("#chat-clear")
    page.reload()
    assert page.locator(".chat-assistant").count() == 0

    pid = live_service.service.deployments.get(task["id"])["pid"]
    page.click("#chat-stop")
    page.wait_for_function("document.getElementById('dep-status').textContent.trim() === 'stopped'", timeout=30_000)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
