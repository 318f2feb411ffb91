// The agent's call history: GET /api/v1/calls?agent=me with cursor paging.

import { api, maskNumber, fmtDuration, fmtMicros, fmtWhen, h, reasonText, outcomeText, mediaFailureText } from './common.js';
import { Timers } from './timers.js';

const $ = (id) => document.getElementById(id);

export class History {
  /** @param {() => {token: string, settings: object}} state */
  constructor(state) {
    this.state = state;
    this.cursor = '';
    this.timers = new Timers('history');
    this.later = 0;
  }

  wire() {
    $('history-refresh').addEventListener('click', () => this.load(false));
    $('history-more').addEventListener('click', () => this.load(true));
  }

  async load(more) {
    const { token } = this.state();
    if (!token) return;
    const q = new URLSearchParams({ agent: 'me', limit: '20' });
    if (more && this.cursor) q.set('cursor', this.cursor);
    const body = $('history-body');
    try {
      const res = await api(token, '/api/v1/calls?' + q);
      const calls = (res && res.calls) || [];
      if (!more) body.replaceChildren();
      for (const c of calls) body.append(this.row(c));
      if (!body.children.length) body.append(h('tr', { class: 'empty' }, h('td', { colspan: 5, class: 'muted', text: 'No calls yet.' })));
      this.cursor = (res && res.next_cursor) || '';
      $('history-more').hidden = !this.cursor;
    } catch (e) {
      if (!more) body.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 5, class: 'muted', text: `Could not load history (${e.message}).` })));
    }
  }

  /** Reloads now and once more in 3 s: the ledger may trail the call's end. */
  afterCall() {
    this.load(false);
    this.timers.clear(this.later);
    this.later = this.timers.timeout(() => this.load(false), 3000);
  }

  row(c) {
    const mask = this.state().settings.mask_numbers;
    const out = c.direction === 'business_initiated';
    const secs = c.gateway_duration_ms ? Math.round(c.gateway_duration_ms / 1000) : (c.meta_duration || 0);
    const who = c.user_name ? `${c.user_name} · ${maskNumber(c.user_phone, mask)}` : maskNumber(c.user_phone, mask);
    return h('tr', { 'data-testid': 'history-row', 'data-call-id': c.id, class: 'outcome-' + (c.outcome || '') },
      h('td', { text: fmtWhen(c.created_at) }),
      h('td', {}, h('span', { class: 'dir ' + (out ? 'out' : 'in'), title: out ? 'Outbound' : 'Inbound', 'aria-label': out ? 'Outbound' : 'Inbound', text: out ? '↗' : '↙' }), ' ', who),
      h('td', { text: c.answered_at || secs ? fmtDuration(secs) : '–' }),
      h('td', { title: reasonText[c.end_reason] || '' }, h('span', { class: 'badge ' + (c.outcome || ''), text: outcomeText[c.outcome] || c.outcome || '' }),
        c.media_failure ? h('span', { class: 'muted small', 'data-testid': 'media-failure', title: 'Why the audio failed', text: ' ⚠ ' + mediaFailureText(c.media_failure) }) : ''),
      h('td', { class: 'num', text: out ? fmtMicros(c.cost_micros || 0) : 'free' }),
    );
  }

  dispose() { this.timers.clearAll(); }
}
