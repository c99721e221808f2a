"""A real headless Chromium keeps its session across a reload and a restart of the app (the hostile probe 5 of
issue 24: every reload used to start a new session, so a visitor lost their job and models)."""

import socket


from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, pytestmark  # noqa: F401 - the same skip

STORED = "() => localStorage.getItem('charrnn-session')"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_reload_and_an_app_restart_keep_the_visitors_session(tiny_library, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from charrnn.app.page import build_app
    from charrnn.app.session import PageSession
    from charrnn.service import ModelLibrary
    from charrnn.service.sessions import SessionKeys
    from charrnn.service.training import TrainingManager

    minted = []
    real_new_key = PageSession.new_key
    monkeypatch.setattr(PageSession, "new_key", lambda self: minted.append(real_new_key(self)) or minted[-1])
    port = free_port()

    def start():  # the app as launch.py builds it: signed keys with the host's secret, beside its models
        library = ModelLibrary(tiny_library, hub_ids=[])
        manager = TrainingManager(library, tmp_path / "user-models", sessions=SessionKeys.for_host(tmp_path))
        demo = build_app(library, manager)
        demo.queue()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        return demo

    demo = start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=90_000)
        page.wait_for_function(f"{STORED} !== null", timeout=60_000)
        assert len(minted) == 1
        page.reload(wait_until="load")
        page.get_by_role("tab", name="Train").wait_for(timeout=60_000)
        page.wait_for_timeout(3000)  # the page's load event has run
        # The page stores the key again at each load (a new ciphertext: a random IV), but no new key was made.
        assert page.evaluate(STORED) is not None and len(minted) == 1
        demo.close()
        demo = start()  # a restart: a new process would read the same secret file
        page.reload(wait_until="load")
        page.get_by_role("tab", name="Train").wait_for(timeout=60_000)
        page.wait_for_timeout(3000)
        assert len(minted) == 1
        page.evaluate("() => localStorage.clear()")  # a visitor who cleared their storage gets a new session
        page.reload(wait_until="load")
        page.get_by_role("tab", name="Train").wait_for(timeout=60_000)
        page.wait_for_function(f"{STORED} !== null", timeout=60_000)
        assert len(minted) == 2
        browser.close()
    demo.close()
    assert SessionKeys.for_host(tmp_path).is_valid(minted[0])
