// prodfusion widget: the recommendations of one product inside a shop's own page, with the
// view and click events an A/B report counts. On the shop's product page:
//
//   <div data-prodfusion-similar="0111565001" data-k="8" data-link="/p/{product_id}"
//        data-heading="Similar products"></div>
//   <script src="https://recs.shop.example/static/widget.js" defer></script>
//
// (the service started with --cors-origin https://www.shop.example). Optional attributes:
// data-k (default 8), data-profile (a weighting profile of the model), data-link (the
// shop's URL of a product, {product_id} substituted; default: the service's own page),
// data-heading. The visitor id the service assigns is kept in the page's localStorage and
// sent along, so a visitor stays in one variant also where the service's cookie is not sent
// (a service on another site). Events go out as text/plain beacons: no preflight, and a
// click's event leaves even as the browser follows the link. No framework, nothing else
// loaded. Class names (pf-widget, pf-card, …) are the shop's to style.
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || !script.src) return;
  const API = new URL("../", script.src).href;  // the service's root (…/static/widget.js)
  const KEY = "pf_visitor";

  const newId = () => (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : Date.now().toString(16) + Math.random().toString(16).slice(2);
  const stored = () => { try { return localStorage.getItem(KEY); } catch (e) { return null; } };
  const keep = (v) => { try { localStorage.setItem(KEY, v); } catch (e) { /* private mode */ } };

  function send(events) {
    const body = JSON.stringify({ events });
    const url = API + "v1/events";
    if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([body], { type: "text/plain" }))) return;
    fetch(url, { method: "POST", body, keepalive: true, credentials: "include",
      headers: { "Content-Type": "text/plain" } }).catch(() => {});
  }

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const kid of kids) e.append(kid);
    return e;
  }

  function render(box, data) {
    const pid = data.product.product_id;
    const link = box.dataset.link;
    const href = (id) => link ? link.split("{product_id}").join(encodeURIComponent(id))
      : API + "#p=" + encodeURIComponent(id);
    const list = el("ul", { class: "pf-list", style: "list-style:none;margin:0;padding:0;display:grid;gap:12px;grid-template-columns:repeat(auto-fill,minmax(140px,1fr))" });
    data.items.forEach((p, i) => {
      const a = el("a", { class: "pf-card", href: href(p.product_id), "data-product-id": p.product_id,
        "data-rank": String(p.rank), style: "display:block;color:inherit;text-decoration:none" });
      if (p.image_url) {
        a.append(el("img", { class: "pf-img", src: new URL(p.image_url, API).href, alt: p.title || p.product_id,
          loading: "lazy", style: "width:100%;aspect-ratio:3/4;object-fit:cover" }));
      }
      a.append(el("span", { class: "pf-title", dir: "auto", style: "display:block" }, p.title || p.product_id));
      a.addEventListener("click", () => send([{ event_id: newId(), type: "click",
        request_id: data.request_id, product_id: pid, visitor: data.visitor,
        target_id: p.product_id, rank: p.rank, target_sig: data.target_sigs[i],
        ts: new Date().toISOString() }]));
      list.append(el("li", { class: "pf-item" }, a));
    });
    box.replaceChildren(...(box.dataset.heading ? [el("h3", { class: "pf-heading" }, box.dataset.heading)] : []), list);
    box.classList.add("pf-widget");
    const view = () => send([{ event_id: newId(), type: "view", request_id: data.request_id,
      product_id: pid, visitor: data.visitor, ts: new Date().toISOString() }]);
    if (!("IntersectionObserver" in window)) { view(); return; }
    const seen = new IntersectionObserver((entries) => {  // a view: the list half on screen
      if (entries.some((e) => e.isIntersecting)) { seen.disconnect(); view(); }
    }, { threshold: 0.5 });
    seen.observe(box);
  }

  async function fill(box) {
    const pid = box.dataset.prodfusionSimilar;
    if (!pid) return;
    const q = new URLSearchParams({ k: box.dataset.k || "8" });
    if (box.dataset.profile) q.set("profile", box.dataset.profile);
    const visitor = stored();
    if (visitor) q.set("visitor", visitor);
    try {
      const r = await fetch(API + "v1/similar/" + encodeURIComponent(pid) + "?" + q,
        { credentials: "include", headers: { Accept: "application/json" } });
      if (!r.ok) { console.warn("prodfusion:", r.status, await r.text()); return; }
      const data = await r.json();
      keep(data.visitor);
      if (data.items.length) render(box, data);
    } catch (e) {
      console.warn("prodfusion: the recommendations could not be loaded", e);
    }
  }

  const start = () => document.querySelectorAll("[data-prodfusion-similar]").forEach(fill);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
