"""The Campaign tab of a DAG run in the real Airflow UI, in a real browser, against the sandbox's record."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

# The README's screenshots are refreshed on request only, so a test run leaves the checkout clean:
# EVERY8D_UPDATE_SCREENSHOTS=1 make test (or pytest tests/ui) writes them to docs/img/.
IMAGES = (
    Path(__file__).resolve().parents[2] / "docs" / "img"
    if os.environ.get("EVERY8D_UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "every8d-screenshots"
)
DAG_ID = "every8d_send_campaign"


def _figures(browser) -> dict[str, str]:
    return {
        card.get_attribute("data-figure"): card.find_element(By.TAG_NAME, "b").text
        for card in browser.find_elements(By.CSS_SELECTOR, "[data-figure]")
    }


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_campaign_tab_shows_the_sandboxs_numbers(api_server, browser, demo_campaign):
    run, record, _ = demo_campaign
    messages = [m for batch in record.values() for m in batch]
    statuses = Counter(m["status"] for m in messages)
    browser.get(f"{api_server}/dags/{DAG_ID}/runs/{quote(run.run_id, safe='')}")
    WebDriverWait(browser, 60).until(
        EC.element_to_be_clickable((By.XPATH, "//*[self::a or self::button][normalize-space()='Campaign']"))
    ).click()
    frame = WebDriverWait(browser, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    IMAGES.mkdir(parents=True, exist_ok=True)
    browser.switch_to.frame(frame)
    WebDriverWait(browser, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[data-figure=sent]")))
    figures = _figures(browser)
    page = browser.find_element(By.TAG_NAME, "body").text
    assert f"Campaign {run.campaign_id}" in page
    assert _count(figures["sent"]) == len(messages)
    assert _count(figures["delivered"]) == statuses[100]
    assert _count(figures["pending"]) == 0
    assert _count(figures["recipients"]) == len({m["mobile"] for m in messages})
    assert _count(figures["rejected"]) == 2  # the bad number and the duplicate
    assert Decimal(figures["points_spent"].replace(",", "")) == sum(Decimal(m["points"]) for m in messages)
    assert _count(figures["replies"]) == 2 and _count(figures["opt_outs"]) == 1
    failed = {s: n for s, n in statuses.items() if s not in (100,)}
    for status, count in failed.items():
        assert any(
            line.startswith(f"{status} ") and line.endswith(f"{count:,}") for line in page.splitlines()
        ), status
    assert "invalid_number" in page or "invalid" in page.lower()
    for message in messages:  # no full phone number anywhere on the page
        assert message["mobile"] not in browser.page_source
        assert message["mobile"].replace("+886", "0") not in browser.page_source
    browser.switch_to.default_content()
    browser.save_screenshot(str(IMAGES / "campaign-tab.png"))

    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe"))
    browser.find_element(By.ID, "rejects-link").click()
    WebDriverWait(browser, 30).until(
        EC.presence_of_element_located((By.XPATH, "//h1[starts-with(., 'Rejected')]"))
    )
    assert "•" in browser.page_source and "duplicate" in browser.page_source
    for message in messages:
        assert message["mobile"] not in browser.page_source
    browser.switch_to.default_content()

    browser.get(f"{api_server}/plugin/every8d")
    frame = WebDriverWait(browser, 60).until(EC.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
    browser.switch_to.frame(frame)
    WebDriverWait(browser, 60).until(
        EC.presence_of_element_located((By.XPATH, f"//td[.='{run.campaign_id}']"))
    )
    browser.switch_to.default_content()
    browser.save_screenshot(str(IMAGES / "every8d-overview.png"))


def test_anonymous_requests_are_refused_and_the_push_endpoint_stays_public(
    api_server_with_login, demo_campaign
):
    base, user, password = api_server_with_login
    run, _, _ = demo_campaign
    run_path = f"{DAG_ID}/{quote(run.run_id, safe='')}"
    paths = (
        f"/every8d-ui/campaign/{run_path}",
        f"/every8d-ui/api/campaign/{run_path}",
        f"/every8d-ui/rejects/{run_path}",
        "/every8d-ui/",
    )
    for path in paths:
        answer = requests.get(base + path, timeout=30)
        assert answer.status_code == 401, path
        assert run.campaign_id not in answer.text
        forged = requests.get(base + path, cookies={"_token": "forged.jwt.value"}, timeout=30)
        assert forged.status_code in (401, 403), path
        assert run.campaign_id not in forged.text
    token = requests.post(f"{base}/auth/token", json={"username": user, "password": password}, timeout=30)
    assert token.status_code in (200, 201), token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    authorised = requests.get(base + f"/every8d-ui/api/campaign/{run_path}", headers=bearer, timeout=30)
    assert authorised.status_code == 200, authorised.text
    assert authorised.json()["campaign_id"] == run.campaign_id
    cookie = requests.get(
        base + f"/every8d-ui/campaign/{run_path}",
        timeout=30,
        cookies={"_token": token.json()["access_token"]},
    )
    assert cookie.status_code == 200 and run.campaign_id in cookie.text
    # the push endpoint authenticates on its own (its token), not with Airflow's login
    push = requests.get(f"{base}/every8d/push", params={"BatchID": "x", "STATUS": "100"}, timeout=30)
    assert "Not authenticated" not in push.text
