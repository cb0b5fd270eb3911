"""End-to-end: the web page in headless Chromium uploads a phantom PNG and shows the result."""
from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from inference_helpers import phantom
from PIL import Image

from brainmri.serving.app import ServeSettings, create_app

pytestmark = pytest.mark.slow
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run")


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    if not browser or not driver:
        pytest.skip("chromium / chromedriver not installed")
    return browser, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tiny_clf):
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(create_app(ServeSettings(), classifier=tiny_clf), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture()
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    drv = webdriver.Chrome(service=Service(driver_path), options=options)
    yield drv
    drv.quit()


def test_upload_shows_label_bars_and_disclaimer(server, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    scan = tmp_path / "phantom.png"
    Image.fromarray(phantom(0, size=80, seed=3)).save(scan)
    browser.get(server + "/")
    assert "For research use only; not a medical device." in browser.find_element(By.ID, "disclaimer").text
    WebDriverWait(browser, 10).until(lambda d: "Model:" in d.find_element(By.ID, "model-info").text)
    browser.find_element(By.ID, "file-input").send_keys(str(scan))
    browser.find_element(By.ID, "explain-input").click()
    browser.find_element(By.ID, "submit-button").click()
    WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.ID, "status"), "Done."))
    label = browser.find_element(By.ID, "label").text
    assert label in {"glioma", "meningioma", "notumor", "pituitary"}
    rows = browser.find_elements(By.CSS_SELECTOR, "#bars .bar-row")
    assert [r.get_attribute("data-cls") for r in rows] == ["glioma", "meningioma", "notumor", "pituitary"]
    widths = [float(r.find_element(By.CSS_SELECTOR, ".bar").value_of_css_property("width").rstrip("px")) for r in rows]
    assert all(w > 0 for w in widths)
    assert browser.find_element(By.CSS_SELECTOR, "#bars .bar-row.top").get_attribute("data-cls") == label
    overlay = browser.find_element(By.ID, "overlay")
    WebDriverWait(browser, 10).until(lambda d: overlay.get_attribute("naturalWidth") not in (None, "0"))
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None


def test_unsupported_file_shows_the_error(server, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fake = tmp_path / "scan.png"
    fake.write_text("this is text, not a scan")
    browser.get(server + "/")
    browser.find_element(By.ID, "file-input").send_keys(str(fake))
    browser.find_element(By.ID, "submit-button").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert browser.find_element(By.ID, "error").text.startswith("scan.png: unsupported content")  # the page names the file


def test_an_out_of_distribution_upload_shows_no_confidence_and_no_bars(server, browser, tmp_path) -> None:
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((80, 80), 128, np.uint8)).save(blank)
    browser.get(server + "/")
    WebDriverWait(browser, 10).until(lambda d: "Model:" in d.find_element(By.ID, "model-info").text)
    browser.find_element(By.ID, "file-input").send_keys(str(blank))
    browser.find_element(By.ID, "submit-button").click()
    WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.ID, "status"), "Done."))
    assert browser.find_element(By.ID, "label").text == "not classified"
    assert browser.find_element(By.ID, "confidence").text == ""
    assert "does not look like a brain MRI" in browser.find_element(By.ID, "ood").text
    assert not browser.find_element(By.ID, "bars").is_displayed()


def _wait_done(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.ID, "status"), "Done."))


def test_a_volume_says_which_slices_the_verdict_rests_on(server, browser, tmp_path) -> None:
    import nibabel as nib
    import numpy as np
    from selenium.webdriver.common.by import By

    stack = np.stack([np.rot90(phantom(k % 4, size=80, seed=k), -1) for k in range(12)], axis=2).astype(np.float32)
    vol = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(stack, np.eye(4)), str(vol))
    browser.get(server + "/")
    browser.find_element(By.ID, "file-input").send_keys(str(vol))
    browser.find_element(By.ID, "explain-input").click()
    browser.find_element(By.ID, "submit-button").click()
    _wait_done(browser)
    note = browser.find_element(By.ID, "slices").text
    assert "Volume: 5 of 12 axial slices classified (slices 4–8, counted from 0)" in note  # the server's default middle:5
    assert "the other slices were not looked at" in note and "Heat map: slice" in note
    assert browser.find_element(By.ID, "result-file").text == "head.nii.gz:"


def test_a_new_file_or_request_never_shows_the_last_result(server, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    first, fake = tmp_path / "first.png", tmp_path / "second.png"
    Image.fromarray(phantom(0, size=80, seed=3)).save(first)
    fake.write_text("this is text, not a scan")
    browser.get(server + "/")
    browser.find_element(By.ID, "file-input").send_keys(str(first))
    browser.find_element(By.ID, "submit-button").click()
    _wait_done(browser)
    assert "first.png" in browser.find_element(By.ID, "status").text
    browser.find_element(By.ID, "file-input").send_keys(str(fake))  # chosen, not sent yet
    assert not browser.find_element(By.ID, "result").is_displayed()
    browser.find_element(By.ID, "submit-button").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert browser.find_element(By.ID, "label").get_attribute("textContent") == "-"
    assert browser.switch_to.active_element.get_attribute("id") == "error"  # focus moves to the answer


def test_a_wrong_api_key_is_called_rejected(tiny_clf, browser, tmp_path) -> None:
    import uvicorn
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(ServeSettings(api_key="s3cret"), classifier=tiny_clf), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        while not srv.started:
            time.sleep(0.05)
        scan = tmp_path / "scan.png"
        Image.fromarray(phantom(0, size=80, seed=3)).save(scan)
        browser.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(browser, 10).until(lambda d: "needs an API key" in d.find_element(By.ID, "model-info").text)
        browser.find_element(By.ID, "key-input").send_keys("wrong")
        browser.find_element(By.ID, "file-input").send_keys(str(scan))
        browser.find_element(By.ID, "submit-button").click()
        WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "error").is_displayed())
        assert "the API key was rejected" in browser.find_element(By.ID, "error").text
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_a_file_dropped_on_the_page_is_classified(server, browser, tmp_path) -> None:
    import base64

    from selenium.webdriver.common.by import By

    scan = tmp_path / "dropped.png"
    Image.fromarray(phantom(0, size=80, seed=3)).save(scan)
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    WebDriverWait(browser, 10).until(lambda d: "Model:" in d.find_element(By.ID, "model-info").text)  # the page's script has run
    data = base64.b64encode(scan.read_bytes()).decode()
    browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    """, data)
    assert browser.execute_script("return document.getElementById('file-input').files[0].name") == "dropped.png"
    browser.find_element(By.ID, "submit-button").click()
    _wait_done(browser)
    assert "dropped.png" in browser.find_element(By.ID, "status").text
