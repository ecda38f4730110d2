"""What a person does in the browser: answer the check-in, log in, check accessibility."""

from __future__ import annotations

import json
from typing import Any

from tests.web.conftest import PASSWORD
from tests.web.helpers import ALLIANCE, WELLBEING, totp_code, totp_device

COMMENT = "It felt rushed at the end & I'd like more time <3"
SAFETY = {"no": 0, "sometimes": 1, "often": 2}


def choose(page: Any, name: str, index: int, *, tap: bool) -> None:
    """Pick an answer by its visible label, as a finger or a mouse would."""
    label = page.locator(f'label[for="id_{name}_{index}"]')
    if tap:
        label.tap()
    else:
        label.click()
    radio = page.locator(f"#id_{name}_{index}")
    assert radio.is_checked(), f"{name}={index} did not get selected"


def answer_checkin(
    page: Any,
    goal_ids: list[int],
    *,
    tap: bool = False,
    skip: str = "",
    safety: str = "no",
    comment: str = COMMENT,
) -> dict[str, int]:
    """Answer every question except ``skip``; returns the radio answers given (name -> index)."""
    answers = {f"alliance-{k}": v for k, v in ALLIANCE.items()}
    answers.update({f"wellbeing-{k}": v for k, v in WELLBEING.items()})
    answers["wellbeing-safety"] = SAFETY[safety]
    answers.update({f"goal-{g}": 6 + k for k, g in enumerate(goal_ids)})
    answers.pop(skip, None)
    for name, index in answers.items():
        choose(page, name, index, tap=tap)
    page.fill("#id_alliance-better", comment)
    return answers


def send(page: Any, *, tap: bool = False) -> None:
    button = page.get_by_role("button", name="Send")
    with page.expect_navigation():
        if tap:
            button.tap()
        else:
            button.click()


def log_in(page: Any, username: str, password: str = PASSWORD) -> None:
    """Log in through the real forms: the password, then a code from the authenticator app.

    The user gets a confirmed authenticator (TOTP device) first if they have none; the code is
    computed from its key, as the app on a phone would.
    """
    from django.contrib.auth import get_user_model

    device = totp_device(get_user_model().objects.get(username=username))
    page.goto("/login/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert "/account/2fa/verify/" in page.url, page.url
    page.get_by_label("Code").fill(totp_code(device))
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()


def axe_problems(page: Any, axe_source: str) -> list[dict[str, Any]]:
    """Run axe-core on the page; the violations with impact serious or critical."""
    # Evaluated through the DevTools protocol, not added as an inline <script>: the pages'
    # Content-Security-Policy (script-src 'self') would block that, as it should.
    page.evaluate(axe_source)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def describe(problems: list[dict[str, Any]]) -> str:
    """A failure message naming each violation, its impact and the elements affected."""
    return json.dumps(
        [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "targets": [n["target"] for n in v["nodes"]][:10],
                "summary": [n.get("failureSummary", "") for n in v["nodes"]][:3],
            }
            for v in problems
        ],
        indent=2,
    )
