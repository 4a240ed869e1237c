// Orleans.Ingest admin console. The token is held in this closure only: not in storage, the URL or the DOM.
// Every value from the API is written with textContent (a stream_id is text a caller chose).
(() => {
  'use strict';
  let token = null;
  let timer = null;
  let tick = 0;
  let flag = null;
  let live = null;          // the pushed view's reader (an AbortController) while it runs
  let lastPush = 0;         // when the pushed view last delivered (ms); the poll fills in when it is silent
  let previous = null;      // the last calls list with its time, for frames/s
  let refusalsSeen = [];
  const history = [];       // {t, calls, fps} per update, the last 10 minutes
  const perCall = new Map(); // stream_id -> frames/s of its last 30 updates
  const WINDOW_MS = 10 * 60 * 1000;
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = id => document.getElementById(id);

  function status(text, ok) {
    const el = $('status');
    el.textContent = text;
    el.className = ok ? 'ok' : 'error';
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { 'Authorization': 'Bearer ' + token, 'Accept': 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
    if (response.status === 401) throw new ApiError(401, '401 Unauthorized: the token was refused (missing, malformed, expired, too long-lived, or signed with another key).');
    if (response.status === 403) throw new ApiError(403, '403 Forbidden: the token is valid but is not an admin token (it needs the claim role=admin).');
    if (!response.ok) throw new ApiError(response.status, `${response.status} from ${path}: ${await response.text()}`);
    return response.json();
  }

  function fill(tableId, rows, columns) {
    const body = $(tableId).tBodies[0];
    const fresh = document.createElement('tbody');
    if (rows.length === 0) {
      const tr = fresh.insertRow();
      const td = tr.insertCell();
      td.colSpan = columns.length;
      td.className = 'empty';
      td.textContent = 'none';
    }
    for (const row of rows) {
      const tr = fresh.insertRow();
      for (const column of columns) {
        const value = typeof column === 'function' ? column(row) : row[column];
        tr.insertCell().textContent = value === undefined || value === null ? '' : String(value);
      }
    }
    body.replaceWith(fresh);
  }

  function showFlag(view) {
    const f = (view.flags && view.flags['support-exotel']) || { enabled: view.supportExotel };
    flag = !!f.enabled;
    const value = $('flag-value');
    value.textContent = flag ? 'on' : 'off';
    value.className = flag ? 'on' : 'off';
    $('flag-source').textContent = f.source || '';
    $('flag-version').textContent = f.version === undefined ? '' : String(f.version);
    $('flag-changed').textContent = f.changedAt || '';
    const toggle = $('flag-toggle');
    toggle.disabled = false;
    toggle.textContent = flag ? 'Turn Exotel support off' : 'Turn Exotel support on';
  }

  function el(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  // A line chart of points {t, v} over the last 10 minutes, drawn into the <svg> with id `id`.
  function lineChart(id, points, label) {
    const svg = $(id);
    const w = 360, h = 90, pad = 4;
    svg.replaceChildren();
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    const now = Date.now();
    const max = Math.max(1, ...points.map(p => p.v));
    el('text', { x: pad, y: 12, class: 'chart-label' }, svg).textContent = `${label}: ${points.length ? Math.round(points[points.length - 1].v) : 0} (max ${Math.round(max)})`;
    const xy = points.map(p => [pad + (w - 2 * pad) * (1 - (now - p.t) / WINDOW_MS), h - pad - (h - 20) * p.v / max]);
    if (xy.length > 0) el('polyline', { points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' '), fill: 'none', stroke: '#0969da', 'stroke-width': 1.5, class: 'series' }, svg);
  }

  // Refused upgrades per minute over the last 10 minutes, stacked by reason.
  const reasonColours = { exotel_disabled: '#cf222e', no_credentials: '#bf8700', bad_credentials: '#fb8500', not_allowlisted: '#8250df', bad_token: '#1f6feb', rate_limited: '#57606a', draining: '#2da44e', over_capacity: '#a40e26', starting: '#6e7781' };
  function refusalChart(refusals) {
    const svg = $('refusals-chart');
    const w = 360, h = 90, minutes = 10, barW = (w - 8) / minutes;
    svg.replaceChildren();
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    const now = Date.now();
    const buckets = Array.from({ length: minutes }, () => new Map());
    for (const r of refusals) {
      const age = now - Date.parse(r.at);
      const b = minutes - 1 - Math.floor(age / 60000);
      if (b < 0 || b >= minutes || Number.isNaN(age)) continue;
      buckets[b].set(r.reason, (buckets[b].get(r.reason) || 0) + 1);
    }
    const max = Math.max(1, ...buckets.map(m => [...m.values()].reduce((a, c) => a + c, 0)));
    el('text', { x: 4, y: 12, class: 'chart-label' }, svg).textContent = `refusals per minute (max ${max})`;
    buckets.forEach((m, i) => {
      let y = h - 4;
      for (const [reason, count] of m) {
        const bh = (h - 20) * count / max;
        y -= bh;
        const bar = el('rect', { x: 4 + i * barW + 1, y: y.toFixed(1), width: (barW - 2).toFixed(1), height: bh.toFixed(1), fill: reasonColours[reason] || '#999', class: 'bar', 'data-reason': reason }, svg);
        el('title', {}, bar).textContent = `${count} ${reason}`;
      }
    });
    const legend = $('refusals-legend');
    legend.replaceChildren();
    const reasons = new Set(buckets.flatMap(m => [...m.keys()]));
    for (const reason of reasons) {
      const item = document.createElement('span');
      item.className = 'legend';
      item.textContent = '\u25a0 ' + reason;
      item.dataset.reason = reason;
      item.setAttribute('data-colour', reasonColours[reason] || '#999');
      legend.appendChild(item);
    }
    for (const item of legend.children) item.style.color = item.getAttribute('data-colour');
  }

  // A small sparkline of a call's frames/s.
  function sparkline(values) {
    const svg = document.createElementNS(SVG, 'svg');
    const w = 80, h = 16;
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('class', 'spark');
    const max = Math.max(1, ...values);
    const step = values.length > 1 ? w / (values.length - 1) : w;
    if (values.length > 0) el('polyline', { points: values.map((v, i) => `${(i * step).toFixed(1)},${(h - 1 - (h - 2) * v / max).toFixed(1)}`).join(' '), fill: 'none', stroke: '#1a7f37', 'stroke-width': 1 }, svg);
    return svg;
  }

  // One list of live calls (pushed or polled): the table, the level and sparkline per call, the cluster charts.
  function showCalls(calls) {
    const now = Date.now();
    const before = previous ? new Map(previous.calls.map(c => [c.stream_id, c.frames])) : new Map();
    const dt = previous ? Math.max(0.2, (now - previous.t) / 1000) : 1;
    let fps = 0;
    for (const c of calls) {
      const rate = before.has(c.stream_id) ? Math.max(0, (c.frames - before.get(c.stream_id)) / dt) : 0;
      fps += rate;
      const series = perCall.get(c.stream_id) || [];
      series.push(rate);
      if (series.length > 30) series.shift();
      perCall.set(c.stream_id, series);
    }
    for (const id of [...perCall.keys()]) if (!calls.some(c => c.stream_id === id)) perCall.delete(id);
    previous = { t: now, calls };
    history.push({ t: now, calls: calls.length, fps });
    while (history.length > 0 && now - history[0].t > WINDOW_MS) history.shift();

    fill('calls', calls, ['stream_id', 'protocol', 'frames', c => {
      const series = perCall.get(c.stream_id) || [];
      return series.length ? series[series.length - 1].toFixed(1) : '';
    }, 'gaps', 'missing', 'buffered', 'started_at', 'call_sid', 'silo']);
    const rows = $('calls').tBodies[0].rows;
    calls.forEach((c, i) => {
      const cell = rows[i] && rows[i].cells[3];
      if (!cell) return;
      const series = perCall.get(c.stream_id) || [];
      const level = document.createElement('meter');
      level.min = 0; level.max = 10; level.value = Math.min(10, series.length ? series[series.length - 1] : 0);
      level.className = 'level';
      cell.textContent = series.length ? series[series.length - 1].toFixed(1) + ' ' : '';
      cell.appendChild(level);
      cell.appendChild(sparkline(series));
    });
    $('calls-count').textContent = String(calls.length);
    $('calls-updated').textContent = (live && now - lastPush < 3000 ? 'pushed ' : 'polled ') + new Date().toLocaleTimeString();
    lineChart('fps-chart', history.map(p => ({ t: p.t, v: p.fps })), 'cluster frames/s');
    lineChart('calls-chart', history.map(p => ({ t: p.t, v: p.calls })), 'live calls');
  }

  // The pushed view: server-sent events read with fetch (EventSource cannot send the Authorization header).
  async function watch() {
    if (token === null || live !== null) return;
    const controller = new AbortController();
    live = controller;
    try {
      const response = await fetch('/v1/admin/calls/stream', { headers: { 'Authorization': 'Bearer ' + token, 'Accept': 'text/event-stream' }, cache: 'no-store', credentials: 'omit', signal: controller.signal });
      if (!response.ok) throw new ApiError(response.status, `${response.status} from the live view`);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split('\n');
          if (!lines.includes('event: calls')) continue;
          const data = lines.filter(l => l.startsWith('data: ')).map(l => l.slice(6)).join('');
          lastPush = Date.now();
          showCalls(JSON.parse(data));
        }
      }
    } catch (e) {
      // Over MAX_ADMIN_STREAMS, the gateway stopping, the network: the poll carries on; the next round tries again.
    } finally {
      if (live === controller) live = null;
    }
  }

  async function refresh() {
    const pushed = live !== null && Date.now() - lastPush < 3000;
    const wanted = [api('GET', '/v1/admin/refusals'), api('GET', '/v1/admin/flags'), pushed ? Promise.resolve(null) : api('GET', '/v1/admin/calls')];
    if (tick++ % 5 === 0) wanted.push(api('GET', '/v1/admin/silos'));
    const [refusals, flags, calls, silos] = await Promise.all(wanted);
    if (calls) showCalls(calls);
    refusalsSeen = refusals;
    fill('refusals', refusals.slice(0, 50), ['at', 'remote', 'reason', 'status', 'protocol', 'detail']);
    refusalChart(refusalsSeen);
    showFlag(flags);
    if (silos) fill('silos', silos, ['address', 'status', 'name', 'started_at']);
    if (live === null && tick % 10 === 1) watch();
  }

  async function loop() {
    if (token === null) return;
    try {
      await refresh();
      status(live !== null && Date.now() - lastPush < 3000 ? 'Connected; live calls pushed by the silos.' : 'Connected; live calls refresh every second.', true);
    } catch (e) {
      status(e.message, false);
      if (e.status === 401 || e.status === 403) { stop(); return; }
    }
    timer = setTimeout(loop, 1000);
  }

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (live !== null) live.abort();
    live = null;
  }

  function apply() {
    const input = $('token');
    const pasted = input.value.trim().replace(/^Bearer\s+/i, '');
    input.value = '';
    if (!pasted) { status('Paste an admin token first.', false); return; }
    token = pasted;
    stop();
    tick = 0;
    status('Checking the token...', true);
    loop();
  }

  async function toggle() {
    if (token === null || flag === null) return;
    const button = $('flag-toggle');
    button.disabled = true;
    try {
      showFlag(await api('PUT', '/v1/admin/flags/support-exotel', { enabled: !flag }));
      status('Flag changed; every gateway obeys within a second.', true);
    } catch (e) {
      status(e.message, false);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('apply').addEventListener('click', apply);
    $('token').addEventListener('keydown', e => { if (e.key === 'Enter') apply(); });
    $('forget').addEventListener('click', () => { token = null; stop(); status('Token forgotten.', false); });
    $('flag-toggle').addEventListener('click', toggle);
  });
})();
