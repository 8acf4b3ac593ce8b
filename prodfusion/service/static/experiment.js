// prodfusion experiment page: CTR and jump rate per variant and category with confidence
// intervals, the daily trend, the sample-ratio verdict and the excluded (quarantined) events.
// Reads /v1/experiments/{name}/report. No framework, no CDN: works offline.
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = ["#0b6e4f", "#c4452c", "#2f5fb3", "#b8860b", "#7b3fa0", "#2a8f9a"];
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) if (c != null) e.append(c);
  return e;
}

const pct = (x, d = 2) => (x == null ? "–" : (100 * x).toFixed(d) + "%");
const ci = (c) => (!c || c[0] == null ? "–" : `[${(100 * c[0]).toFixed(2)}, ${(100 * c[1]).toFixed(2)}]`);

function lift(c, alpha) {
  if (c === null) return el("span", { class: "muted" }, "control");
  if (!c || c.rel_lift == null) return el("span", { class: "muted" }, "–");
  const sig = c.p_value != null && c.p_value < alpha;
  const s = `${c.rel_lift >= 0 ? "+" : ""}${(100 * c.rel_lift).toFixed(1)}%  p=${c.p_value.toPrecision(3)}`;
  return el("span", { class: "lift" + (sig ? " sig" : ""), title: sig ? "significant" : "not significant" }, s);
}

// One interval bar: the interval as a band, the estimate as a tick, on a shared 0..max scale.
function bar(rate, interval, max, color) {
  const t = el("div", { class: "track" });
  if (rate == null || !interval || interval[0] == null || max <= 0) return t;
  const x = (v) => Math.max(0, Math.min(100, (100 * v) / max));
  t.append(el("div", { class: "ci", style: `left:${x(interval[0])}%;width:${Math.max(0.5, x(interval[1]) - x(interval[0]))}%;background:${color}` }),
           el("div", { class: "pt", style: `left:${x(rate)}%;background:${color}` }));
  t.title = `${pct(rate)} ${ci(interval)}`;
  return t;
}

function ratesTable(rows, colors, alpha, idPrefix) {
  const maxCtr = Math.max(1e-9, ...rows.map((r) => (r.ctr_ci && r.ctr_ci[1]) || 0));
  const maxJr = Math.max(1e-9, ...rows.map((r) => (r.jr_ci && r.jr_ci[1]) || 0));
  const head = el("tr", {}, ...["variant", "views", "clicks", "jumps", "CTR", "CTR 95% CI", "", "CTR lift",
    "JR", "JR 95% CI", "", "JR lift"].map((h) => el("th", {}, h)));
  const body = rows.map((r) => el("tr", { "data-variant": r.variant, id: `${idPrefix}-${r.variant}` },
    el("td", {}, el("span", { class: "swatch", style: `background:${colors[r.variant]}` }), r.variant),
    el("td", { class: "num views" }, String(r.views)), el("td", { class: "num clicks" }, String(r.clicks)),
    el("td", { class: "num jumps" }, String(r.jumps)),
    el("td", { class: "num ctr" }, pct(r.ctr)), el("td", { class: "num" }, ci(r.ctr_ci)),
    el("td", { class: "bar ctr-bar" }, bar(r.ctr, r.ctr_ci, maxCtr, colors[r.variant])),
    el("td", {}, lift(r.ctr_vs_control, alpha)),
    el("td", { class: "num jr" }, pct(r.jr)), el("td", { class: "num" }, ci(r.jr_ci)),
    el("td", { class: "bar jr-bar" }, bar(r.jr, r.jr_ci, maxJr, colors[r.variant])),
    el("td", {}, lift(r.jr_vs_control, alpha))));
  return el("table", { class: "rates" }, el("thead", {}, head), el("tbody", {}, ...body));
}

function trend(daily, names, colors) {
  if (!daily.length) return el("p", { class: "muted" }, "No impressions yet.");
  const days = [...new Set(daily.map((d) => d.date))].sort();
  const W = 900, H = 260, L = 50, R = 110, T = 14, B = 34;
  const maxY = Math.max(1e-9, ...daily.map((d) => d.ctr || 0)) * 1.15;
  const x = (i) => L + (days.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (days.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / maxY);
  const g = svg("svg", { class: "trend", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "daily CTR per variant" });
  for (let k = 0; k <= 4; k++) {
    const v = (maxY * k) / 4;
    g.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e3e3e0" }),
             svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, (100 * v).toFixed(1) + "%"));
  }
  const step = Math.max(1, Math.ceil(days.length / 8));
  days.forEach((d, i) => { if (i % step === 0) g.append(svg("text", { x: x(i), y: H - 12, "text-anchor": "middle" }, d)); });
  names.forEach((n, vi) => {
    const pts = days.map((d, i) => [i, daily.find((r) => r.date === d && r.variant === n)])
      .filter(([, r]) => r && r.ctr != null);
    if (!pts.length) return;
    const line = svg("polyline", { fill: "none", stroke: colors[n], "stroke-width": 2,
      points: pts.map(([i, r]) => `${x(i)},${y(r.ctr)}`).join(" "), "data-variant": n });
    g.append(line);
    for (const [i, r] of pts) {
      const c = svg("circle", { cx: x(i), cy: y(r.ctr), r: 3.5, fill: colors[n], class: "day-point", "data-variant": n, "data-date": r.date });
      c.append(svg("title", {}, `${n} ${r.date}: CTR ${pct(r.ctr)} (${r.clicks}/${r.views})`));
      g.append(c);
    }
    g.append(svg("rect", { x: W - R + 12, y: T + 18 * vi, width: 10, height: 10, fill: colors[n] }),
             svg("text", { x: W - R + 27, y: T + 18 * vi + 9 }, n));
  });
  return g;
}

function render(rep) {
  const names = rep.variants.map((v) => v.variant);
  const colors = Object.fromEntries(names.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
  const alpha = rep.alpha;
  document.title = `${rep.experiment} – prodfusion experiment`;
  $("exp-name").textContent = rep.experiment;
  $("ci-note").textContent = `(${Math.round(100 * (1 - alpha))}% Wilson intervals; lift and two-proportion z-test against the control “${rep.control}”)`;

  const srm = rep.srm;
  const s = $("srm");
  if (!srm) {
    s.className = "verdict"; s.replaceChildren(el("b", {}, "Sample ratio: –"), "single variant: nothing to compare");
  } else if (srm.chi2 == null) {
    s.className = "verdict warn";
    s.replaceChildren(el("b", { id: "srm-verdict" }, "Sample ratio: no data yet"),
      "no viewing visitors in two or more variants since the current allocation took effect");
  } else {
    const obs = Object.entries(srm.observed).map(([k, v]) => `${k} ${v}`).join(", ");
    const exp = Object.entries(srm.expected_share).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join(", ");
    s.className = "verdict " + (srm.flagged ? "bad" : "ok");
    s.replaceChildren(el("b", { id: "srm-verdict" }, srm.flagged ? "Sample ratio MISMATCH: do not trust the comparison" : "Sample ratio: ok"),
      `visitors ${obs}; expected ${exp}; χ²=${srm.chi2 == null ? "–" : srm.chi2.toFixed(3)}, p=${srm.p_value == null ? "–" : srm.p_value.toPrecision(3)}`);
  }
  const ex = rep.excluded || { total: 0, by_reason: {} };
  const e = $("excluded");
  e.className = "verdict " + (ex.total ? "warn" : "ok");
  const why = Object.entries(ex.by_reason).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");
  e.replaceChildren(...[el("b", { id: "excluded-total" }, `Excluded events: ${ex.total}`),
    ex.total ? `quarantined, not in any rate — ${why}` : "every stored event verified",
    rep.repeated_views ? el("div", { class: "small muted" }, `${rep.repeated_views} repeated view(s) counted once`) : null,
    rep.without_view ? el("div", { class: "small muted" }, `${rep.without_view} list(s) with clicks but no view (not counted)`) : null,
  ].filter((c) => c != null));
  const a = rep.allocation;
  $("meta").textContent = a ? `allocation version ${a.version}, shares ${Object.entries(a.shares).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join(", ")}` : "";
  $("variants").replaceChildren(ratesTable(rep.variants, colors, alpha, "v"));
  $("daily").replaceChildren(trend(rep.daily || [], names, colors));
  $("categories").replaceChildren(...rep.categories.map((c) => el("div", { class: "cat", "data-category": c.category },
    el("h3", {}, c.category), ratesTable(c.variants, colors, alpha, "c-" + c.category.replace(/\W+/g, "_")))));
  if (!rep.categories.length) $("categories").append(el("p", { class: "muted" }, "No categories."));
  $("defs").textContent = Object.entries(rep.definitions).map(([k, v]) => `${k}: ${v}`).join("; ");
  $("json-link").href = `v1/experiments/${encodeURIComponent(rep.experiment)}/report`;
  $("report").hidden = false;
}

async function load() {
  // the path under the page's <base> (the service's root, behind a proxy its prefix)
  const rel = location.pathname.slice(new URL(document.baseURI).pathname.length);
  const name = decodeURIComponent(rel.replace(/^experiments\//, "").replace(/\/$/, ""));
  $("exp-name").textContent = name;
  try {
    const r = await fetch(`v1/experiments/${encodeURIComponent(name)}/report`, { headers: { Accept: "application/json" } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(typeof body.detail === "string" ? body.detail : r.statusText);
    render(body);
  } catch (err) {
    const m = $("message");
    m.textContent = `Cannot show experiment “${name}”: ${err.message}`;
    m.hidden = false;
  }
}

load();
