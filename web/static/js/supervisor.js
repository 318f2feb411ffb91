// The supervisor dashboard: live calls and agents (GET /api/v1/live every 2 s),
// monthly usage by country as an SVG bar chart (GET /api/v1/usage).
import { startRecordings, stopRecordings } from './recordings.js';
import { takeToken, setToken, claims, api, maskNumber, fmtDuration, fmtMicros, h, mediaFailureText } from './common.js';
import { startRouting, stopRouting, keepCall, renderNumberUsage } from './queue.js';
import { Monitor } from './monitor.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const test = { live: null, usage: null, error: null, polls: 0 };
window.callgwTest = test;

let token = '';
let pollTimer = 0;
let usageTimer = 0;
let mask = true;
let monitor = null; // listen / whisper / take over (monitor.js)

const stateWords = { waiting: 'Waiting', ringing: 'Ringing', dialing: 'Dialing', connecting: 'Connecting', connected: 'Connected', ended: 'Ended' };
const presenceWords = { available: 'Available', away: 'Away', on_call: 'On a call', busy: 'On a call', offline: 'Offline' };

function setConn(cls, text) {
  const el = document.querySelector('[data-testid="connection"]');
  el.className = 'conn ' + cls;
  el.querySelector('.conn-text').textContent = text;
}

function quality(q) {
  if (!q || (q.rtt_ms === undefined && q.loss_pct === undefined)) return h('span', { class: 'muted', text: '–' });
  const rtt = Math.round(q.rtt_ms || 0), loss = Math.round((q.loss_pct || 0) * 10) / 10, jit = Math.round(q.jitter_ms || 0);
  const cls = rtt < 250 && loss < 2 && jit < 30 ? 'good' : rtt < 500 && loss < 6 && jit < 60 ? 'fair' : 'poor';
  return h('span', { class: 'q', title: `RTT ${rtt} ms, loss ${loss}%, jitter ${jit} ms` },
    h('span', { class: 'dot ' + cls }), `${rtt} ms · ${loss}% · ${jit} ms`);
}

function since(iso) {
  const t = Date.parse(iso);
  return isNaN(t) ? 0 : Math.max(0, (Date.now() - t) / 1000);
}

async function pollLive() {
  clearTimeout(pollTimer);
  try {
    const live = await api(token, '/api/v1/live');
    test.live = live;
    test.polls++;
    test.error = null;
    setConn('online', 'Live');
    renderLive(live || {});
  } catch (e) {
    test.error = e.message;
    if (e.status === 401 || e.status === 403) { signOut(e.status === 403 ? 'This page needs a supervisor token.' : 'Your sign-in is not valid or has expired.'); return; }
    setConn('offline', 'Reconnecting…');
  }
  pollTimer = setTimeout(pollLive, 2000);
}

let lastLive = {};

function renderLive(live) {
  lastLive = live;
  const calls = (live.calls || []).filter(keepCall);
  $('calls-count').textContent = `(${calls.length})`;
  const body = $('calls-body');
  body.replaceChildren(...calls.map((c) => {
    const out = c.direction === 'business_initiated';
    const num = out ? c.to : c.from;
    const dur = c.state === 'connected' ? since(c.connected_at) : since(c.created_at);
    return h('tr', { 'data-testid': 'live-call-row', 'data-call-id': c.id },
      h('td', {}, h('span', { class: 'badge ' + (c.state === 'connected' ? 'answered' : ''), text: stateWords[c.state] || c.state })),
      h('td', { text: (out ? '↗ Outbound' : '↙ Inbound') + (c.brand ? ' · ' + c.brand : '') }),
      h('td', { text: (c.name ? c.name + ' · ' : '') + maskNumber(num, mask) }),
      h('td', { text: c.agent || '—' }),
      h('td', { class: 'num', text: fmtDuration(dur) }),
      h('td', {}, quality(c.quality)));
  }));
  if (monitor) monitor.decorate(body, calls);
  if (!calls.length) body.append(h('tr', { class: 'empty' }, h('td', { colspan: 7, class: 'muted', text: 'No calls right now.' })));

  const agents = live.agents || [];
  const avail = agents.filter((a) => a.presence === 'available').length;
  $('agents-count').textContent = `(${avail} of ${agents.length} available)`;
  const ab = $('agents-body');
  ab.replaceChildren(...agents.map((a) => {
    const p = a.call_id ? 'on_call' : a.presence;
    return h('tr', { 'data-testid': 'agent-row', 'data-agent': a.agent },
      h('td', { text: a.agent }),
      h('td', {}, h('span', { class: 'presence-badge ' + p, text: presenceWords[p] || p })),
      h('td', { class: 'num', text: a.sessions ?? '' }));
  }));
  if (!agents.length) ab.append(h('tr', { class: 'empty' }, h('td', { colspan: 3, class: 'muted', text: 'No agents signed in.' })));
}

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function drawChart(countries) {
  const chart = $('usage-chart');
  chart.replaceChildren();
  const rows = [...countries].sort((a, b) => (b.billed_seconds || 0) - (a.billed_seconds || 0)).slice(0, 12);
  const W = 560, rowH = 26, left = 56, right = 150, top = 6;
  const H = Math.max(40, rows.length * rowH + top * 2);
  chart.setAttribute('viewBox', `0 0 ${W} ${H}`);
  chart.setAttribute('aria-label', 'Billed minutes by country: ' + rows.map((r) => `${r.country} ${Math.round((r.billed_seconds || 0) / 60)} min`).join(', '));
  if (!rows.length) { chart.append(svg('text', { x: 0, y: 24, class: 'axis' }, 'No billed calls this month.')); return; }
  const max = Math.max(1, ...rows.map((r) => r.billed_seconds || 0));
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const w = Math.max(2, Math.round(((r.billed_seconds || 0) / max) * (W - left - right)));
    chart.append(svg('text', { x: 0, y: y + 17 }, r.country || '??'));
    const bar = svg('rect', { x: left, y: y + 4, width: w, height: rowH - 8, rx: 4, class: 'bar', 'data-testid': 'usage-bar', 'data-country': r.country });
    bar.append(svg('title', {}, `${r.country}: ${r.calls} calls, ${fmtDuration(r.billed_seconds || 0)} billed, ${fmtMicros(r.cost_micros || 0)}`));
    chart.append(bar);
    chart.append(svg('text', { x: left + w + 8, y: y + 17, class: 'axis' }, `${fmtDuration(r.billed_seconds || 0)} · ${fmtMicros(r.cost_micros || 0)}`));
  });
}

async function loadUsage() {
  clearTimeout(usageTimer);
  const month = $('month').value;
  try {
    const u = await api(token, '/api/v1/usage?month=' + encodeURIComponent(month));
    test.usage = u;
    renderUsage(u || {});
    renderNumberUsage(u || {});
  } catch (e) {
    $('usage-totals').replaceChildren(h('span', { class: 'muted', text: `Could not load usage (${e.message}).` }));
  }
  usageTimer = setTimeout(loadUsage, 60000);
}

function renderUsage(u) {
  const countries = u.countries || [];
  const t = u.totals || {};
  const sum = (k) => countries.reduce((s, c) => s + (c[k] || 0), 0);
  const conv = u.conversations || [];
  // totals.cost_micros is calls + conversations; "Calling cost" is calls only.
  const calls = t.calls ?? sum('calls'), secs = t.billed_seconds ?? sum('billed_seconds'), cost = t.call_cost_micros ?? sum('cost_micros');
  const convCost = t.conversation_cost_micros ?? conv.reduce((s, c) => s + (c.cost_micros || 0), 0);
  const total = t.call_cost_micros !== undefined && t.cost_micros !== undefined ? t.cost_micros : cost + convCost;
  $('usage-totals').replaceChildren(
    h('div', {}, h('span', { class: 'muted small', text: 'Outbound calls' }), h('strong', { text: calls })),
    h('div', {}, h('span', { class: 'muted small', text: 'Billed time' }), h('strong', { text: fmtDuration(secs) })),
    h('div', {}, h('span', { class: 'muted small', text: 'Calling cost' }), h('strong', { 'data-testid': 'usage-total-cost', text: fmtMicros(cost) })),
    h('div', {}, h('span', { class: 'muted small', text: 'Conversations cost' }), h('strong', { 'data-testid': 'usage-conversation-cost', text: fmtMicros(convCost) })),
    h('div', {}, h('span', { class: 'muted small', text: 'Total' }), h('strong', { 'data-testid': 'usage-grand-total', text: fmtMicros(total) })));
  drawChart(countries);
  $('usage-body').replaceChildren(...countries.map((c) => h('tr', { 'data-testid': 'usage-row' },
    h('td', { text: c.country }), h('td', { class: 'num', text: c.calls }),
    h('td', { class: 'num', text: fmtDuration(c.billed_seconds || 0) }), h('td', { class: 'num', text: fmtMicros(c.cost_micros || 0) }))));
  $('conv-body').replaceChildren(...conv.map((c) => h('tr', {},
    h('td', { text: c.category }), h('td', { class: 'num', text: c.conversations }),
    h('td', { class: 'num', text: c.charged }), h('td', { class: 'num', text: fmtMicros(c.cost_micros || 0) }))));
  if (!conv.length) $('conv-body').append(h('tr', { class: 'empty' }, h('td', { colspan: 4, class: 'muted', text: 'No conversations.' })));

  renderReconciliation(u.reconciliation);
  loadMediaProblems();

  // Permission-request outcomes: usage.permission_requests = {sent, accepted, rejected, no_reply, …}.
  const pr = u.permission_requests;
  const el = $('perms');
  if (!pr || typeof pr !== 'object') {
    el.replaceChildren(h('p', { class: 'muted', text: 'This server does not report permission-request outcomes yet.' }));
    return;
  }
  const words = { sent: 'Requests sent', accepted: 'Accepted', rejected: 'Declined', no_reply: 'No reply yet', expired: 'Expired', permanent: 'Permanent grants' };
  const sent = pr.sent || 0;
  el.replaceChildren(h('div', { class: 'stat-grid' }, ...Object.entries(pr).map(([k, v]) => h('div', { 'data-testid': 'perm-' + k },
    h('span', { class: 'muted small', text: words[k] || k.replace(/_/g, ' ') }),
    h('strong', { text: String(v) }),
    k !== 'sent' && sent ? h('span', { class: 'muted small', text: `${Math.round((v * 100) / sent)}%` }) : null))));
}

function signOut(reason) {
  stopRouting();
  if (monitor) { monitor.close(); monitor = null; }
  clearTimeout(pollTimer);
  clearTimeout(usageTimer);
  stopRecordings();
  token = '';
  setToken('');
  $('app').hidden = true;
  $('signin').hidden = false;
  $('sign-out').hidden = true;
  $('signin-error').textContent = reason || '';
  setConn('offline', 'Signed out');
}

async function start(t) {
  token = t;
  const cl = claims(t);
  document.querySelector('[data-testid="agent-name"]').textContent = cl.sub || '';
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  try {
    const cfg = await api(token, '/api/v1/config');
    if (cfg && cfg.mask_numbers === false) mask = false;
  } catch { /* keep masking */ }
  startRecordings(token, mask); // call history with recordings (recordings.js)
  pollLive();
  loadUsage();
  startRouting(token, mask, () => renderLive(lastLive));
  if (cl.role === 'supervisor') monitor = new Monitor({ token, test, rerender: () => renderLive(lastLive) });
}

const now = new Date();
$('month').value = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
$('month').addEventListener('change', loadUsage);
$('sign-out').addEventListener('click', () => signOut(''));
$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('token-input').value.trim();
  if (!t) return;
  setToken(t);
  $('token-input').value = '';
  start(t);
});
const tok = takeToken();
if (tok) start(tok); else signOut('');

// renderReconciliation shows how the ledger compares with Meta's own
// figures (call_analytics, pricing_analytics), day by day and market.
function renderReconciliation(r) {
  const el = $('recon');
  if (!el) return;
  if (!r || !r.status) {
    el.replaceChildren(h('p', { class: 'muted', text: 'Not run yet (set CALLGW_WABA_ID; it runs daily).' }));
    return;
  }
  const words = { ok: 'Matches Meta', differences: 'Differs from Meta', unavailable: "Meta's figures unavailable" };
  const head = h('p', { 'data-testid': 'recon-status', 'data-status': r.status },
    h('strong', { text: words[r.status] || r.status }),
    h('span', { class: 'muted small', text: ` · ${r.from || ''} – ${r.to || ''}${r.error ? ' · ' + r.error : ''}` }));
  const diffs = (r.days || []).filter((d) => d.status === 'differences');
  if (!diffs.length) { el.replaceChildren(head); return; }
  const table = h('table', {}, h('thead', {}, h('tr', {}, ...['Day', 'Market', 'Kind', 'Ours', 'Meta', 'Difference'].map((t) => h('th', { text: t })))),
    h('tbody', {}, ...diffs.map((d) => h('tr', { 'data-testid': 'recon-row' },
      h('td', { text: d.date }), h('td', { text: d.market }), h('td', { text: d.kind }),
      h('td', { class: 'num', text: fmtMicros((d.ours && d.ours.cost_micros) || 0) }),
      h('td', { class: 'num', text: d.meta ? fmtMicros(d.meta.cost_micros || 0) : '—' }),
      h('td', { class: 'num', text: (d.difference_micros < 0 ? '−' : '+') + fmtMicros(Math.abs(d.difference_micros || 0)) })))));
  el.replaceChildren(head, table);
}

// loadMediaProblems lists recent calls whose audio failed, with media's
// diagnosis (the call log's media_failure).
async function loadMediaProblems() {
  const el = $('media-problems');
  if (!el) return;
  try {
    const res = await api(token, '/api/v1/calls?limit=100');
    const rows = (res.calls || []).filter((c) => c.media_failure);
    if (!rows.length) {
      el.replaceChildren(h('p', { class: 'muted', text: 'None among the last 100 calls.' }));
      return;
    }
    el.replaceChildren(h('table', {}, h('tbody', {}, ...rows.map((c) => h('tr', { 'data-testid': 'media-problem-row', 'data-call-id': c.id },
      h('td', { text: c.ended_at ? new Date(c.ended_at).toLocaleString() : '' }),
      h('td', { text: c.agent || '' }),
      h('td', { text: mediaFailureText(c.media_failure) }))))));
  } catch (e) {
    el.replaceChildren(h('span', { class: 'muted', text: `Could not load calls (${e.message}).` }));
  }
}
