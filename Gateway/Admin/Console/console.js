// Orleans.Ingest admin console. The token is held in this closure only: not in storage, the URL or the DOM.
// Every value from the API is written with textContent (a stream_id is text a caller chose).
(() => {
  'use strict';
  let token = null;
  let timer = null;
  let tick = 0;
  let flag = null;
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

  async function refresh() {
    const wanted = [api('GET', '/v1/admin/calls'), api('GET', '/v1/admin/refusals'), api('GET', '/v1/admin/flags')];
    if (tick++ % 5 === 0) wanted.push(api('GET', '/v1/admin/silos'));
    const [calls, refusals, flags, silos] = await Promise.all(wanted);
    fill('calls', calls, ['stream_id', 'protocol', 'frames', 'gaps', 'missing', 'buffered', 'started_at', 'call_sid', 'silo']);
    $('calls-count').textContent = String(calls.length);
    $('calls-updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    fill('refusals', refusals.slice(0, 50), ['at', 'remote', 'reason', 'status', 'protocol', 'detail']);
    showFlag(flags);
    if (silos) fill('silos', silos, ['address', 'status', 'name', 'started_at']);
  }

  async function loop() {
    if (token === null) return;
    try {
      await refresh();
      status('Connected; live calls refresh every second.', true);
    } catch (e) {
      status(e.message, false);
      if (e.status === 401 || e.status === 403) { stop(); return; }
    }
    timer = setTimeout(loop, 1000);
  }

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
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
