"""The HTTP API's bearer tokens (issue 18 §2): made with a password login, shown once, used as
`Authorization: Bearer` by curl-like clients and by `porter --token`, limited to the owner's
tags, refused once expired or revoked, and never able to mint more tokens."""

from __future__ import annotations

import time

import requests

from test_cli_management import cli

ADMIN = ("guest", "guest")
WAIT_S = 10


def api(server, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    auth = None if token else ADMIN
    return requests.request(method, server.http_url + path, headers=headers, auth=auth,
                            timeout=WAIT_S, **kwargs)


def test_a_token_acts_as_its_owner_until_revoked(porter):
    made = api(porter, "POST", "/api/tokens", json={"name": "dashboard"})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert token.startswith("porter_") and made.json()["user"] == "guest"
    assert api(porter, "GET", "/api/overview", token=token).status_code == 200
    listed = api(porter, "GET", "/api/tokens").json()
    assert [t["name"] for t in listed] == ["dashboard"] and token not in str(listed)
    assert token not in api(porter, "GET", "/api/definitions").text

    # A token cannot make another (a leaked one would otherwise live forever).
    assert api(porter, "POST", "/api/tokens", token=token, json={"name": "more"}).status_code == 401
    # The CLI takes it as --token (or PORTER_TOKEN).
    result = cli(porter, "queues", "list", "--token", token, password="wrong")
    assert result.returncode == 0, result.stderr

    assert api(porter, "DELETE", "/api/tokens/dashboard").status_code == 204
    assert api(porter, "GET", "/api/overview", token=token).status_code == 401
    assert api(porter, "GET", "/api/overview", token="porter_" + "0" * 64).status_code == 401


def test_a_token_has_its_owner_s_tags_and_expires(porter):
    api(porter, "PUT", "/api/users/watcher", json={"password": "watcher-pw", "tags": "monitoring"}
        ).raise_for_status()
    made = requests.post(porter.http_url + "/api/tokens", auth=("watcher", "watcher-pw"),
                         json={"name": "short", "expires_in_secs": 1}, timeout=WAIT_S)
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert api(porter, "GET", "/api/queues", token=token).status_code == 200
    # monitoring reads, it does not change.
    assert api(porter, "PUT", "/api/queues/%2F/nope", token=token, json={}).status_code == 401
    time.sleep(1.2)
    assert api(porter, "GET", "/api/queues", token=token).status_code == 401
    log = porter.log_tail(50)
    assert "unknown or expired API token" in log and token not in log


def test_the_cli_makes_lists_and_deletes_tokens(porter):
    made = cli(porter, "users", "create-token", "ci", "--expires-in-secs", "600")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("porter_")
    listed = cli(porter, "users", "tokens")
    assert "ci" in listed.stdout
    assert cli(porter, "queues", "list", "--token", token).returncode == 0
    assert cli(porter, "users", "delete-token", "ci").returncode == 0
    assert cli(porter, "queues", "list", "--token", token).returncode != 0
