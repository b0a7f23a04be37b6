// Switchyard console: one page per view, fed by /console/api/ and its event stream.
// Charts are SVG drawn here; nothing is loaded from anywhere else.
'use strict';

const PALETTE = ['#2b7a4b', '#c77d1a', '#3b5ba5', '#a33b5b', '#6b4fa5', '#2a8a8a', '#8a6d2a', '#5b6b7b'];
const GREY = '#8a8f98';
const S = {
  session: null,
  page: null,
  ticks: 0,
  colours: new Map(),
  scope: '*',
  routingTenant: '*',
  requestsTenant: '*',
  selected: null,
  generation: null,
};

// === helpers ===

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'style') {
      // Through the CSSOM: the page's CSP allows no style attributes.
      for (const decl of String(v).split(';')) {
        const i = decl.indexOf(':');
        if (i > 0) el.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
      }
    }
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function colour(name) {
  if (!S.colours.has(name)) S.colours.set(name, PALETTE[S.colours.size % PALETTE.length]);
  return S.colours.get(name);
}

function usd(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a === 0) return '$0';
  if (a < 1) return '$' + v.toFixed(Math.min(10, 2 - Math.floor(Math.log10(a))));
  return '$' + v.toFixed(2);
}
function pct(v) { return v === null || v === undefined ? '–' : (v * 100).toFixed(1) + '%'; }
function ms(v) { return v === null || v === undefined ? '–' : (v < 10 ? v.toFixed(2) : v.toFixed(0)) + ' ms'; }
function num(v, d = 0) { return v === null || v === undefined ? '–' : Number(v).toFixed(d); }
function short(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  if (a >= 10 || a === 0) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  if (a >= 0.01) return v.toFixed(2);
  return v.toExponential(0);
}
function clock(sec) {
  const d = new Date(sec * 1000);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}
function when(msSinceEpoch) {
  if (!msSinceEpoch) return '–';
  return new Date(msSinceEpoch).toLocaleString([], { hour12: false });
}
function ago(msSinceEpoch) {
  if (!msSinceEpoch) return '–';
  const s = Math.max(0, (Date.now() - msSinceEpoch) / 1000);
  if (s < 60) return s.toFixed(0) + ' s ago';
  if (s < 3600) return (s / 60).toFixed(0) + ' min ago';
  return (s / 3600).toFixed(1) + ' h ago';
}

async function api(path, opts = {}) {
  const r = await fetch('/console/api/' + path, { credentials: 'same-origin', ...opts });
  if (r.status === 401) {
    location.href = '/console';
    throw new Error('the session has ended');
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || ('HTTP ' + r.status));
  return body;
}

function post(path, body, type = 'application/json') {
  return api(path, {
    method: 'POST',
    headers: { 'content-type': type, 'x-csrf-token': S.session.csrf },
    body: type === 'application/json' ? JSON.stringify(body || {}) : body,
  });
}

function card(title, ...children) {
  return h('section', { class: 'card grow' }, title ? h('h2', {}, title) : null, ...children);
}

function kpi(id, label, value, sub) {
  return h('div', { class: 'card kpi', id },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value),
    h('div', { class: 'sub' }, sub || ''));
}

function table(headers, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map(c => h('th', { class: c.startsWith('#') ? 'num' : null }, c.replace(/^#/, ''))))),
    h('tbody', {}, rows));
}

function badge(text, kind) { return h('span', { class: 'badge ' + (kind || '') }, text); }

function errorBox(e) { return h('div', { class: 'error-box', role: 'alert' }, String(e.message || e)); }

// === charts (inline SVG) ===

const CW = 560, CH = 200, PL = 46, PR = 10, PT = 24, PB = 24;

function axes(root, t, ymax, yFormat) {
  const px = i => PL + (t.length <= 1 ? 0 : i / (t.length - 1)) * (CW - PL - PR);
  const py = v => PT + (1 - v / ymax) * (CH - PT - PB);
  for (let k = 0; k <= 4; k++) {
    const v = ymax * k / 4;
    root.append(svg('line', { class: 'grid', x1: PL, x2: CW - PR, y1: py(v), y2: py(v) }));
    root.append(svg('text', { x: PL - 4, y: py(v) + 4, 'text-anchor': 'end' }, yFormat(v)));
  }
  const labels = Math.min(5, t.length);
  for (let k = 0; k < labels; k++) {
    const i = Math.round(k * (t.length - 1) / Math.max(1, labels - 1));
    root.append(svg('text', { x: px(i), y: CH - 6, 'text-anchor': k === 0 ? 'start' : k === labels - 1 ? 'end' : 'middle' }, clock(t[i])));
  }
  return { px, py };
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const m = Math.pow(10, Math.floor(Math.log10(v)));
  for (const s of [1, 2, 2.5, 5, 10]) if (s * m >= v) return s * m;
  return 10 * m;
}

// series: [{name, values (numbers or null), colour}]
// An empty chart says so; `zeroIsEmpty`: all zeros counts as empty too (counts, not ratios,
// whose axis ends at 100%).
function lineChart(id, title, t, series, yFormat = short, zeroIsEmpty = true) {
  const values = series.flatMap(s => s.values.filter(v => v !== null && v !== undefined));
  const sum = values.reduce((a, b) => a + b, 0);
  const root = svg('svg', { class: 'chart', id, viewBox: `0 0 ${CW} ${CH}`, role: 'img', 'aria-label': title,
    'data-points': values.length, 'data-sum': sum.toPrecision(6), 'data-series': series.length });
  root.append(svg('text', { class: 'title', x: PL, y: 14 }, title));
  const ymax = zeroIsEmpty ? niceMax(Math.max(0, ...values) * 1.1) : Math.max(1, niceMax(Math.max(0, ...values)));
  const { px, py } = axes(root, t, ymax, yFormat);
  for (const s of series) {
    let d = '';
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      d += (d === '' || s.values[i - 1] === null || s.values[i - 1] === undefined ? 'M' : 'L') + px(i).toFixed(1) + ',' + py(v).toFixed(1);
    });
    if (d) root.append(svg('path', { class: 'series', d, fill: 'none', stroke: s.colour, 'stroke-width': 2, 'data-name': s.name }));
    // Points too, so a lone one (one busy interval) shows.
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const lone = (s.values[i - 1] === null || s.values[i - 1] === undefined) && (s.values[i + 1] === null || s.values[i + 1] === undefined);
      if (lone || s.values.length <= 30) root.append(svg('circle', { cx: px(i).toFixed(1), cy: py(v).toFixed(1), r: lone ? 3 : 2, fill: s.colour }));
    });
  }
  if (values.length === 0 || (zeroIsEmpty && sum === 0)) {
    root.append(svg('text', { class: 'empty', x: CW / 2, y: CH / 2, 'text-anchor': 'middle' }, 'nothing in this window yet'));
  }
  const legend = h('div', { class: 'legend' }, series.map(s => h('span', { style: '--c:' + s.colour }, s.name)));
  return h('div', {}, root, series.length > 1 ? legend : null);
}

// series: [{name, values, colour}] stacked per point.
function stackedChart(id, title, t, series) {
  const totals = t.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
  const sum = totals.reduce((a, b) => a + b, 0);
  const root = svg('svg', { class: 'chart', id, viewBox: `0 0 ${CW} ${CH}`, role: 'img', 'aria-label': title,
    'data-sum': sum, 'data-series': series.length });
  root.append(svg('text', { class: 'title', x: PL, y: 14 }, title));
  const ymax = niceMax(Math.max(0, ...totals) * 1.1);
  const { px, py } = axes(root, t, ymax, short);
  const bw = Math.max(1, (CW - PL - PR) / Math.max(1, t.length) - 1);
  t.forEach((_, i) => {
    let base = 0;
    for (const s of series) {
      const v = s.values[i] || 0;
      if (v > 0) {
        root.append(svg('rect', { class: 'bar', x: (px(i) - bw / 2).toFixed(1), y: py(base + v).toFixed(1), width: bw.toFixed(1),
          height: Math.max(0.5, py(base) - py(base + v)).toFixed(1), fill: s.colour, 'data-name': s.name },
          svg('title', {}, `${clock(t[i])} ${s.name}: ${v}`)));
      }
      base += v;
    }
  });
  if (sum === 0) root.append(svg('text', { class: 'empty', x: CW / 2, y: CH / 2, 'text-anchor': 'middle' }, 'nothing in this window yet'));
  return h('div', {}, root, h('div', { class: 'legend' }, series.map(s => h('span', { style: '--c:' + s.colour }, s.name))));
}

// bars: [{label, value, text, colour}]
function barChart(id, title, bars) {
  const W = 620, row = 26, left = 200;
  const H = 30 + bars.length * row;
  const max = Math.max(1e-12, ...bars.map(b => b.value));
  const root = svg('svg', { class: 'chart', id, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title,
    'data-sum': bars.reduce((a, b) => a + b.value, 0).toPrecision(6), 'data-bars': bars.length });
  root.append(svg('text', { class: 'title', x: 4, y: 14 }, title));
  bars.forEach((b, i) => {
    const y = 24 + i * row;
    const w = Math.max(1, b.value / max * (W - left - 130));
    root.append(svg('text', { x: left - 6, y: y + 15, 'text-anchor': 'end' }, b.label));
    root.append(svg('rect', { x: left, y, width: w.toFixed(1), height: row - 6, fill: b.colour, 'data-name': b.label }));
    root.append(svg('text', { x: left + w + 6, y: y + 15 }, b.text));
  });
  return root;
}

// One stacked bar of shares per row: rows [{label, shares: [[name, share]]}]
function shareChart(id, title, rows) {
  const W = 620, row = 30, left = 200;
  const H = 30 + rows.length * row + 22;
  const root = svg('svg', { class: 'chart', id, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title, 'data-rows': rows.length });
  root.append(svg('text', { class: 'title', x: 4, y: 14 }, title));
  const names = new Set();
  rows.forEach((r, i) => {
    const y = 24 + i * row;
    root.append(svg('text', { x: left - 6, y: y + 16, 'text-anchor': 'end' }, r.label));
    let x = left;
    for (const [name, share] of r.shares) {
      names.add(name);
      const w = share * (W - left - 10);
      if (w > 0) {
        root.append(svg('rect', { x: x.toFixed(1), y, width: w.toFixed(1), height: row - 8, fill: colour(name), 'data-name': name },
          svg('title', {}, `${name} ${(share * 100).toFixed(0)}%`)));
        if (w > 40) root.append(svg('text', { class: 'on-bar', x: x + 4, y: y + 15 }, `${(share * 100).toFixed(0)}%`));
      }
      x += w;
    }
  });
  let lx = left;
  for (const name of names) {
    const y = 24 + rows.length * row + 4;
    root.append(svg('rect', { x: lx, y, width: 10, height: 10, fill: colour(name) }));
    root.append(svg('text', { x: lx + 14, y: y + 9 }, name));
    lx += 20 + name.length * 7;
  }
  return root;
}

// === the shell: navigation, the event stream ===

function setActive(page) {
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === page);
}

async function show() {
  const page = (location.hash || '#overview').slice(1);
  const view = PAGES[page] ? page : 'overview';
  S.page = view;
  S.selected = null;
  setActive(view);
  document.title = 'Switchyard console: ' + view;
  const root = document.getElementById('page');
  root.dataset.page = view;
  root.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  try {
    await PAGES[view].render(root);
    root.dataset.ready = 'true';
  } catch (e) {
    root.replaceChildren(errorBox(e));
  }
}

function connect() {
  const live = document.getElementById('live');
  const es = new EventSource('/console/api/events');
  es.addEventListener('open', () => { live.textContent = 'live'; live.className = 'live on'; });
  es.addEventListener('error', () => { live.textContent = 'reconnecting'; live.className = 'live off'; });
  es.addEventListener('tick', ev => {
    const data = JSON.parse(ev.data);
    S.ticks += 1;
    live.textContent = 'live';
    live.className = 'live on';
    live.dataset.ticks = S.ticks;
    const hl = data.headline || {};
    document.getElementById('headline').textContent =
      `${num(hl.rps, 1)} req/s · ${data.in_flight} in flight · errors ${pct(hl.error_rate_5m)} · ${usd(hl.spend_per_hour_usd)}/h`;
    const view = PAGES[S.page];
    // A page that redraws itself waits while one of its controls has the focus.
    const busy = view !== Requests && document.activeElement && ['SELECT', 'INPUT'].includes(document.activeElement.tagName);
    if (view && view.tick && !busy && document.getElementById('page').dataset.ready === 'true') {
      view.tick(data).catch(() => {});
    }
  });
}

// === Overview ===

const Overview = {
  async render(root) {
    const data = await api('overview');
    root.replaceChildren(this.build(data));
  },
  build(d) {
    const scopes = ['*', ...d.tenants];
    if (!scopes.includes(S.scope)) S.scope = '*';
    const s = d.summary[S.scope] || {};
    const ser = d.series[S.scope] || {};
    const select = h('select', { id: 'scope', onchange: e => { S.scope = e.target.value; Overview.render(document.getElementById('page')); } },
      scopes.map(t => h('option', { value: t, selected: t === S.scope }, t === '*' ? 'the whole gateway' : 'tenant ' + t)));
    const strong = s.strong_model ? 'all on ' + s.strong_model : 'all on each tenant\'s strongest model';
    const rows = d.tenants.map(t => {
      const x = d.summary[t] || {};
      return h('tr', {},
        h('td', {}, t), h('td', { class: 'num' }, num(x.rps, 2)), h('td', { class: 'num' }, pct(x.error_rate_5m)),
        h('td', { class: 'num' }, ms(x.added_p50_ms_5m)), h('td', { class: 'num' }, ms(x.added_p95_ms_5m)),
        h('td', { class: 'num' }, usd(x.spend_last_hour_usd)), h('td', { class: 'num' }, usd(x.savings_last_hour_usd)),
        h('td', { class: 'num' }, pct(x.savings_ratio_last_hour)), h('td', {}, x.strong_model || '–'));
    });
    return h('div', {},
      h('div', { class: 'toolbar' }, h('h1', {}, 'Overview'), h('label', { for: 'scope' }, 'for'), select,
        h('span', { class: 'muted small' }, `${d.in_flight} in flight · last 15 minutes, ${d.step} s points`)),
      h('div', { class: 'row' },
        kpi('kpi-rps', 'Requests per second', num(s.rps, 2), `last 10 s · ${s.requests_5m || 0} in 5 min`),
        kpi('kpi-errors', 'Error rate', pct(s.error_rate_5m), `5xx, last 5 min · ${s.refused_5m || 0} refused (4xx)`),
        kpi('kpi-latency', 'Added latency p50 / p95', ms(s.added_p50_ms_5m) + ' / ' + ms(s.added_p95_ms_5m), 'gateway time to first byte, last 5 min'),
        kpi('kpi-spend', 'Spend per hour', usd(s.spend_per_hour_usd), `at the last 5 min's rate · ${usd(s.spend_last_hour_usd)} in the last hour`),
        kpi('kpi-savings', 'Saved vs ' + strong, usd(s.savings_last_hour_usd),
          `last hour: ${pct(s.savings_ratio_last_hour)} of ${usd(s.baseline_last_hour_usd)} · cache hits saved ${usd(s.cache_saved_last_hour_usd)}`)),
      h('div', { class: 'row' },
        card(null, lineChart('chart-rps', 'Requests per second', d.t, [{ name: 'req/s', values: ser.rps || [], colour: PALETTE[0] }])),
        card(null, lineChart('chart-errors', 'Error rate (5xx)', d.t, [{ name: 'errors', values: ser.error_rate || [], colour: '#a33b3b' }], v => (v * 100).toFixed(0) + '%', false))),
      h('div', { class: 'row' },
        card(null, lineChart('chart-latency', 'Added latency (ms)', d.t, [
          { name: 'p50', values: ser.p50_ms || [], colour: PALETTE[2] },
          { name: 'p95', values: ser.p95_ms || [], colour: PALETTE[1] }])),
        card(null, lineChart('chart-spend', 'Spend per hour (USD), against the all-strong-model baseline', d.t, [
          { name: 'spend', values: ser.spend_per_hour_usd || [], colour: PALETTE[0] },
          { name: 'baseline: ' + strong, values: ser.baseline_per_hour_usd || [], colour: GREY }], v => '$' + short(v)))),
      card('Per tenant', table(['tenant', '#req/s', '#errors', '#added p50', '#added p95', '#spend, last hour', '#saved, last hour', '#saved', 'strongest model'], rows, { id: 'tenants-table' })),
      d.missed > 0 ? h('p', { class: 'note' }, `${d.missed} requests finished faster than the sampler read them and are not in these figures.`) : null);
  },
  async tick() {
    if (S.ticks % 2) return;
    const data = await api('overview');
    if (S.page === 'overview') document.getElementById('page').replaceChildren(this.build(data));
  },
};

// === Routing ===

const Routing = {
  async render(root) {
    const q = S.routingTenant === '*' ? '' : '?tenant=' + encodeURIComponent(S.routingTenant);
    const d = await api('routing' + q);
    root.replaceChildren(this.build(d));
  },
  build(d) {
    const models = Object.keys(d.mix);
    const select = h('select', { id: 'routing-tenant', onchange: e => { S.routingTenant = e.target.value; Routing.render(document.getElementById('page')); } },
      ['*', ...d.tenants].map(t => h('option', { value: t, selected: t === S.routingTenant }, t === '*' ? 'every tenant' : 'tenant ' + t)));
    const t = d.totals;
    const counts = (obj, label) => {
      const entries = Object.entries(obj || {}).sort((a, b) => b[1] - a[1]);
      return entries.length
        ? table([label, '#requests'], entries.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: 'num' }, v))))
        : h('p', { class: 'muted' }, 'none in the last 15 minutes');
    };
    return h('div', {},
      h('div', { class: 'toolbar' }, h('h1', {}, 'Routing'), h('label', { for: 'routing-tenant' }, 'for'), select,
        h('span', { class: 'muted small' }, `${t.requests} requests in the last 15 minutes`)),
      h('div', { class: 'row' },
        card(null, stackedChart('chart-mix', 'Model mix (requests per ' + d.step + ' s, by the model that served them)', d.t,
          models.map(m => ({ name: m, values: d.mix[m], colour: colour(m) })))),
        card(null, stackedChart('chart-fallbacks', 'Fallbacks (served by a later target)', d.t,
          [{ name: 'fallbacks', values: d.fallbacks, colour: PALETTE[1] }]))),
      h('div', { class: 'row' },
        card(null, lineChart('chart-prompt-cache', 'Provider prompt-cache hit ratio (cached input tokens)', d.t,
          [{ name: 'prompt cache', values: d.prompt_cache_ratio, colour: PALETTE[2] }], v => (v * 100).toFixed(0) + '%', false)),
        card(null, lineChart('chart-response-cache', 'Response-cache hit ratio (of look-ups)', d.t,
          [{ name: 'response cache', values: d.response_cache_ratio, colour: PALETTE[4] }], v => (v * 100).toFixed(0) + '%', false))),
      h('div', { class: 'row' },
        card('Models', counts(t.models, 'model')),
        card('Why the policy chose (its reason tag)', counts(t.reasons, 'reason')),
        card('Fallbacks and their reasons', h('p', { class: 'muted small' },
          `${t.fallbacks} requests fell back; failed attempts by class:`), counts(t.failures, 'failure')),
        card('Caches', table(['', '#'], [
          h('tr', {}, h('td', {}, 'prompt-cache hit ratio'), h('td', { class: 'num', id: 'prompt-cache-ratio' }, pct(t.prompt_cache_ratio))),
          h('tr', {}, h('td', {}, 'cached / input tokens'), h('td', { class: 'num' }, `${t.cached_prompt_tokens} / ${t.prompt_tokens}`)),
          h('tr', {}, h('td', {}, 'response-cache hit ratio'), h('td', { class: 'num', id: 'response-cache-ratio' }, pct(t.response_cache_ratio))),
          h('tr', {}, h('td', {}, 'hits / misses'), h('td', { class: 'num' }, `${t.cache_hits} / ${t.cache_misses}`))]))));
  },
  async tick() {
    if (S.ticks % 2) return;
    const q = S.routingTenant === '*' ? '' : '?tenant=' + encodeURIComponent(S.routingTenant);
    const d = await api('routing' + q);
    if (S.page === 'routing') document.getElementById('page').replaceChildren(this.build(d));
  },
};

// === Upstreams ===

const Upstreams = {
  async render(root) {
    root.replaceChildren(this.build(await api('upstreams')));
  },
  build(d) {
    const circuit = c => badge(c, c === 'closed' ? 'ok' : c === 'open' ? 'bad' : 'warn');
    const rows = d.upstreams.map(u => h('tr', { 'data-upstream': u.upstream, 'data-model': u.model },
      h('td', {}, u.model), h('td', {}, u.upstream), h('td', { class: 'circuit' }, circuit(u.circuit)),
      h('td', { class: 'num' }, ms(u.ttft_p50_ms)), h('td', { class: 'num' }, ms(u.ttft_p95_ms)),
      h('td', { class: 'num' }, pct(u.error_rate)), h('td', { class: 'num' }, u.samples), h('td', { class: 'num' }, u.in_flight),
      h('td', { class: 'num' }, u.attempts_15m), h('td', { class: 'num' }, u.failed_15m),
      h('td', {}, Object.entries(u.failures_15m).map(([k, v]) => h('span', { class: 'tag' }, `${k} ${v}`))),
      h('td', {}, u.remaining_requests === null ? '–' : `${u.remaining_requests} req / ${u.remaining_tokens ?? '–'} tok`)));
    const active = d.upstreams.filter(u => u.series.attempts);
    return h('div', {},
      h('div', { class: 'toolbar' }, h('h1', {}, 'Upstreams'),
        h('span', { class: 'muted small' }, 'circuit state now; time to first token and error rate over the host\'s recent window (what policies see); attempts over 15 minutes')),
      card(null, table(['model', 'upstream', 'circuit', '#TTFT p50', '#TTFT p95', '#error rate', '#samples', '#in flight', '#attempts, 15 min', '#failed', 'failures', 'rate-limit headroom'], rows, { id: 'upstreams-table' })),
      h('div', { class: 'row', style: 'margin-top:14px' },
        card(null, lineChart('chart-attempts', 'Attempts per ' + d.step + ' s', d.t,
          active.map(u => ({ name: `${u.model} @ ${u.upstream}`, values: u.series.attempts, colour: colour(u.model + '@' + u.upstream) })))),
        card(null, lineChart('chart-ttfb', 'Time to first byte through the gateway (ms, mean)', d.t,
          active.map(u => ({ name: `${u.model} @ ${u.upstream}`, values: u.series.ttfb_ms, colour: colour(u.model + '@' + u.upstream) }))))),
      h('div', { class: 'row' },
        card(null, lineChart('chart-failed', 'Failed attempts per ' + d.step + ' s', d.t,
          active.map(u => ({ name: `${u.model} @ ${u.upstream}`, values: u.series.failed, colour: colour(u.model + '@' + u.upstream) })))),
        card('Failed attempts by class, 15 min', (() => {
          const all = {};
          for (const u of d.upstreams) for (const [k, v] of Object.entries(u.failures_15m)) all[`${k} (${u.model} @ ${u.upstream})`] = v;
          const e = Object.entries(all).sort((a, b) => b[1] - a[1]);
          return e.length ? table(['failure', '#attempts'], e.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: 'num' }, v))))
            : h('p', { class: 'muted' }, 'No failed attempt in the last 15 minutes.');
        })())));
  },
  async tick() {
    if (S.ticks % 2) return;
    const d = await api('upstreams');
    if (S.page === 'upstreams') document.getElementById('page').replaceChildren(this.build(d));
  },
};

// === Policies ===

const Policies = {
  async render(root, message) {
    const d = await api('policies');
    S.generation = d.generation;
    root.replaceChildren(this.build(d, message));
  },
  build(d, message) {
    const cards = d.policies.map(p => {
      const previous = (p.versions || []).find(v => !v.current);
      const lr = p.last_reload || {};
      const versionRows = (p.versions || []).map(v => h('tr', { 'data-hash': v.hash },
        h('td', {}, h('code', {}, v.short)), h('td', {}, v.current ? badge('in service', 'ok') : ''),
        h('td', { class: 'num' }, (v.size_bytes / 1024).toFixed(0) + ' KiB'), h('td', {}, when(v.kept_at_ms)),
        h('td', {}, v.last_served_ms ? ago(v.last_served_ms) : '–'),
        h('td', {}, v.current ? '' : h('button', { type: 'button', class: 'secondary rollback-to', 'data-policy': p.name, 'data-hash': v.hash,
          onclick: () => Policies.rollback(p.name, v.hash) }, 'Roll back to this'))));
      let versions;
      if (p.builtin) versions = h('p', { class: 'muted' }, 'Built into the binary: there is no earlier version on disk.');
      else if (!d.versions_on_disk) versions = h('p', { class: 'muted' }, 'server.artifact_cache_dir is off: no versions are kept, so there is nothing to roll back to.');
      else versions = h('div', {},
        previous ? h('button', { type: 'button', class: 'rollback', id: 'rollback-' + p.name, 'data-policy': p.name, 'data-hash': previous.hash,
          onclick: () => Policies.rollback(p.name, previous.hash) }, `Roll back to ${previous.short}`)
          : h('p', { class: 'muted' }, 'No earlier version kept yet (versions are kept as they come into service).'),
        table(['version', '', '#size', 'kept since', 'last in service', ''], versionRows, { class: 'versions' }));
      return h('section', { class: 'card grow policy', 'data-policy': p.name },
        h('h2', {}, p.name, ' ', h('code', { class: 'policy-header' }, p.header || '–')),
        table(['', ''], [
          h('tr', {}, h('td', {}, 'source'), h('td', {}, h('code', {}, p.path))),
          h('tr', {}, h('td', {}, 'version (SHA-256)'), h('td', {}, h('code', { class: 'policy-hash' }, p.hash || '–'))),
          h('tr', {}, h('td', {}, 'contract'), h('td', {}, p.contract || '–')),
          h('tr', {}, h('td', {}, 'loaded'), h('td', {}, p.loaded_at ? when(p.loaded_at * 1000) : '–', p.compiled_from_cache ? ' (from the artifact cache)' : '')),
          h('tr', {}, h('td', {}, 'tenants'), h('td', {}, (p.tenants || []).join(', ') || '–')),
          h('tr', {}, h('td', {}, 'last reload'), h('td', {}, badge(lr.last_outcome || '–', lr.last_outcome === 'failed' ? 'bad' : 'ok'),
            lr.last_attempt_at ? ' ' + when(lr.last_attempt_at * 1000) : '',
            lr.last_error ? h('div', { class: 'error-box last-error' }, lr.last_error) : null)),
        ]),
        h('h3', { style: 'margin-top:12px' }, 'Versions on disk'), versions);
    });
    const tenants = d.tenants.map(t => {
      const q = t.quarantine;
      const quarantined = q && q.quarantined_for_seconds;
      return h('tr', { 'data-tenant': t.tenant },
        h('td', {}, t.tenant), h('td', {}, h('code', {}, t.header)), h('td', {}, t.contract),
        h('td', {}, quarantined ? badge(`quarantined ${q.quarantined_for_seconds.toFixed(0)} s`, 'bad') : badge('serving', 'ok'),
          q && q.failures ? ' ' + Object.entries(q.failures).map(([k, v]) => `${k} ${v}`).join(', ') : ''),
        h('td', {}, t.candidate ? `${t.candidate.mode} ${t.candidate.header}` + (t.candidate.mode === 'canary' ? ` (${(t.candidate.share * 100).toFixed(0)}%)` : '') : '–'));
    });
    const rollouts = (d.rollouts || []).map(r => {
      const differ = (r.recent || []).filter(c => !c.agree);
      return h('section', { class: 'card grow rollout' },
        h('h3', {}, `${r.tenant}: ${r.mode} ${r.candidate} `, h('code', {}, (r.hash || '').slice(0, 12))),
        r.mode === 'shadow'
          ? h('p', {}, `${r.compared} compared, agreement ${pct(r.agreement)}; projected cost live ${usd(r.projected_live_cost_usd)} vs candidate ${usd(r.projected_candidate_cost_usd)}`)
          : h('p', {}, `${r.served} served, ${r.failed} failed`, r.rolled_back ? h('span', { class: 'error-box' }, 'rolled back: ' + r.rolled_back) : ''),
        differ.length ? table(['request', 'live', 'candidate', '#live cost', '#candidate cost'], differ.slice(0, 20).map(c => h('tr', {},
          h('td', {}, h('code', {}, c.request_id)), h('td', {}, c.live), h('td', {}, c.candidate),
          h('td', { class: 'num' }, usd(c.live_cost_usd)), h('td', { class: 'num' }, usd(c.candidate_cost_usd))))) : h('p', { class: 'muted' }, 'No disagreement among the recent comparisons.'));
    });
    const reloads = (d.reloads || []).map(r => h('tr', {},
      h('td', {}, when(r.at_ms)), h('td', {}, r.trigger), h('td', {}, badge(r.outcome, r.outcome === 'failed' ? 'bad' : r.outcome === 'applied' ? 'ok' : '')),
      h('td', { class: 'num' }, r.generation), h('td', {}, (r.policies_loaded || []).join(', ')),
      h('td', {}, [r.config_error, ...Object.entries(r.policy_errors || {}).map(([k, v]) => `${k}: ${v}`)].filter(Boolean).join('; '))));
    return h('div', {},
      h('div', { class: 'toolbar' }, h('h1', {}, 'Policies'),
        h('span', { class: 'muted small' }, `config ${d.config.origin}, generation ${d.generation}`)),
      message || null,
      d.config.last_error ? h('div', { class: 'error-box' }, 'config refused: ' + d.config.last_error) : null,
      h('div', { class: 'row' }, cards),
      h('div', { class: 'row' }, card('Tenants', table(['tenant', 'policy', 'contract', 'quarantine', 'candidate'], tenants, { id: 'policy-tenants' }))),
      rollouts.length ? h('div', { class: 'row' }, rollouts) : null,
      h('div', { class: 'row' }, card('Reload history', reloads.length
        ? table(['when', 'trigger', 'outcome', '#generation', 'loaded', 'errors'], reloads, { id: 'reloads' })
        : h('p', { class: 'muted' }, 'No reload yet.'))));
  },
  async rollback(name, hash) {
    for (const b of document.querySelectorAll('button.rollback, button.rollback-to')) b.disabled = true;
    let message;
    try {
      const r = await post('policies/' + encodeURIComponent(name) + '/rollback', { hash });
      message = h('div', { class: 'ok-box', id: 'rollback-result', role: 'status' },
        `Rolled ${r.policy} back to ${r.to.slice(0, 12)} (was ${r.from.slice(0, 12)}); ${r.file} now holds it.`);
    } catch (e) {
      message = h('div', { class: 'error-box', id: 'rollback-result', role: 'alert' }, 'Rollback refused: ' + e.message);
    }
    await Policies.render(document.getElementById('page'), message);
  },
  async tick(data) {
    if (data.generation !== S.generation || S.ticks % 10 === 0) {
      const keep = document.getElementById('rollback-result');
      const d = await api('policies');
      S.generation = d.generation;
      if (S.page === 'policies') document.getElementById('page').replaceChildren(this.build(d, keep));
    }
  },
};

// === Requests ===

const Requests = {
  rows: [],
  logPrompts: false,
  async render(root) {
    const q = S.requestsTenant === '*' ? '' : '&tenant=' + encodeURIComponent(S.requestsTenant);
    const d = await api('requests?limit=200' + q);
    this.rows = d.requests;
    this.logPrompts = d.log_prompts;
    const tenants = (S.session.tenants || []);
    const select = h('select', { id: 'requests-tenant', onchange: e => { S.requestsTenant = e.target.value; Requests.render(document.getElementById('page')); } },
      ['*', ...tenants].map(t => h('option', { value: t, selected: t === S.requestsTenant }, t === '*' ? 'every tenant' : 'tenant ' + t)));
    root.replaceChildren(h('div', {},
      h('div', { class: 'toolbar' }, h('h1', {}, 'Requests'), h('label', { for: 'requests-tenant' }, 'for'), select,
        h('span', { class: 'muted small', id: 'requests-count' }, ''),
        h('span', { class: 'muted small' }, d.log_prompts ? 'server.log_prompts is on: prompt excerpts are shown.' : 'Prompt text is not shown (server.log_prompts is off).')),
      h('div', { class: 'row' },
        h('section', { class: 'card grow', style: 'flex: 3 1 640px' }, h('div', { class: 'scroll' },
          table(['time', 'tenant', 'model', 'reasons (tags)', '#attempts', '#cost', 'cache', '#status', '#latency', ...(d.log_prompts ? ['prompt'] : [])], [], { id: 'requests-table' }))),
        h('section', { class: 'card grow', id: 'request-detail', style: 'flex: 2 1 420px' },
          h('p', { class: 'muted' }, 'Choose a request to see the summary its policy saw and the decision it returned.')))));
    this.fill();
  },
  row(r) {
    const status = r.status >= 500 ? 'bad' : r.status >= 400 ? 'warn' : 'ok';
    const tr = h('tr', { class: 'clickable' + (S.selected === r.id ? ' selected' : ''), 'data-id': r.id, 'data-seq': r.seq, onclick: () => Requests.open(r.id) },
      h('td', { class: 'mono' }, new Date(r.at_ms).toLocaleTimeString([], { hour12: false })),
      h('td', {}, r.tenant || '–'),
      h('td', {}, r.model || '–', r.upstream ? h('span', { class: 'muted small' }, ' @ ' + r.upstream) : ''),
      h('td', {}, r.tags.map(([k, v]) => h('span', { class: 'tag' }, k === 'reason' ? v : `${k}=${v}`))),
      h('td', { class: 'num' }, r.attempts),
      h('td', { class: 'num' }, usd(r.cost_usd), r.cost_estimated ? '*' : ''),
      h('td', {}, r.cache),
      h('td', { class: 'num' }, badge(r.status, status)),
      h('td', { class: 'num' }, ms(r.latency_ms)),
      this.logPrompts ? h('td', { class: 'small' }, r.prompt || '') : null);
    return tr;
  },
  fill() {
    const body = document.querySelector('#requests-table tbody');
    if (!body) return;
    body.replaceChildren(...this.rows.map(r => this.row(r)));
    document.getElementById('requests-count').textContent = `${this.rows.length} shown (the ring keeps the last 2048)`;
  },
  async tick(data) {
    const body = document.querySelector('#requests-table tbody');
    if (!body || !data.requests.length) return;
    const fresh = data.requests.filter(r => S.requestsTenant === '*' || r.tenant === S.requestsTenant);
    for (const r of fresh) {
      const tr = this.row(r);
      tr.classList.add('fresh');
      body.prepend(tr);
    }
    this.rows = [...fresh.reverse(), ...this.rows].slice(0, 500);
    while (body.children.length > 500) body.lastChild.remove();
    document.getElementById('requests-count').textContent = `${this.rows.length} shown (the ring keeps the last 2048)`;
  },
  async open(id) {
    S.selected = id;
    for (const tr of document.querySelectorAll('#requests-table tr')) tr.classList.toggle('selected', tr.dataset.id === id);
    const panel = document.getElementById('request-detail');
    panel.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const d = await api('requests/' + encodeURIComponent(id));
      const r = d.request || {};
      const attempts = (r.attempt_list || []).map((a, i) => h('tr', {}, h('td', {}, i + 1), h('td', {}, a.model), h('td', {}, a.upstream),
        h('td', {}, badge(a.outcome, a.outcome === 'ok' ? 'ok' : 'bad'))));
      const detail = d.detail;
      panel.replaceChildren(
        h('h2', {}, 'Request ', h('code', { id: 'detail-id' }, id)),
        table(['', ''], [
          h('tr', {}, h('td', {}, 'tenant / policy'), h('td', {}, `${r.tenant || '–'} / `, h('code', {}, r.policy || '–'))),
          h('tr', {}, h('td', {}, 'served by'), h('td', {}, `${r.model || '–'} @ ${r.upstream || '–'}`)),
          h('tr', {}, h('td', {}, 'status'), h('td', {}, `${r.status}${r.error ? ': ' + r.error : ''}`)),
          h('tr', {}, h('td', {}, 'tokens'), h('td', {}, `${r.prompt_tokens} in (${r.cached_prompt_tokens} cached), ${r.completion_tokens} out`)),
          h('tr', {}, h('td', {}, 'cost'), h('td', {}, usd(r.cost_usd), r.cost_estimated ? ' (estimated)' : '', r.saved_usd ? ` · saved ${usd(r.saved_usd)}` : '')),
          h('tr', {}, h('td', {}, 'time'), h('td', {}, `${ms(r.latency_ms)} total, ${ms(r.first_byte_ms)} to first byte, ${ms(r.added_ms)} in the gateway, decision ${r.decision_us ?? '–'} µs`)),
        ]),
        attempts.length ? h('div', {}, h('h3', { style: 'margin-top:10px' }, 'Attempts'), table(['#', 'model', 'upstream', 'outcome'], attempts)) : null,
        detail
          ? h('div', {},
            h('h3', { style: 'margin-top:10px' }, 'The decision ', h('code', {}, detail.policy), ' returned'),
            h('pre', { class: 'json', id: 'detail-decision' }, JSON.stringify(detail.decision, null, 2)),
            h('h3', { style: 'margin-top:10px' }, 'The summary it saw', d.log_prompts ? '' : ' (prompt text left out)'),
            h('pre', { class: 'json', id: 'detail-summary' }, JSON.stringify(detail.summary, null, 2)))
          : h('p', { class: 'note' }, 'No summary was captured for this request: summaries and decisions are kept only while a console is open (and never for requests refused before the policy ran).'));
    } catch (e) {
      panel.replaceChildren(errorBox(e));
    }
  },
};

// === Playground ===

const Playground = {
  result: null,
  async render(root) {
    const d = await api('playground');
    root.replaceChildren(this.build(d));
  },
  build(d) {
    if (!d.available) {
      return h('div', {}, h('h1', {}, 'Playground'),
        h('p', { class: 'note' }, 'This gateway runs without `policy simulate` (the switchyard binary installs it).'));
    }
    const tenant = h('select', { id: 'pg-tenant' }, d.tenants.map(t => h('option', { value: t.tenant }, `${t.tenant} (live ${t.header}, ${t.recent} recent summaries)`)));
    const versions = h('select', { id: 'pg-version' },
      h('option', { value: '' }, 'the live policy'),
      d.versions.map(v => h('option', { value: v.policy + '/' + v.hash }, `${v.policy} ${v.short}${v.current ? ' (in service)' : ''}`)),
      d.uploads.filter(u => u.kind === 'wasm').map(u => h('option', { value: 'upload:' + u.id }, `uploaded ${u.name} ${u.hash}`)));
    const wasm = h('input', { type: 'file', id: 'pg-wasm', accept: '.wasm,application/wasm' });
    const traces = h('select', { id: 'pg-trace' },
      h('option', { value: 'recent' }, 'the recent summaries of the tenant'),
      d.uploads.filter(u => u.kind === 'trace').map(u => h('option', { value: 'upload:' + u.id }, `uploaded ${u.name}`)));
    const traceFile = h('input', { type: 'file', id: 'pg-trace-file', accept: '.jsonl,.json,.txt' });
    const status = h('div', { id: 'pg-status' });
    const run = h('button', { type: 'button', id: 'pg-run', onclick: () => Playground.run(status, run) }, 'Run policy simulate');
    return h('div', {},
      h('div', { class: 'toolbar' }, h('h1', {}, 'Playground')),
      h('p', { class: 'muted' }, 'Replays requests offline through `policy simulate` (the host\'s own summary and checks, simulated providers with prompt caches), beside the live policy and every single-model strategy.'),
      h('div', { class: 'row' }, h('section', { class: 'card grow' },
        table(['', ''], [
          h('tr', {}, h('td', {}, h('label', { for: 'pg-tenant' }, 'tenant')), h('td', {}, tenant)),
          h('tr', {}, h('td', {}, h('label', { for: 'pg-version' }, 'policy to try')), h('td', {}, versions, ' or upload a .wasm ', wasm)),
          h('tr', {}, h('td', {}, h('label', { for: 'pg-trace' }, 'requests')), h('td', {}, traces, ' or upload a trace (JSON lines) ', traceFile)),
        ]),
        d.log_prompts ? null : h('p', { class: 'note' }, 'Prompt text is not kept (server.log_prompts is off): replayed summaries carry filler text of the same size, so a policy that reads the prompt\'s words may decide differently than it did live.'),
        h('div', { style: 'margin-top:10px' }, run), status)),
      h('div', { id: 'pg-result' }, this.result ? this.show(this.result) : null));
  },
  async upload(input, kind) {
    const f = input.files && input.files[0];
    if (!f) return null;
    const u = await post(`playground/upload?kind=${kind}&name=${encodeURIComponent(f.name)}`, f, 'application/octet-stream');
    return u.id;
  },
  async run(status, button) {
    button.disabled = true;
    status.replaceChildren(h('p', { class: 'muted', id: 'pg-running' }, 'Simulating…'));
    try {
      const job = { tenant: document.getElementById('pg-tenant').value };
      const wasm = await this.upload(document.getElementById('pg-wasm'), 'wasm');
      const version = document.getElementById('pg-version').value;
      if (wasm) job.policy = { upload: wasm };
      else if (version.startsWith('upload:')) job.policy = { upload: version.slice(7) };
      else if (version) { const [policy, hash] = version.split('/'); job.policy = { version: { policy, hash } }; }
      else job.policy = { live: true };
      const trace = await this.upload(document.getElementById('pg-trace-file'), 'trace');
      const t = document.getElementById('pg-trace').value;
      if (trace) job.trace = { upload: trace };
      else if (t.startsWith('upload:')) job.trace = { upload: t.slice(7) };
      else job.trace = 'recent';
      this.result = await post('playground/run', job);
      status.replaceChildren(h('p', { class: 'ok-box', id: 'pg-done' }, `Simulated ${this.result.trace_requests} requests (${this.result.trace}) in ${this.result.seconds.toFixed(1)} s.`));
      document.getElementById('pg-result').replaceChildren(this.show(this.result));
    } catch (e) {
      status.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  },
  show(res) {
    const r = res.report;
    const runs = [[res.policy, r.run, PALETTE[0]], ...(r.compare ? [[res.live, r.compare, PALETTE[1]]] : [])];
    const bars = runs.map(([label, run, c]) => ({ label, value: run.cost_usd, text: `${usd(run.cost_usd)} · ${run.errors} errors · ${run.slow} slow`, colour: c }));
    for (const b of r.baselines) bars.push({ label: 'all ' + b.model, value: b.cost_usd, text: usd(b.cost_usd), colour: GREY });
    const mixRows = runs.map(([label, run]) => {
      const total = Object.values(run.mix).reduce((a, m) => a + m.requests, 0) || 1;
      return { label, shares: Object.entries(run.mix).map(([m, s]) => [m, s.requests / total]) };
    });
    const stats = runs.map(([label, run]) => h('tr', {},
      h('td', {}, label), h('td', { class: 'num' }, run.requests), h('td', { class: 'num' }, usd(run.cost_usd)),
      h('td', { class: 'num' }, pct(run.cache_hit_ratio)), h('td', { class: 'num' }, run.ttft_p50_ms + ' / ' + run.ttft_p95_ms + ' ms'),
      h('td', { class: 'num' }, run.errors), h('td', { class: 'num' }, run.rejected), h('td', { class: 'num' }, run.slow),
      h('td', {}, Object.entries(run.reasons).map(([k, v]) => h('span', { class: 'tag' }, `${k} ${v}`)))));
    return h('div', {},
      h('div', { class: 'row' },
        card('Cost of the same requests', barChart('chart-pg-cost', `Cost of ${r.run.requests} requests, prompt cache modelled`, bars)),
        card('Model mix', shareChart('chart-pg-mix', 'Requests by model', mixRows))),
      h('div', { class: 'row' }, card('Runs', table(['policy', '#requests', '#cost', '#prompt-cache hits', '#TTFT p50 / p95', '#errors', '#rejected', '#slow', 'why'], stats, { id: 'pg-runs' }))));
  },
};

const PAGES = { overview: Overview, routing: Routing, upstreams: Upstreams, policies: Policies, requests: Requests, playground: Playground };

async function start() {
  try {
    S.session = await api('session');
  } catch (e) {
    document.getElementById('page').replaceChildren(errorBox(e));
    return;
  }
  document.getElementById('foot').textContent =
    `Switchyard ${S.session.version} · ${S.session.config} · session ends in ${Math.round((S.session.expires_in_s || 0) / 60)} min`;
  document.getElementById('logout').addEventListener('click', async () => {
    await fetch('/console/logout', { method: 'POST', credentials: 'same-origin', headers: { 'x-csrf-token': S.session.csrf } });
    location.href = '/console';
  });
  window.addEventListener('hashchange', show);
  connect();
  await show();
}

document.addEventListener('DOMContentLoaded', start);
