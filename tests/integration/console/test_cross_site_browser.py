"""A web page on another origin tries to act on the console through the user's browser (issue 23): a
cross-site form POST and `no-cors` fetches (upload, clone, resume, stop, delete, add example data sets) sent
by real Chromium. The console must refuse every one and change nothing, while its own pages keep working."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html><html><body><h1>Cute cats</h1>
<form id="f" method="POST" action="{console}/datasets/examples"></form>
<iframe name="sink" style="display:none"></iframe>
<script>
const c = "{console}";
const data = new FormData();
data.append("file", new Blob(['{{"instruction": "pwned", "output": "pwned"}}\\n']), "pwned.jsonl");
const attempts = [
  fetch(c + "/api/datasets", {{method: "POST", mode: "no-cors", body: data}}),
  fetch(c + "/api/tasks/{task}/clone", {{method: "POST", mode: "no-cors"}}),
  fetch(c + "/api/tasks/{task}/resume", {{method: "POST", mode: "no-cors"}}),
  fetch(c + "/api/tasks/{task}/stop", {{method: "POST", mode: "no-cors"}}),
  fetch(c + "/api/tasks", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
        body: JSON.stringify({{config: {{model: "builtin:toy", train_data: "x.jsonl"}}}})}}),
  fetch(c + "/api/tasks/{task}", {{method: "DELETE", mode: "no-cors"}}).catch(() => null),
];
Promise.allSettled(attempts).then(() => {{
  document.getElementById("f").target = "sink";
  document.getElementById("f").submit();
  setTimeout(() => {{ document.title = "done"; }}, 1500);
}});
</script></body></html>"""


class AttackerSite:
    """A page served from another origin (another port: what any web site the user visits could serve)."""

    def __init__(self, html: str, host: str):
        body = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> "AttackerSite":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def finished_task(live_service, tmp_path_factory):
    rows = tmp_path_factory.mktemp("xsite") / "rows.jsonl"
    rows.write_text("".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(8)))
    service = live_service.service
    dataset = service.add_dataset("rows.jsonl", rows.read_bytes())
    task = service.submit({"model": "builtin:toy", "train_data": dataset["path"], "lora_dim": 4, "max_steps": 1,
                           "per_device_train_batch_size": 2, "seq_length": 32, "eval_steps": 0, "save_steps": -1})
    live_service.wait_final(task["id"], 180)
    return service.get_task(task["id"])


def _state(service) -> tuple:
    return ([(t["id"], t["status"]) for t in service.list_tasks()], [d["path"] for d in service.list_datasets()])


@pytest.mark.parametrize("attacker_host", ["localhost", "127.0.0.1"])  # cross-site, and same-site on another port
def test_another_origin_cannot_act_through_the_browser(live_service, finished_task, page_factory, shot, attacker_host):
    service = live_service.service
    before = _state(service)
    html = ATTACK.format(console=live_service.url, task=finished_task["id"])
    page, errors = page_factory()
    errors.allowed_urls.update({"/api/datasets", "/clone", "/resume", "/stop", "/api/tasks",
                                f"/api/tasks/{finished_task['id']}", "/datasets/examples"})
    statuses: list[tuple[str, int]] = []
    page.on("response", lambda r: statuses.append((r.request.method + " " + r.url, r.status))
            if r.url.startswith(live_service.url) else None)
    with AttackerSite(html, attacker_host) as site:
        page.goto(site.url)
        page.wait_for_function("document.title === 'done'", timeout=30_000)
    shot(page, f"attacker-{attacker_host}")
    assert _state(service) == before, "a page on another origin changed the console's state"
    assert len(statuses) >= 6 and all(code == 403 for _, code in statuses), statuses
    errors.clear()  # the attacker's page logs its refused requests; that page is not the console's


def test_the_consoles_own_pages_still_change_state(live_service, finished_task, page_factory):
    page, _errors = page_factory()
    page.goto(live_service.url + "/datasets")
    status = page.evaluate("""async () => (await fetch('/api/tasks/validate', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({config: {model: 'builtin:toy', train_data: %s}})})).status""" %
                           json.dumps(finished_task["config"]["train_data"]))
    assert status == 200
