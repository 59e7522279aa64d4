"""A small fake of the GitHub REST API over real HTTP on 127.0.0.1.

Only what the sticky comment needs: an issue's comments (list, create, edit)
and the pull requests of a commit. Every request is checked (token, path,
JSON body); anything unexpected is answered with an error *and* recorded in
`problems`, which each test asserts is empty, so a wrong request cannot pass
unnoticed. `read_only` answers writes with 403 as GitHub does for a fork's
token; `fail_next_patch` answers the next PATCH with that status once.
`pull_heads` are the open pull requests (`GET /pulls/N`) and their head SHAs.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

COMMENT_LIMIT = 65_536


@dataclass
class Request:
    method: str
    path: str
    status: int


@dataclass
class FakeGitHub:
    token: str
    repository: str = "octo/channel"
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # issue → comments
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    pull_heads: dict[int, str] = field(default_factory=dict)  # open pull request → head SHA
    read_only: bool = False
    fail_next_patch: int | None = None
    requests: list[Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _next_id: int = 1000
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v3"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, issue: int) -> list[str]:
        return [c["body"] for c in self.comments.get(issue, [])]

    def count(self, method: str) -> int:
        return sum(1 for r in self.requests if r.method == method)

    # -- request handling ----------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            status, payload, headers = self._route(handler, method)
            self.requests.append(Request(method, handler.path, status))
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _reject(self, status: int, why: str) -> tuple[int, Any, dict[str, str]]:
        self.problems.append(why)
        return status, {"message": why}, {}

    def _route(
        self, handler: BaseHTTPRequestHandler, method: str
    ) -> tuple[int, Any, dict[str, str]]:
        auth = handler.headers.get("Authorization", "")
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            return self._reject(401, f"{method} {handler.path}: bad Authorization header")
        body = None
        length = int(handler.headers.get("Content-Length") or 0)
        if method in ("POST", "PATCH"):
            try:
                body = json.loads(handler.rfile.read(length))
            except ValueError:
                return self._reject(400, f"{method} {handler.path}: body is not JSON")
            problem = _check_comment_body(body)
            if problem:
                return self._reject(422, f"{method} {handler.path}: {problem}")
        url = urlsplit(handler.path)
        if url.path == "/api/v3/user" and method == "GET":  # as for an Actions token
            return 403, {"message": "Resource not accessible by integration"}, {}
        prefix = f"/api/v3/repos/{self.repository}"
        if not url.path.startswith(prefix + "/"):
            return self._reject(404, f"{method} {url.path}: unknown repository")
        path = url.path[len(prefix) :]
        query = parse_qs(url.query)
        if self.read_only and method != "GET":
            return 403, {"message": "Resource not accessible by integration"}, {}
        if m := re.fullmatch(r"/issues/(\d+)/comments", path):
            issue = int(m.group(1))
            if method == "GET":
                return self._page(self.comments.get(issue, []), query, handler.path)
            if method == "POST":
                return 201, self._create(issue, body["body"]), {}
        if (m := re.fullmatch(r"/issues/comments/(\d+)", path)) and method == "PATCH":
            if self.fail_next_patch:
                status, self.fail_next_patch = self.fail_next_patch, None
                return status, {"message": "Bad Gateway"}, {}
            return self._edit(int(m.group(1)), body["body"])
        if (m := re.fullmatch(r"/issues/(\d+)", path)) and method == "GET":
            return 200, self._issue(int(m.group(1))), {}
        if (m := re.fullmatch(r"/pulls/(\d+)", path)) and method == "GET":
            number = int(m.group(1))
            if number not in self.pull_heads:
                return 404, {"message": "Not Found"}, {}
            pull = self._issue(number)
            head = {"sha": self.pull_heads[number], "ref": "topic", "label": "fork:topic"}
            return 200, {**pull, "head": head, "base": {"ref": "main"}}, {}
        if (m := re.fullmatch(r"/commits/([0-9a-f]{7,40})/pulls", path)) and method == "GET":
            pulls = [self._issue(n) for n in self.commit_pulls.get(m.group(1), [])]
            return 200, pulls, {}
        return self._reject(404, f"{method} {url.path}: not an endpoint the action should call")

    def _page(self, items: list[Any], query: dict[str, list[str]], path: str) -> Any:
        per_page = int(query.get("per_page", ["30"])[0])
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            base = self.url.rsplit("/api/v3", 1)[0] + urlsplit(path).path
            headers["Link"] = f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"'
        return 200, chunk, headers

    def _issue(self, number: int) -> dict[str, Any]:
        base = f"{self.url}/repos/{self.repository}"
        return {
            "id": number,
            "number": number,
            "url": f"{base}/issues/{number}",
            "comments_url": f"{base}/issues/{number}/comments",
            "html_url": f"https://github.example/{self.repository}/pull/{number}",
            "state": "open",
            "title": f"PR {number}",
            "pull_request": {"url": f"{base}/pulls/{number}"},
        }

    def plant(self, issue: int, text: str, login: str, kind: str = "User") -> None:
        """A comment someone else wrote (e.g. copying our marker)."""
        with self._lock:
            comment = self._create(issue, text)
            comment["user"] = {"login": login, "id": 7, "type": kind}

    def _create(self, issue: int, text: str) -> dict[str, Any]:
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "body": text,
            "url": f"{self.url}/repos/{self.repository}/issues/comments/{self._next_id}",
            "html_url": f"https://github.example/{self.repository}/pull/{issue}"
            f"#issuecomment-{self._next_id}",
            "issue_url": f"{self.url}/repos/{self.repository}/issues/{issue}",
            "user": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        }
        self.comments.setdefault(issue, []).append(comment)
        return comment

    def _edit(self, comment_id: int, text: str) -> tuple[int, Any, dict[str, str]]:
        for comments in self.comments.values():
            for comment in comments:
                if comment["id"] == comment_id:
                    comment["body"] = text
                    comment["updated_at"] = "2024-01-02T00:00:00Z"
                    return 200, comment, {}
        return self._reject(404, f"PATCH of unknown comment {comment_id}")


def _check_comment_body(body: Any) -> str:
    """What GitHub would refuse in a comment create/edit payload ('' when fine)."""
    if not isinstance(body, dict) or set(body) != {"body"}:
        return f"expected {{'body': ...}}, got {body!r:.200}"
    if not isinstance(body["body"], str) or not body["body"]:
        return "body must be a non-empty string"
    if len(body["body"]) >= COMMENT_LIMIT:
        return f"body is {len(body['body'])} characters (GitHub allows 65,535)"
    return ""
