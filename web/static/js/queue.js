// The supervisor's routing view: filters by brand and team (applied to live
// calls, queues and callbacks), the queues live (GET /api/v1/queues every
// 2 s: position and wait of every waiting caller) and the callback tasks.

import { api, h, fmtDuration, fmtMicros, maskNumber } from './common.js';
import { Callbacks } from './callbacks.js';
import { showNumberHours } from './hours.js';

const $ = (id) => document.getElementById(id);

const filter = { brand: '', team: '' };
let routing = { numbers: [], teams: [] };
let timer = 0;
let token = '';
let mask = true;
let callbacks = null;
export const queueTest = { queues: null };

/** keepCall applies the brand/team filter to a live call. */
export function keepCall(c) {
  if (filter.brand && c.brand !== filter.brand) return false;
  if (filter.team && c.team !== filter.team) return false;
  return true;
}

function keepTask(t) {
  if (filter.team && t.team !== filter.team) return false;
  if (filter.brand && !(t.brands || []).includes(filter.brand)) return false;
  return true;
}

function keepEntry(e) {
  if (filter.team && e.team !== filter.team) return false;
  if (filter.brand && e.brand !== filter.brand) return false;
  return true;
}

export async function startRouting(t, masked, onFilter) {
  token = t;
  mask = masked;
  try { routing = await api(token, '/api/v1/routing'); } catch { routing = { numbers: [], teams: [] }; }
  showNumberHours(routing.numbers); // each number's call hours (hours.js)
  const brands = [...new Set((routing.numbers || []).map((n) => n.brand))];
  $('filter-brand').replaceChildren(h('option', { value: '', text: 'All brands' }), ...brands.map((b) => h('option', { value: b, text: b })));
  $('filter-team').replaceChildren(h('option', { value: '', text: 'All teams' }), ...(routing.teams || []).map((tm) => h('option', { value: tm.id, text: tm.name })));
  const changed = () => {
    filter.brand = $('filter-brand').value;
    filter.team = $('filter-team').value;
    renderQueues();
    if (callbacks) callbacks.render();
    if (onFilter) onFilter();
  };
  $('filter-brand').onchange = changed;
  $('filter-team').onchange = changed;
  $('routing').hidden = false;
  callbacks = new Callbacks({ list: 'sup-callbacks', count: 'sup-callbacks-count', agent: '', mask, keep: keepTask });
  callbacks.start(token);
  pollQueues();
}

export function stopRouting() {
  clearTimeout(timer);
  if (callbacks) callbacks.stop();
}

let last = [];

async function pollQueues() {
  clearTimeout(timer);
  try {
    const r = await api(token, '/api/v1/queues');
    last = (r && r.queues) || [];
    queueTest.queues = last;
    renderQueues();
  } catch { /* the live poll shows the connection state */ }
  timer = setTimeout(pollQueues, 2000);
}

function renderQueues() {
  const rows = last.filter(keepEntry);
  $('queues-count').textContent = `(${rows.length} waiting)`;
  const body = $('queues-body');
  body.replaceChildren(...rows.map((e) => h('tr', { 'data-testid': 'queue-row', 'data-call-id': e.call_id, 'data-team': e.team },
    h('td', { text: e.team_name || e.team }),
    h('td', { class: 'num', 'data-testid': 'queue-position', text: String(e.position) }),
    h('td', { text: (e.name ? e.name + ' · ' : '') + maskNumber(e.from, mask) }),
    h('td', { 'data-testid': 'queue-brand', text: e.brand || '' }),
    h('td', { class: 'num', 'data-testid': 'queue-wait', text: fmtDuration(e.wait_s) + (e.max_wait_s ? ' / ' + fmtDuration(e.max_wait_s) : '') }))));
  if (!rows.length) body.append(h('tr', { class: 'empty' }, h('td', { colspan: 5, class: 'muted', text: 'Nobody is waiting.' })));
}

/** renderNumberUsage shows the month's usage by business number (brand). */
export function renderNumberUsage(u) {
  const body = $('usage-numbers-body');
  if (!body) return;
  const brand = (id) => ((routing.numbers || []).find((n) => n.phone_number_id === id) || {}).brand || id;
  const rows = (u.numbers || []).filter((n) => !filter.brand || brand(n.phone_number_id) === filter.brand);
  body.replaceChildren(...rows.map((n) => h('tr', { 'data-testid': 'usage-number-row', 'data-number': n.phone_number_id },
    h('td', { text: brand(n.phone_number_id) }),
    h('td', { class: 'num', text: String(n.all_calls || 0) }),
    h('td', { class: 'num', text: String(n.calls || 0) }),
    h('td', { class: 'num', text: fmtDuration(n.billed_seconds || 0) }),
    h('td', { class: 'num', text: fmtMicros(n.cost_micros || 0) }))));
  if (!rows.length) body.append(h('tr', { class: 'empty' }, h('td', { colspan: 5, class: 'muted', text: 'No calls this month.' })));
}
