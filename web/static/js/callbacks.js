// Callback tasks (every missed call becomes one for the team it was for):
// the list with each user's permission state, claim / unclaim, and "call
// back" (agent page). Used by both pages; reloads on `callbacks_changed`
// pushes (agent page) or on its own timer.

import { api, h, fmtWhen, maskNumber, errorMessage } from './common.js';

const $ = (id) => document.getElementById(id);

const stateWords = { open: 'Open', claimed: 'Claimed', closed: 'Closed' };

/** permText says whether an agent may call the user back now. */
export function permText(p) {
  if (!p) return 'Permission unknown';
  if (p.can_call) return 'May call now';
  if (p.can_request) return 'Needs a permission request';
  return 'May not call yet';
}

export class Callbacks {
  /**
   * @param {object} o
   * @param {string} o.list id of the <ul> to fill
   * @param {string} [o.count] id of the count element
   * @param {string} o.agent the signed-in agent ('' for a supervisor)
   * @param {boolean} o.mask mask numbers
   * @param {(t: object) => void} [o.callBack] puts a task in the dialer (agent page)
   * @param {(t: object) => boolean} [o.keep] filter (supervisor page)
   */
  constructor(o) {
    this.o = o;
    this.token = '';
    this.tasks = [];
    this.timer = 0;
    this.key = null;
  }

  start(token) {
    this.token = token;
    this.load();
  }

  stop() { clearTimeout(this.timer); this.token = ''; }

  async load() {
    clearTimeout(this.timer);
    if (!this.token) return;
    try {
      const r = await api(this.token, '/api/v1/callbacks');
      this.tasks = (r && r.callbacks) || [];
      this.render();
    } catch (e) {
      if (e.status === 404) { this.tasks = []; this.render(); return; }
    }
    this.timer = setTimeout(() => this.load(), 15000);
  }

  async move(t, op) {
    try {
      await api(this.token, `/api/v1/callbacks/${encodeURIComponent(t.id)}/${op}`, { method: 'POST' });
    } catch (e) {
      const el = $(this.o.list);
      if (el) el.dataset.error = errorMessage(e.body || e);
    }
    this.load();
  }

  render() {
    const ts = this.o.keep ? this.tasks.filter(this.o.keep) : this.tasks;
    const key = JSON.stringify([ts, this.o.mask]);
    if (key === this.key) return;
    this.key = key;
    const ul = $(this.o.list);
    if (!ul) return;
    const card = ul.closest('section');
    if (card) card.hidden = false;
    if (this.o.count) $(this.o.count).textContent = ts.length ? `(${ts.length})` : '';
    if (!ts.length) { ul.replaceChildren(h('li', { class: 'empty muted', text: 'No callbacks to make.' })); return; }
    ul.replaceChildren(...ts.map((t) => {
      const mine = t.agent && t.agent === this.o.agent;
      const p = t.permission;
      return h('li', { 'data-testid': 'callback-row', 'data-task-id': t.id, 'data-state': t.state },
        h('div', { class: 'grow' },
          h('div', {}, h('strong', { text: t.name || maskNumber(t.user, this.o.mask) }),
            h('span', { class: 'badge', 'data-testid': 'callback-team', text: ' ' + (t.brands && t.brands.length ? t.brands.join(', ') + ' · ' : '') + (t.team_name || t.team) })),
          h('div', { class: 'muted small', text: `${maskNumber(t.user, this.o.mask)} · ${t.missed} missed · last ${fmtWhen(t.updated_at)} · ${stateWords[t.state] || t.state}${t.agent ? ' by ' + t.agent : ''}` }),
          h('div', { class: 'small ' + (p && p.can_call ? 'ok' : 'muted'), 'data-testid': 'callback-permission', text: permText(p) })),
        this.o.agent && t.state === 'open' ? h('button', { type: 'button', class: 'btn small', 'data-testid': 'callback-claim', onclick: () => this.move(t, 'claim') }, 'Claim') : null,
        this.o.agent && mine ? h('button', { type: 'button', class: 'btn ghost small', 'data-testid': 'callback-unclaim', onclick: () => this.move(t, 'unclaim') }, 'Give back') : null,
        this.o.callBack && (mine || t.state === 'open') ? h('button', { type: 'button', class: 'btn small primary', 'data-testid': 'callback-call', onclick: () => this.o.callBack(t) }, 'Call back') : null);
    }));
  }
}

/**
 * Numbers loads GET /api/v1/routing: the agent's numbers (brands) for the
 * dialer's "call from" selector.
 */
export async function loadRouting(token) {
  try {
    return await api(token, '/api/v1/routing');
  } catch {
    return { numbers: [], teams: [] };
  }
}

/** fillFrom fills the dialer's "call from" <select> (shown with 2+ numbers). */
export function fillFrom(sel, numbers) {
  if (!sel) return;
  sel.replaceChildren(...numbers.map((n) => h('option', { value: n.phone_number_id, text: n.brand })));
  sel.closest('.dial-from').hidden = numbers.length < 2;
}
