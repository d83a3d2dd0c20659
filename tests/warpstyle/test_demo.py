"""The browser demo: its request logic (no browser), its Gradio handler, and the page driven by headless Chromium.

The browser test needs the ``demo`` extra (gradio, selenium) and Debian's ``chromium`` and
``chromium-driver``; it skips when any is absent. ``WARPSTYLE_DEMO_SCREENSHOT=docs/demo.png`` also
saves a screenshot of the finished page (``WARPSTYLE_DEMO_SIZE`` sets the output size, default 128);
``WARPSTYLE_DEMO_URL=http://127.0.0.1:7860/`` drives an already running ``warpstyle demo`` instead.
"""

import importlib.util
import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from adain.base.errors import StyleTransferError
from adain.base.image import load_image
from warpstyle.app import cli as warpstyle_cli
from warpstyle.app.demo import INSTALL_HINT, DemoEngine, build_app, sample_examples

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
has_gradio = importlib.util.find_spec("gradio") is not None
needs_gradio = pytest.mark.skipif(not has_gradio, reason="the 'demo' extra (gradio) is not installed")


@pytest.fixture(scope="module")
def engine(pipeline):
    return DemoEngine(lambda: pipeline)


def _sample(samples, kind, name):
    return str(samples / kind / name)


def _expected_hw(geometry: str, longer: int) -> tuple[int, int]:
    h, w = load_image(geometry, working_size=longer).shape[-2:]  # decoded as the demo decodes uploads
    s = longer / max(h, w)
    return round(h * s), round(w * s)


def test_engine_gives_every_output_and_reuses_the_geometry(engine, samples, monkeypatch):
    g = _sample(samples, "geometry", "munch_the-scream.jpg")
    t = _sample(samples, "texture", "vangogh_the-starry-night.jpg")
    encoded = []
    encode = engine.pipeline.warper._pool4
    monkeypatch.setattr(engine.pipeline.warper, "_pool4",
                        lambda image, bf16: encoded.append(tuple(image.shape[-2:])) or encode(image, bf16))
    steps = []
    out = engine.run(_sample(samples, "content", "kodim04.jpg"), g, t, size=64,
                     progress=lambda fraction, desc: steps.append((fraction, desc)))
    h, w = _expected_hw(g, 64)
    assert out.result.size == out.warped.size == out.field.size == (w, h)
    assert out.sheet.height > h and out.sheet.width > 4 * w  # content, geometry, texture, warped, field, result
    assert torch.equal(load_image(out.download), load_image(out.result))
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and steps[-1][0] < 1
    again = engine.run(_sample(samples, "content", "kodim23.jpg"), g, t, size=64)
    g_hw = tuple(load_image(g, working_size=64).shape[-2:])
    # pool4 of the geometry once (matching's fallback), of a content only where matching falls back
    assert encoded.count(g_hw) == 1 and len(encoded) <= 3, "the same geometry was encoded again"
    assert again.download != out.download and out.download.is_file()


def test_engine_inputs_may_be_left_empty(engine, samples):
    c = _sample(samples, "content", "kodim15.jpg")
    painted = engine.run(c, None, _sample(samples, "texture", "monet_water-lilies-1919.jpg"), size=48)
    assert painted.result.size == (48, 48) and painted.warped is None and painted.field is None
    warped = engine.run(c, _sample(samples, "geometry", "munch_the-scream.jpg"), None, size=48, alpha=0.5)
    assert warped.result.tobytes() == warped.warped.tobytes()  # no texture: the result is the warped content
    with pytest.raises(StyleTransferError, match="content image"):
        engine.run(None, None, None)


def test_engine_align_changes_the_warp(engine, samples):
    c = _sample(samples, "content", "kodim23.jpg")
    g = _sample(samples, "geometry", "munch_the-scream.jpg")
    plain = engine.run(c, g, None, size=48)
    aligned = engine.run(c, g, None, size=48, align=True)
    assert aligned.result.size == plain.result.size
    assert aligned.result.tobytes() != plain.result.tobytes()


def test_bad_upload_gets_the_cli_message_naming_the_upload(engine, samples, tmp_path):
    broken = tmp_path / "uploads" / "holiday.jpg"
    broken.parent.mkdir()
    broken.write_bytes((samples / "content" / "kodim04.jpg").read_bytes()[:600])  # a truncated JPEG
    with pytest.raises(StyleTransferError) as e:
        engine.run(str(broken), None, None, size=48)
    message = str(e.value)
    assert message.startswith("cannot read 'holiday.jpg': ") and "content image" in message
    assert "\n" not in message and str(tmp_path) not in message


def test_examples_are_the_bundled_samples(samples):
    rows = sample_examples(samples)
    assert len(rows) >= 3 and all(len(r) == 3 and Path(r[0]).is_file() for r in rows)
    assert any(r[1] is None for r in rows) and any(r[2] is None for r in rows)
    assert sample_examples(samples / "absent") == []


def test_cli_demo_serves_on_loopback_without_share_by_default(monkeypatch):
    seen = {}
    monkeypatch.setattr("warpstyle.app.demo.launch", lambda engine, **kw: seen.update(kw, engine=engine))
    res = CliRunner().invoke(warpstyle_cli.cli, ["demo"])
    assert res.exit_code == 0, res.output
    assert seen["host"] == "127.0.0.1" and seen["share"] is False and seen["port"] == 7860
    assert seen["engine"]._pipeline is None  # the models load in launch, not in the CLI


def test_missing_gradio_is_one_line_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` raise ImportError
    with pytest.raises(StyleTransferError, match=r"pip install 'warpstyle\[demo\]'"):
        build_app(DemoEngine(lambda: None))
    with pytest.raises(SystemExit) as e:
        warpstyle_cli.main(["demo", "--port", "7999"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and err == [f"warpstyle: error: {INSTALL_HINT}"]


@needs_gradio
def test_handler_turns_user_errors_into_one_line_page_errors(engine, samples, tmp_path):
    import gradio as gr

    app = build_app(engine, examples=[])
    (handler,) = [f.fn for f in app.fns.values() if f.name == "on_run"]
    args = (None, None, None, 1.0, 0.75, 0.8, "off", 64, 0, False)
    with pytest.raises(gr.Error) as e:
        handler(*args)
    assert e.value.message == "give a content image (the photo to transform)"
    bad = tmp_path / "notes<b>.jpg"
    bad.write_text("not an image")
    # The upload reaches the handler as its path, unopened, so our loader judges it (gr.Image would open it).
    (upload,) = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "content"]
    assert upload.get_block_name() == "image"
    assert upload.preprocess(upload.data_model(path=str(bad), orig_name=bad.name)) == str(bad)
    with pytest.raises(gr.Error) as e:
        handler(str(bad), *args[1:])
    assert e.value.message.startswith("cannot read 'notes&lt;b&gt;.jpg': ")  # markup escaped, quotes kept for API clients (issue 33)
    result, warped, field, sheet, download, info = handler(_sample(samples, "content", "kodim04.jpg"), None,
                                                           _sample(samples, "texture", "monet_water-lilies-1919.jpg"),
                                                           *args[3:])
    assert result.size == (64, 64) and warped is None and field is None and Path(download).is_file()
    assert info.startswith("64 x 64 px in ")


# ---- the page in a real browser ---------------------------------------------------------------------------

def _browser_missing() -> str | None:
    if not has_gradio or importlib.util.find_spec("selenium") is None:
        return "the 'demo' extra (gradio, selenium) is not installed"
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        return "Chromium is not installed (Debian: apt-get install chromium chromium-driver)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
@pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # Gradio's own use of pandas
def test_browser_uploads_three_images_and_gets_the_result(engine, samples, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from warpstyle.app.demo import launch

    size = int(os.environ.get("WARPSTYLE_DEMO_SIZE", "128"))
    paths = [_sample(samples, "content", "kodim04.jpg"), _sample(samples, "geometry", "munch_the-scream.jpg"),
             _sample(samples, "texture", "vangogh_the-starry-night.jpg")]
    app = None
    if os.environ.get("WARPSTYLE_DEMO_URL"):  # drive a `warpstyle demo` that is already running
        url = os.environ["WARPSTYLE_DEMO_URL"].rstrip("/") + "/"
    else:
        port = _free_port()
        app = launch(engine, port=port, block=False)
        url = f"http://127.0.0.1:{port}/"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 30)
        for elem_id, path in zip(("content", "geometry", "texture"), paths):
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} input[type=file]")))
            driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]").send_keys(path)
        for elem_id in ("content", "geometry", "texture"):  # each upload shows its preview
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} img")))
        box = driver.find_element(By.CSS_SELECTOR, "#size input[type=number]")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(size), Keys.TAB)
        driver.find_element(By.ID, "run").click()
        loaded = ("const i = document.querySelector('#result img');"
                  "return i && i.complete ? [i.naturalWidth, i.naturalHeight] : null")
        natural = WebDriverWait(driver, 90).until(lambda d: d.execute_script(loaded))
        h, w = _expected_hw(paths[1], size)
        assert tuple(natural) == (w, h)
        for elem_id in ("warped", "field", "sheet"):
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} img")))
        assert driver.find_elements(By.CSS_SELECTOR, "#download a"), "no download link"
        assert "Traceback" not in driver.page_source
        # Offline: every request the page made went to the demo's own server.
        requests = set()
        for entry in driver.get_log("performance"):
            if '"Network.requestWillBeSent"' in entry["message"]:
                requests.add(json.loads(entry["message"])["message"]["params"]["request"]["url"])
        assert any(u.startswith(f"{url}gradio_api/") for u in requests), "the network log is empty"
        foreign = sorted(u for u in requests if not u.startswith((url, "data:", "blob:")))
        assert not foreign, f"the page fetched from elsewhere: {foreign[:5]}"
        shot = os.environ.get("WARPSTYLE_DEMO_SCREENSHOT")
        if shot:
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1400, height + 200)
            time.sleep(1)
            driver.save_screenshot(shot)
        # A bad upload: the page shows the CLI's one-line message, naming the file.
        bad = tmp_path / "notes.jpg"
        bad.write_text("not an image")
        driver.find_element(By.CSS_SELECTOR, "#content button[aria-label='Remove Image']").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#content input[type=file]")))
        driver.find_element(By.CSS_SELECTOR, "#content input[type=file]").send_keys(str(bad))
        time.sleep(1)
        driver.find_element(By.ID, "run").click()
        toast = WebDriverWait(driver, 30).until(
            lambda d: next((t for t in d.find_elements(By.CSS_SELECTOR, ".toast-body") if "notes.jpg" in t.text), None))
        assert "cannot read 'notes.jpg': " in toast.text and "Traceback" not in toast.text
    finally:
        driver.quit()
        if app is not None:
            app.close()
