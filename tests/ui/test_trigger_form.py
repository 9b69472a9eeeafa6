"""The every8d_send_campaign trigger form in the real Airflow UI, in a real browser."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

FIELDS = (
    "audience",
    "sql_conn_id",
    "message",
    "subject",
    "kind",
    "mms_image",
    "send_at",
    "max_points",
    "allow_international",
    "dry_run",
)


def open_trigger_form(api_server, browser):
    """Open the DAG's trigger dialog; return it once its parameter form has rendered."""
    browser.get(f"{api_server}/dags/every8d_send_campaign")
    WebDriverWait(browser, 30).until(
        EC.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Trigger']"))
    ).click()
    message = WebDriverWait(browser, 30).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "[role=dialog] [name=element_message]"))
    )
    return message.find_element(By.XPATH, "./ancestor::*[@role='dialog']")


def trigger_button(dialog):
    return dialog.find_element(By.XPATH, ".//button[normalize-space()='Trigger']")


def test_trigger_form_shows_every_campaign_field(api_server, browser, tmp_path):
    dialog = open_trigger_form(api_server, browser)
    browser.save_screenshot(str(tmp_path / "trigger-form.png"))
    for field in FIELDS:
        assert dialog.find_elements(By.CSS_SELECTOR, f"[name=element_{field}]"), field
    text = dialog.text
    for label in ("Audience", "Message template", "Budget cap (points)", "Dry run", "Send at"):
        assert label in text, label
    assert (
        dialog.find_element(By.CSS_SELECTOR, "[name=element_audience]")
        .get_attribute("value")
        .endswith("include/sample_audience.csv")
    )
    assert trigger_button(dialog).is_enabled(), "the defaults are a valid dry run"


def test_trigger_form_refuses_an_empty_message(api_server, browser):
    dialog = open_trigger_form(api_server, browser)
    message = dialog.find_element(By.CSS_SELECTOR, "[name=element_message]")
    message.send_keys(Keys.CONTROL, "a")
    message.send_keys(Keys.DELETE)
    WebDriverWait(browser, 15).until(lambda _: not trigger_button(dialog).is_enabled())
    assert "This field is required" in dialog.text
