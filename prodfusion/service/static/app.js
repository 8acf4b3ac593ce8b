// prodfusion web page: browse/search products, show one product and its recommendations,
// log view / click / jump events. No framework, no CDN: works offline.
"use strict";

const $ = (id) => document.getElementById(id);
// current: the similar-products answer shown; also: the second row's (page_profile), or null
const state = { current: null, also: null, pending: [], flushing: null };
const PAGE_PROFILE = document.body.dataset.pageProfile || "";

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------- events
// Events wait in a queue until the server acknowledged them (HTTP 200). A 503 or a network
// error keeps them queued and retries with the same event ids: the server stores each id once.
// `list`: the answer the event belongs to (default: the similar products); each row has its own
// request id, so a click counts against the list it was shown in.
function logEvent(type, extra, list) {
  const cur = list || state.current;
  if (!cur) return Promise.resolve();
  state.pending.push(Object.assign({
    event_id: newId(), type, request_id: cur.request_id, product_id: cur.product.product_id,
    visitor: cur.visitor, ts: new Date().toISOString(),
  }, extra || {}));
  return flush();
}

async function flush() {
  if (state.flushing) return state.flushing;
  state.flushing = (async () => {
    let delay = 250;
    while (state.pending.length) {
      const batch = state.pending.slice(0, 100);
      let ok = false;
      try {
        const r = await fetch("v1/events", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ events: batch }), keepalive: true,
        });
        ok = r.ok;
        if (!ok && r.status !== 503) {  // a 4xx will not get better by retrying
          console.error("events refused", r.status, await r.text());
          state.pending.splice(0, batch.length);
          continue;
        }
      } catch (e) { ok = false; }
      if (ok) { state.pending.splice(0, batch.length); delay = 250; }
      else { showQueue(); await new Promise((res) => setTimeout(res, delay)); delay = Math.min(delay * 2, 8000); }
    }
    showQueue();
  })();
  try { await state.flushing; } finally { state.flushing = null; }
}

function showQueue() {
  $("queue-state").textContent = state.pending.length
    ? `${state.pending.length} event(s) waiting to be sent…` : "";
}

window.addEventListener("pagehide", () => {
  if (state.pending.length && navigator.sendBeacon) {
    navigator.sendBeacon("v1/events", new Blob([JSON.stringify({ events: state.pending })],
      { type: "application/json" }));
  }
});

// ---------------------------------------------------------------- rendering
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function imageBox(p) {
  const box = el("div", { class: "img" });
  if (p.image_url) {
    const img = el("img", { src: p.image_url, alt: p.title || p.product_id, loading: "lazy" });
    img.onerror = () => { box.textContent = "no photo"; };
    box.append(img);
  } else {
    box.textContent = "no photo";
  }
  return box;
}

function card(p, extra) {
  const a = el("a", { class: "card", href: "#p=" + encodeURIComponent(p.product_id),
    "data-product-id": p.product_id });
  const meta = el("div", { class: "meta" });
  if (extra && extra.rank) {
    // a null score: the model's backfill added it (among the most clicked, not ranked by similarity);
    // below -500: the zero-weight fallback ranked it (it shares no weighted modality with the query)
    const shown = extra.score === null ? "popular"
      : extra.score < -500 ? "last resort" : "score " + extra.score.toFixed(3);
    meta.append(el("span", {}, "#" + extra.rank), el("span", { class: "score" }, shown));
    a.setAttribute("data-rank", String(extra.rank));
  } else {
    meta.append(el("span", {}, p.category || ""), el("span", {}, p.product_id));
  }
  a.append(imageBox(p), el("div", { class: "body" }, el("div", { class: "title", dir: "auto", title: p.title || p.product_id }, p.title || p.product_id), meta));
  if (extra && extra.explain) a.append(whyBars(extra.explain));
  return a;
}

// One small bar per modality: its share of the fused score (explain=true).
function whyBars(ex) {
  const box = el("div", { class: "why" });
  const mods = Object.entries(ex.modalities);
  const total = mods.reduce((t, [, v]) => t + Math.abs(v.share), 0) || 1;
  for (const [m, v] of mods) {
    const pct = Math.round((100 * Math.abs(v.share)) / total);
    const what = { cooc: "co-occurrence share", category: "same category (1/0)" }[m] || "cosine";
    const tip = v.raw === null ? `${m}: one of the two products has none`
      : `${m}: ${what} ${v.raw.toFixed(3)}, calibrated ${v.calibrated.toFixed(3)}, weight ${v.weight.toFixed(2)}, share ${v.share.toFixed(3)}`;
    const bar = el("span", { class: "bar" + (v.share < 0 ? " neg" : "") });
    bar.style.width = pct + "%";
    box.append(el("div", { class: "why-row", title: tip }, el("span", { class: "why-m" }, m),
      el("span", { class: "why-track" }, bar), el("span", { class: "why-v" }, v.raw === null ? "–" : v.share.toFixed(2))));
  }
  return box;
}

function message(text) {
  const m = $("message");
  m.textContent = text || "";
  m.hidden = !text;
}

function setVariant(v, exp) {
  $("variant").textContent = `variant: ${v}`;
  $("variant").title = `A/B experiment “${exp || ""}”: you see the recommendations of variant “${v}”`;
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : r.statusText);
  return body;
}

async function showBrowse(q) {
  $("product").hidden = true;
  $("browse").hidden = false;
  state.current = null;
  state.also = null;
  message("");
  const data = await getJSON(`v1/products?limit=24&q=${encodeURIComponent(q || "")}`);
  setVariant(data.variant);
  $("browse-title").textContent = q ? `${data.total} product(s) matching “${q}”` : "Pick a product";
  const grid = $("browse-grid");
  grid.replaceChildren(...data.items.map((p) => card(p)));
  if (!data.items.length) message("Nothing found. Try another word.");
}

async function showProduct(pid) {
  message("");
  let data;
  try {
    data = await getJSON(`v1/similar/${encodeURIComponent(pid)}?k=15&explain=true`);
  } catch (e) {
    $("product").hidden = true;
    $("browse").hidden = true;
    message(`Cannot show product ${pid}: ${e.message}`);
    return;
  }
  state.current = data;
  state.also = null;
  $("also-box").hidden = true;
  setVariant(data.variant, data.experiment);
  const p = data.product;
  $("browse").hidden = true;
  $("product").hidden = false;
  const img = $("p-img");
  if (p.image_url) { img.src = p.image_url; img.alt = p.title || p.product_id; img.hidden = false; }
  else { img.removeAttribute("src"); img.hidden = true; }
  $("p-title").textContent = p.title || p.product_id;
  $("p-title").title = p.title || p.product_id;  // whole, where the page cuts it
  $("p-cat").textContent = p.category || "";
  $("p-id").textContent = p.product_id;
  $("p-meta").textContent = `${data.fusion} fusion of ${data.modalities.join(" + ")}`;
  document.title = `${p.title || p.product_id} – prodfusion`;
  const recs = $("recs");
  recs.replaceChildren(...data.items.map((it) => card(it, it)));
  if (!data.items.length) message("No recommendations for this product (it shares no modality with any other).");
  window.scrollTo(0, 0);
  logEvent("view");
  if (PAGE_PROFILE) showAlso(pid, data);
}

// The second row: the same product ranked by the weighting profile the service names
// (page_profile, e.g. what visitors click next), with its own request id and view event.
async function showAlso(pid, main) {
  let data;
  try {
    data = await getJSON(`v1/similar/${encodeURIComponent(pid)}?k=15&explain=true&profile=${encodeURIComponent(PAGE_PROFILE)}`);
  } catch (e) {
    console.warn("second row not shown:", e.message);
    return;
  }
  if (state.current !== main) return;  // the visitor moved on meanwhile
  state.also = data;
  $("also").replaceChildren(...data.items.map((it) => card(it, it)));
  $("also-box").hidden = !data.items.length;
  if (data.items.length) logEvent("view", null, data);
}

// ---------------------------------------------------------------- navigation
function route() {
  const h = location.hash.replace(/^#/, "");
  const params = new URLSearchParams(h);
  if (params.get("p")) return showProduct(params.get("p"));
  return showBrowse(params.get("q") || "");
}

document.addEventListener("click", async (ev) => {
  const a = ev.target.closest("#recs a.card, #also a.card");
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey) return;
  ev.preventDefault();
  const target = a.getAttribute("data-product-id");
  const rank = parseInt(a.getAttribute("data-rank"), 10);
  const list = a.closest("#also") ? state.also : state.current;  // the row it was shown in
  // Wait (briefly) for the click to be acknowledged before leaving the list it came from.
  const sigs = (list && list.target_sigs) || [];
  const extra = { target_id: target, rank };
  if (sigs[rank - 1]) extra.target_sig = sigs[rank - 1];  // proves the target was in the list
  await Promise.race([logEvent("click", extra, list),
                      new Promise((res) => setTimeout(res, 1500))]);
  location.hash = "p=" + encodeURIComponent(target);
});

$("shop").addEventListener("click", async () => {
  const cur = state.current;
  if (!cur) return;
  await Promise.race([logEvent("jump"), new Promise((res) => setTimeout(res, 1500))]);
  if (cur.shop_url) window.location.href = cur.shop_url;
  else message("Jump to the shop logged (no shop_url configured for this service).");
});

$("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  location.hash = "q=" + encodeURIComponent($("q").value.trim());
});
$("home").addEventListener("click", (ev) => { ev.preventDefault(); location.hash = ""; route(); });

window.addEventListener("hashchange", route);
route().catch((e) => message(String(e.message || e)));
