"""The every8d connection form in the real Airflow UI, in a real browser."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def test_every8d_connection_form_has_its_fields(api_server, browser, tmp_path):
    browser.get(f"{api_server}/connections")
    browser.find_element(By.XPATH, "//button[normalize-space()='Add Connection']").click()
    type_box = WebDriverWait(browser, 30).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, "[role=dialog] input[role=combobox]"))
    )
    type_box.click()
    type_box.send_keys("EVERY8D")
    WebDriverWait(browser, 15).until(EC.presence_of_element_located((By.XPATH, "//*[text()='EVERY8D SMS']")))
    type_box.send_keys(Keys.ENTER)
    host = WebDriverWait(browser, 30).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "input[name=host]"))
    )
    browser.save_screenshot(str(tmp_path / "connection-form.png"))

    assert host.get_attribute("placeholder") == "https://api.e8d.tw"
    assert (
        browser.find_element(By.CSS_SELECTOR, "input[name=login]").get_attribute("placeholder")
        == "your EVERY8D account"
    )
    assert browser.find_element(By.CSS_SELECTOR, "input[name=password]")
    page = browser.find_element(By.TAG_NAME, "body").text
    for label in ("Base URL", "UID (account)", "PWD (password)"):
        assert label in page, label
    for field in ("timeout", "connect_timeout", "verify", "validity_minutes", "read_retries"):
        assert browser.find_elements(By.CSS_SELECTOR, f"input[name=element_{field}]"), field
    assert not browser.find_elements(By.CSS_SELECTOR, "input[name=port]"), "port is hidden for this type"
