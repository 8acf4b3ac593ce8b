"""End-to-end: the web page in a real headless Chromium (Debian's, driven by Playwright).

Loads a product page from a running server, checks photo, title, variant and the 15
recommendations, clicks one, and checks that the click (with its rank) and the view reached
the event store; "go to shop" logs a jump. Needs /usr/bin/chromium (apt-get install chromium):
skipped without it on a developer machine, a failure in CI ($CI set).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from prodfusion.service.events import open_event_store

from .helpers import free_port, make_model, start_server, stop_server

CHROMIUM = os.environ.get("PRODFUSION_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def _need_browser():
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} not found (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the 'playwright' package is not installed (pip install playwright)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {missing}")
        pytest.skip(f"browser test skipped: {missing}")


def _open(p, height: int = 1000):
    """Headless Chromium with one page whose script errors are collected."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return browser, page, errors


@contextmanager
def _serving(tmp_path, catalog):
    """A planted model of ``catalog`` served on a free port (the port), events in SQLite."""
    model = make_model(tmp_path, catalog=catalog)
    port = free_port()
    server = start_server(model, port, tmp_path / "server.log", "--events",
                          str(tmp_path / "events.sqlite3"))
    try:
        yield port
    finally:
        stop_server(server)


def _wait_for(fn, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = fn()
        if got:
            return got
        time.sleep(0.05)
    return fn()


@pytest.mark.slow
def test_page_shows_recommendations_and_logs_click_and_jump(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    model = make_model(tmp_path)
    db, log = tmp_path / "events.sqlite3", tmp_path / "server.log"
    port = free_port()
    server = start_server(model, port, log, "--events", str(db),
                          "--shop-url", "http://127.0.0.1:9/shop/{product_id}")
    base = f"http://127.0.0.1:{port}"
    store = open_event_store(db)
    try:
        with sync_playwright() as p:
            browser, page, errors = _open(p, height=1000)
            external: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
                    else external.append(r.url))

            # the browse view first: pick a product from the grid
            page.goto(base + "/")
            page.wait_for_selector("#browse-grid a.card")
            assert page.locator("#browse-grid a.card").count() == 24
            page.locator('#browse-grid a.card[data-product-id="0001"]').click()

            page.wait_for_selector("#recs a.card")
            assert page.inner_text("#p-title") == "Shoe number 1"
            assert page.inner_text("#variant") == "variant: default"
            cards = page.locator("#recs a.card")
            assert cards.count() == 15
            page.wait_for_function("document.getElementById('p-img').naturalWidth > 0")
            # planted answer: the first 9 recommendations are the other Shoes
            first9 = [cards.nth(i).get_attribute("data-product-id") for i in range(9)]
            assert set(first9) == {f"{i:04d}" for i in range(5, 40, 4)}
            assert "score" in cards.nth(0).inner_text()
            shot = os.environ.get("PRODFUSION_SCREENSHOT")
            page.wait_for_function(
                "[...document.querySelectorAll('#recs img')].every(i => i.complete)")
            if shot:
                page.screenshot(path=shot, full_page=True)

            view_rid = _wait_for(lambda: [e.request_id for e in store.fetch_events()
                                          if e.type == "view"])
            assert view_rid, "the page's view event never reached the store"

            target = cards.nth(2).get_attribute("data-product-id")
            cards.nth(2).click()
            page.wait_for_function(
                f"document.getElementById('p-id').textContent === {target!r}")
            assert page.url.endswith(f"#p={target}")

            clicks = _wait_for(lambda: [e for e in store.fetch_events() if e.type == "click"])
            assert len(clicks) == 1
            (c,) = clicks
            assert (c.product_id, c.target_id, c.rank, c.variant) == ("0001", target, 3, "default")
            assert c.status == "ok"  # the page sent the list's signed id and the target's sig
            assert c.request_id == view_rid[0]  # attributed to the list that was viewed

            with page.expect_request(lambda r: "/shop/" in r.url):  # navigates to the merchant
                page.click("#shop")
            jumps = _wait_for(lambda: [e for e in store.fetch_events() if e.type == "jump"])
            assert [(j.product_id, j.type) for j in jumps] == [(target, "jump")]
            browser.close()
        assert not errors, errors
        assert not [u for u in external if "/shop/" not in u], external  # offline: no CDN
        views = [e for e in store.fetch_events() if e.type == "view"]
        assert [v.product_id for v in views] == ["0001", target]
        assert {e.status for e in store.fetch_events()} == {"ok"}  # nothing quarantined
    finally:
        store.close()
        stop_server(server)


@pytest.mark.slow
def test_long_titles_take_three_lines_on_the_page_and_stay_whole_on_hover(tmp_path):
    """A marketplace's 600-character title: the product's heading stops at three lines (its
    whole text in the tooltip), the cards' at two, so the recommendations stay in view."""
    _need_browser()
    import polars as pl
    from playwright.sync_api import sync_playwright

    from prodfusion.data.catalog import Catalog

    from .helpers import make_catalog

    cat = make_catalog(tmp_path)
    long = ("Shoe " + "with a very long marketplace description " * 15).strip()
    cat = Catalog(cat.frame.with_columns(
        pl.when(pl.col("product_id").is_in(["0001", "0005"])).then(pl.lit(long))
        .otherwise(pl.col("title")).alias("title")), source="<test>")
    with _serving(tmp_path, cat) as port:
        with sync_playwright() as p:
            browser, page, errors = _open(p)
            page.goto(f"http://127.0.0.1:{port}/#p=0001")
            page.wait_for_selector("#recs a.card")
            h = page.locator("#p-title")
            assert h.get_attribute("title") == long
            line = page.evaluate("(() => { const e = document.createElement('h1');"
                                 " e.textContent = 'x'; document.body.append(e);"
                                 " const r = e.getBoundingClientRect().height; e.remove();"
                                 " return r; })()")
            assert 2.5 * line < h.bounding_box()["height"] <= 3.2 * line  # three lines
            card = page.locator('#recs a.card[data-product-id="0005"] .title')
            assert card.get_attribute("title") == long
            assert card.bounding_box()["height"] < 3 * line
            assert page.locator("#recs a.card").first.bounding_box()["y"] < 1000  # in view
            browser.close()
        assert not errors, errors


@pytest.mark.slow
def test_titles_whose_html_references_were_decoded_show_as_text_not_markup(tmp_path):
    """A feed's ``&lt;img src=x onerror=…&gt;`` is decoded by read_catalog into the characters
    ``<img …>``; the page shows them as text — no element made, no script run."""
    _need_browser()
    import polars as pl
    from playwright.sync_api import sync_playwright

    from prodfusion.data import read_catalog
    from prodfusion.data.catalog import Catalog

    from .helpers import make_catalog

    feed = tmp_path / "feed.csv"
    feed.write_text("product_id,title\n1,Shirt &lt;img src=x onerror=alert(1)&gt; &amp; tie\n",
                    "utf-8")
    title = read_catalog(feed).titles[0]
    assert title == "Shirt <img src=x onerror=alert(1)> & tie"
    cat = make_catalog(tmp_path)
    cat = Catalog(cat.frame.with_columns(
        pl.when(pl.col("product_id").is_in(["0001", "0005"])).then(pl.lit(title))
        .otherwise(pl.col("title")).alias("title")), source="<test>")
    with _serving(tmp_path, cat) as port:
        with sync_playwright() as p:
            browser, page, errors = _open(p)
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"http://127.0.0.1:{port}/#p=0001")
            page.wait_for_selector("#recs a.card")
            assert page.locator("#p-title").text_content() == title
            card = page.locator('#recs a.card[data-product-id="0005"] .title')
            assert card.text_content() == title
            assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
            browser.close()
        assert not errors and not dialogs, (errors, dialogs)


@pytest.mark.slow
def test_photos_named_by_url_and_right_to_left_titles_show_on_the_page(tmp_path):
    """A photo the catalog names by URL reaches the page through /images/{id}'s redirect (a
    second local server stands in for the shop's CDN); an Arabic title runs right to left."""
    _need_browser()
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import polars as pl
    from playwright.sync_api import sync_playwright

    from prodfusion.data.catalog import Catalog

    from .helpers import make_catalog

    cat = make_catalog(tmp_path)
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler,
                                                        directory=str(tmp_path / "images")))
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{cdn.server_address[1]}"
    arabic = "فستان أحمر صيفي"
    cat = Catalog(cat.frame.with_columns(
        pl.when(pl.col("product_id").is_in(["0001", "0005"]))
        .then(pl.lit(base + "/") + pl.col("product_id") + pl.lit(".png"))
        .otherwise(pl.col("image")).alias("image"),
        pl.when(pl.col("product_id") == "0005").then(pl.lit(arabic))
        .otherwise(pl.col("title")).alias("title")), source="<test>")
    with _serving(tmp_path, cat) as port:
        with sync_playwright() as p:
            browser, page, errors = _open(p)
            page.goto(f"http://127.0.0.1:{port}/#p=0001")
            page.wait_for_selector("#recs a.card")
            assert _wait_for(lambda: page.evaluate(
                "document.getElementById('p-img').naturalWidth")) == 60  # the CDN's photo
            card = page.locator('#recs a.card[data-product-id="0005"]')
            assert card.locator(".title").text_content() == arabic
            assert card.locator(".title").evaluate("e => getComputedStyle(e).direction") == "rtl"
            assert _wait_for(lambda: card.locator("img").evaluate("e => e.naturalWidth")) == 60
            assert page.locator("#p-title").evaluate("e => getComputedStyle(e).direction") \
                == "ltr"
            browser.close()
        assert not errors, errors
    cdn.shutdown()
    cdn.server_close()


@pytest.mark.slow
def test_page_profile_shows_a_second_row_whose_clicks_count_against_it(tmp_path):
    """``serve --page-profile next_clicks``: under the similar products the page shows the
    same product ranked by that profile, logs a view for it with its own request id, and a
    click in it is attributed (and verified) against that row's list."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    model = make_model(tmp_path, profile="next_clicks")
    db, log = tmp_path / "events.sqlite3", tmp_path / "server.log"
    port = free_port()
    server = start_server(model, port, log, "--events", str(db), "--page-profile",
                          "next_clicks")
    base = f"http://127.0.0.1:{port}"
    store = open_event_store(db)
    try:
        with sync_playwright() as p:
            browser, page, errors = _open(p, height=1400)
            page.goto(base + "/#p=0001")
            page.wait_for_selector("#also a.card")
            assert page.locator("#recs a.card").count() == 15
            row = page.locator("#also a.card")
            assert row.count() == 15 and page.is_visible("#also-box")
            assert row.nth(0).locator(".why").count() == 1  # its modality bars too
            views = _wait_for(lambda: [e for e in store.fetch_events() if e.type == "view"]
                              if len([e for e in store.fetch_events() if e.type == "view"]) == 2
                              else None)
            assert views and {v.product_id for v in views} == {"0001"}
            assert len({v.request_id for v in views}) == 2  # one per row
            target = row.nth(4).get_attribute("data-product-id")
            row.nth(4).click()
            page.wait_for_function(
                f"document.getElementById('p-id').textContent === {target!r}")
            clicks = _wait_for(lambda: [e for e in store.fetch_events() if e.type == "click"])
            (c,) = clicks
            assert (c.product_id, c.target_id, c.rank) == ("0001", target, 5)
            assert c.status == "ok"  # verified against the second row's list
            assert c.request_id == views[1].request_id != views[0].request_id
            page.wait_for_selector("#also a.card")  # the next product has its row too
            browser.close()
        assert not errors, errors
    finally:
        store.close()
        stop_server(server)


@pytest.mark.slow
def test_experiment_page_shows_rates_intervals_trend_srm_and_exclusions(tmp_path):
    """/experiments/{name}: per-variant and per-category CTR / JR with interval bars, the daily
    trend, the SRM verdict and the excluded-event count, from a store with planted numbers."""
    _need_browser()
    import httpx
    from playwright.sync_api import sync_playwright

    from prodfusion.service.events import Event

    model = make_model(tmp_path)
    db = tmp_path / "events.sqlite3"
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'[service]\nevents = "{db}"\n[experiment]\nname = "page-test"\n'
                   f'salt = "s"\n[[experiment.variants]]\nname = "baseline"\nmodel = "{model}"\n'
                   'modalities = ["clicks", "text"]\n[[experiment.variants]]\nname = "fusion"\n'
                   f'model = "{model}"\n')
    port = free_port()
    server = start_server(cfg, port, tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    store = open_event_store(db)
    try:
        # planted: 3 days; baseline 60 views / 3 clicks per day, fusion 60 / 9 (CTR 5 % vs 15 %),
        # views on a Shoes page (0001) and a Hats page (0002) alternately
        day0 = (time.time() // 86400 - 3) * 86400
        evs = []
        for d in range(3):
            for variant, n_click in (("baseline", 3), ("fusion", 9)):
                for i in range(60):
                    rid, vis = f"{variant}-{d}-{i}", f"vis-{variant}-{i}"
                    pid = "0001" if i % 2 == 0 else "0002"
                    t = day0 + d * 86400 + 100 + i
                    evs.append(Event(f"v-{rid}", "view", "page-test", variant, vis, rid, pid,
                                     category="Shoes" if pid == "0001" else "Hats", received_at=t))
                    if i < n_click:
                        evs.append(Event(f"c-{rid}", "click", "page-test", variant, vis, rid, pid,
                                         target_id="0005", rank=1, received_at=t + 5,
                                         category="Shoes" if pid == "0001" else "Hats"))
                    if i < n_click // 3 * 2:  # jumps: 2 a day for baseline, 6 for fusion
                        evs.append(Event(f"j-{rid}", "jump", "page-test", variant, vis, rid, pid,
                                         received_at=t + 9,
                                         category="Shoes" if pid == "0001" else "Hats"))
        store.add(evs)
        # today, through the API with signed request ids: 20 visitors per variant view 0001
        alloc = store.latest_allocation("page-test")
        live = {"baseline": [], "fusion": []}
        i = 0
        while min(map(len, live.values())) < 20:
            v = f"live-{i}"
            i += 1
            if len(live[alloc.variant_of(v)]) < 20:
                live[alloc.variant_of(v)].append(v)
        for v in live["baseline"] + live["fusion"]:
            body = httpx.get(f"{base}/v1/similar/0001?visitor={v}", timeout=10).json()
            view = {"event_id": f"live-{v}", "type": "view", "request_id": body["request_id"],
                    "product_id": "0001", "visitor": v}
            assert httpx.post(base + "/v1/events", json={"events": [view]}).json()["stored"] == 1
        # and through the API: a forged click is quarantined and shown as excluded
        forged = {"event_id": "forged-1", "type": "click", "request_id": "abc.123.def",
                  "product_id": "0001", "visitor": "vis-baseline-0", "target_id": "0005", "rank": 1}
        r = httpx.post(base + "/v1/events", json={"events": [forged]}, timeout=10)
        assert r.json()["quarantined"] == 1
        with sync_playwright() as p:
            browser, page, errors = _open(p, height=1000)
            external: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
                    else external.append(r.url))
            page.goto(base + "/experiments/page-test")
            page.wait_for_selector("#report:not([hidden])")
            rows = {v: page.locator(f"#v-{v}") for v in ("baseline", "fusion")}
            # 3 days x 60 planted + 20 live views; 9 / 27 clicks; 6 / 18 jumps
            assert rows["baseline"].locator(".views").inner_text() == "200"
            assert rows["baseline"].locator(".clicks").inner_text() == "9"
            assert rows["baseline"].locator(".ctr").inner_text() == "4.50%"
            assert rows["fusion"].locator(".ctr").inner_text() == "13.50%"
            assert rows["baseline"].locator(".jr").inner_text() == "3.00%"
            assert rows["fusion"].locator(".jr").inner_text() == "9.00%"
            assert "p=" in rows["fusion"].inner_text()
            # interval bars: one CTR and one JR band per variant row, fusion's further right
            assert page.locator("#variants .ci").count() == 4
            left = [float(rows[v].locator(".ctr-bar .pt").evaluate("e => e.offsetLeft"))
                    for v in ("baseline", "fusion")]
            assert left[1] > 2 * left[0] > 0
            assert page.locator("#srm-verdict").inner_text() == "Sample ratio: ok"  # 20 vs 20
            assert page.locator("#excluded-total").inner_text() == "Excluded events: 1"
            assert "unverified 1" in page.locator("#excluded").inner_text()
            assert page.locator("#daily circle.day-point").count() == 8  # 4 days x 2 variants
            cats = page.locator("#categories .cat")
            assert sorted(cats.nth(i).get_attribute("data-category") for i in range(cats.count())) \
                == ["Hats", "Shoes"]
            shot = os.environ.get("PRODFUSION_EXPERIMENT_SCREENSHOT")
            if shot:
                page.screenshot(path=shot, full_page=True)
            # an unknown experiment says so
            page.goto(base + "/experiments/nope")
            page.wait_for_selector("#message:not([hidden])")
            assert "No experiment 'nope'" in page.inner_text("#message")
            browser.close()
        assert not errors, errors
        assert not external, external
    finally:
        store.close()
        stop_server(server)


@contextmanager
def _running(server):
    """A test's own little HTTP server, serving in a thread; yields its port."""
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _proxy(backend: int, prefix: str, strip: bool):
    """A reverse proxy serving the service at ``prefix`` on a port of its own, as nginx's
    ``location /recs/ { proxy_pass http://127.0.0.1:PORT/; }`` does (``strip``; without:
    ``proxy_pass http://127.0.0.1:PORT;``, the prefix forwarded). Anything outside the
    prefix is the shop's, not the service's: 404."""
    import http.client
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Forward(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _forward(self):
            if not (self.path == prefix or self.path.startswith(prefix + "/")):
                self.send_error(404, "not the service's")
                return
            path = (self.path[len(prefix):] or "/") if strip else self.path
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = http.client.HTTPConnection("127.0.0.1", backend, timeout=30)
            conn.request(self.command, path, body=body or None, headers={
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")})
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for k, v in answer.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = _forward

    with _running(ThreadingHTTPServer(("127.0.0.1", 0), Forward)) as port:
        yield port


@pytest.mark.slow
@pytest.mark.parametrize("strip", [True, False], ids=["prefix-stripped", "prefix-forwarded"])
def test_the_page_works_behind_a_reverse_proxy_at_a_path_prefix(tmp_path, strip):
    """``serve --root-path /recs`` behind a proxy at ``https://shop/recs/``: the page, its
    script and styles, the photos, the events and /docs all load under the prefix, none from
    the shop's own root; a click is attributed as without the proxy."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    model = make_model(tmp_path)
    db = tmp_path / "events.sqlite3"
    port = free_port()
    server = start_server(model, port, tmp_path / "server.log", "--events", str(db),
                          "--root-path", "/recs/")
    store = open_event_store(db)
    try:
        with _proxy(port, "/recs", strip) as proxied, sync_playwright() as p:
            base = f"http://127.0.0.1:{proxied}/recs"
            browser, page, errors = _open(p)
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            failed: list[str] = []
            page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
            page.goto(base + "/")
            page.wait_for_selector("#browse-grid a.card")
            page.locator('#browse-grid a.card[data-product-id="0001"]').click()
            page.wait_for_selector("#recs a.card")
            assert page.inner_text("#p-title") == "Shoe number 1"
            page.wait_for_function("document.getElementById('p-img').naturalWidth > 0")
            assert page.get_attribute("#p-img", "src") == "/recs/images/0001"
            cards = page.locator("#recs a.card")
            assert cards.count() == 15
            target = cards.nth(1).get_attribute("data-product-id")
            cards.nth(1).click()
            page.wait_for_function(
                f"document.getElementById('p-id').textContent === {target!r}")
            clicks = _wait_for(lambda: [e for e in store.fetch_events() if e.type == "click"])
            assert [(c.product_id, c.target_id, c.rank, c.status) for c in clicks] == [
                ("0001", target, 2, "ok")]
            # the API's docs and the experiment page, under the prefix too
            page.goto(base + "/docs")
            page.wait_for_selector(".swagger-ui .info .title")
            assert "prodfusion" in page.inner_text(".swagger-ui .info .title")
            page.goto(base + "/experiments/default")
            page.wait_for_function("document.getElementById('exp-name').textContent.length > 0")
            assert page.inner_text("#exp-name") == "default"
            browser.close()
        assert not errors, errors
        assert not failed, failed
        outside = [u for u in asked if not u.startswith(base + "/") and not u.startswith("data:")]
        assert not outside, outside  # nothing asked of the shop's own root
        assert {"/recs/static/app.js", "/recs/v1/events", "/recs/openapi.json"} <= {
            u[len(f"http://127.0.0.1:{proxied}"):].split("?")[0] for u in asked}
        # and the service answers on its own port too, without the proxy
        import httpx

        direct = httpx.get(f"http://127.0.0.1:{port}/v1/similar/0001?k=2").json()
        assert direct["items"][0]["image_url"].startswith("/recs/images/")
    finally:
        store.close()
        stop_server(server)


@contextmanager
def _static_site(folder: Path):
    """The shop's own web server: ``folder``'s files on a port of their own (another origin)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    with _running(ThreadingHTTPServer(("127.0.0.1", 0),
                                      functools.partial(Quiet, directory=str(folder)))) as port:
        yield port


_SHOP_PAGE = """<!doctype html><html><body><ul id="recs"></ul><p id="state">loading</p>
<script>
(async () => {
  try {
    const r = await fetch("%(api)s/v1/similar/0001?k=3", {credentials: "include"});
    const data = await r.json();
    document.getElementById("recs").innerHTML =
      data.items.map(i => `<li>${i.product_id}</li>`).join("");
    const sent = await fetch("%(api)s/v1/events", {
      method: "POST", credentials: "include", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({events: [{event_id: "shop-view-1", type: "view",
        request_id: data.request_id, product_id: "0001"}]})});
    document.getElementById("state").textContent = "posted " + sent.status + (sent.ok ? "" : " " + await sent.text());
  } catch (e) { document.getElementById("state").textContent = "refused: " + e; }
})();
</script></body></html>"""


@pytest.mark.slow
def test_a_shop_page_on_another_origin_shows_the_lists_and_logs_a_view_with_cors(tmp_path):
    """The shop's own page (another origin of the same site: another port, as
    www.shop.example beside recs.shop.example) fetches ``/v1/similar`` and posts a view from its
    script: with ``--cors-origin`` naming it, the list shows and the view is stored for the
    visitor of the service's cookie; without, the browser refuses the answer."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    model = make_model(tmp_path)
    site = tmp_path / "shop"
    site.mkdir()
    with _static_site(site) as shop_port, sync_playwright() as p:
        shop = f"http://127.0.0.1:{shop_port}"
        for allowed in (True, False):
            db = tmp_path / f"events-{allowed}.sqlite3"
            port = free_port()
            extra = ["--cors-origin", shop] if allowed else []
            server = start_server(model, port, tmp_path / "server.log", "--events", str(db),
                                  *extra)
            (site / "product.html").write_text(_SHOP_PAGE % {"api": f"http://127.0.0.1:{port}"})
            store = open_event_store(db)
            try:
                browser, page, errors = _open(p)
                page.goto(shop + "/product.html")
                page.wait_for_function(
                    "document.getElementById('state').textContent !== 'loading'")
                state = page.inner_text("#state")
                if allowed:
                    assert state == "posted 200", state
                    assert page.locator("#recs li").count() == 3
                    views = _wait_for(lambda st=store: [e for e in st.fetch_events()
                                                        if e.type == "view"])
                    assert [(v.product_id, v.status) for v in views] == [("0001", "ok")]
                    # the visitor is the one of the cookie the first answer set
                    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
                    assert views[0].visitor == cookies["pf_visitor"]
                else:
                    assert state.startswith("refused: TypeError"), state
                    assert page.locator("#recs li").count() == 0
                browser.close()
                assert not errors, errors
            finally:
                store.close()
                stop_server(server)


@pytest.mark.slow
@pytest.mark.parametrize("api_host", ["127.0.0.1", "localhost"], ids=["same-site", "other-site"])
def test_the_widget_shows_the_lists_in_a_shop_page_and_logs_views_and_clicks(tmp_path,
                                                                             api_host):
    """``/static/widget.js`` on the shop's own product page (another origin): the list with
    photos, the shop's links, a view when it is on screen and a click with its rank and
    signature, attributed as on the service's page; the next page keeps the visitor — also
    from another site (``localhost`` against the shop's ``127.0.0.1``), whose cookie the
    browser does not send: the widget keeps the visitor in the page's localStorage."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    model = make_model(tmp_path)
    site = tmp_path / "shop"
    (site / "p").mkdir(parents=True)
    db = tmp_path / "events.sqlite3"
    port = free_port()
    api = f"http://{api_host}:{port}"
    store = open_event_store(db)
    with _static_site(site) as shop_port:
        shop = f"http://127.0.0.1:{shop_port}"
        server = start_server(model, port, tmp_path / "server.log", "--events", str(db),
                              "--cors-origin", shop)
        for pid in (f"{i:04d}" for i in range(40)):  # the shop's page of every product
            (site / "p" / f"{pid}.html").write_text(
                f"<!doctype html><html><body><h1>Shop page {pid}</h1>"
                f'<div id="recs" data-prodfusion-similar="{pid}" data-k="5" '
                f'data-link="/p/{{product_id}}.html" data-heading="You may also like"></div>'
                f'<script src="{api}/static/widget.js" defer></script></body></html>')
        try:
            with sync_playwright() as p:
                browser, page, errors = _open(p)
                page.goto(shop + "/p/0001.html")
                page.wait_for_selector("#recs a.pf-card")
                cards = page.locator("#recs a.pf-card")
                assert cards.count() == 5
                assert page.inner_text("#recs h3") == "You may also like"
                page.wait_for_function(
                    "[...document.querySelectorAll('#recs img')].every(i => i.naturalWidth > 0)")
                first = [cards.nth(i).get_attribute("data-product-id") for i in range(5)]
                assert set(first) <= {f"{i:04d}" for i in range(5, 40, 4)}  # planted: Shoes
                views = _wait_for(lambda: [e for e in store.fetch_events() if e.type == "view"])
                assert [(v.product_id, v.status) for v in views] == [("0001", "ok")]
                target = first[1]
                cards.nth(1).click()  # the shop's own page of that product
                page.wait_for_url(f"{shop}/p/{target}.html")
                clicks = _wait_for(lambda: [e for e in store.fetch_events()
                                            if e.type == "click"])
                assert [(c.product_id, c.target_id, c.rank, c.status) for c in clicks] == [
                    ("0001", target, 2, "ok")]
                assert clicks[0].request_id == views[0].request_id
                # the next shop page shows its own list, for the same visitor (kept in the
                # page's localStorage and sent along)
                page.wait_for_selector("#recs a.pf-card")
                later = _wait_for(lambda: [e for e in store.fetch_events()
                                           if e.type == "view" and e.product_id == target])
                assert [(v.visitor, v.status) for v in later] == [(views[0].visitor, "ok")]
                browser.close()
            assert not errors, errors
        finally:
            store.close()
            stop_server(server)
