"""The web page of fer-jax serve, in Debian's headless Chromium driven by Selenium.

Chromium and its driver are system packages (`apt-get install chromium chromium-driver`, as
.ci/run does); without them this test fails, it is not skipped.
"""

import json
import os
import shutil
import tempfile
import urllib.request

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import predict_videos
from fer_jax.infer.loader import load_model
from fer_jax.infer.serve import create_app

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.path.isfile(path), f"{path} is missing: apt-get install -y chromium chromium-driver"
    profile = tempfile.mkdtemp(prefix="fer-jax-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: selenium-manager never tries to download one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tiny_run):
    with predict_videos.RunningServer(create_app(load_model(tiny_run), max_parallel=1)) as running:
        yield running


def test_upload_shows_the_plot_and_the_window_table(browser, server, tmp_path):
    video = predict_videos.astronaut_video(tmp_path / "astronaut.mp4", seconds=2, fps=10)
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 120)
    wait.until(lambda d: "step" in d.find_element(By.ID, "model").text)  # /healthz answered
    browser.find_element(By.ID, "video").send_keys(video)
    browser.find_element(By.ID, "stride").send_keys("4")
    browser.find_element(By.ID, "submit").click()
    done = (lambda d: d.find_element(By.ID, "plot").is_displayed() or "error" in d.find_element(By.ID, "status").text)
    wait.until(done)
    status = browser.find_element(By.ID, "status").text
    assert "error" not in status, status
    plot = browser.find_element(By.ID, "plot")
    # The browser decoded the PNG: a real picture, not a broken image.
    size = browser.execute_script("const i = arguments[0]; return [i.complete, i.naturalWidth, i.naturalHeight];", plot)
    assert size[0] and size[1] > 400 and size[2] > 200, size
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.window")
    # The same windows the API gives for this upload.
    with urllib.request.urlopen(server.url + "/healthz") as r:
        assert json.loads(r.read())["window_frames"] == 8
    assert len(rows) == len(range(0, 20 - 8 + 1, 4)) == 4
    cells = rows[1].find_elements(By.TAG_NAME, "td")
    assert cells[1].text == "0.40" and cells[3].text in ("right", "down", "still")
    probabilities = [float(c.text) for c in cells[4:]]
    assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 0.01 and np.argmax(probabilities) == \
        ["right", "down", "still"].index(cells[3].text)


def test_a_bad_upload_shows_the_services_message(browser, server, tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 20)
    browser.get(server.url + "/")
    browser.find_element(By.ID, "video").send_keys(str(notes))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60).until(lambda d: "error" in d.find_element(By.ID, "status").text)
    text = browser.find_element(By.ID, "status").text
    assert "notes.mp4" in text and "not a media file" in text
