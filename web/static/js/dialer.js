// The dialer: number input, permission query (as you type, debounced) and
// request, live permission pushes, and dial. Its state is `dial` in the
// store: {to, callId, perm, hint, message}; callId names an earlier call
// when calling back a caller whose number is masked.

import { toE164, fmtWhen, fmtUntil, h, errorMessage } from './common.js';
import { Timers } from './timers.js';
import { acquireMic, releaseMic } from './media.js';

const $ = (id) => document.getElementById(id);

const statusWords = {
  temporary: 'Temporary permission', permanent: 'Permanent permission', none: 'No permission yet', no_permission: 'No permission yet',
  pending: 'Request sent, waiting for the customer', requested: 'Request sent, waiting for the customer',
  rejected: 'The customer declined calls', expired: 'Permission expired', revoked: 'Permission revoked',
};

// Words for permission.reason. The permission object carries a code and no
// text (unlike `error`, whose message the page shows as the server wrote it).
const reasonWords = {
  no_permission: 'The customer has not allowed calls yet: send a permission request first.',
  expired: 'The customer’s permission has expired: request it again.',
  revoked: 'The customer withdrew their permission.',
  request_limit_24h: 'A permission request was already sent in the last 24 hours.',
  request_limit_7d: 'Two permission requests were already sent in the last 7 days.',
  request_limit_meta: 'WhatsApp limits permission requests to this number for now.',
  connected_call_limit: 'The limit of connected calls with this customer for the last 24 hours is reached.',
  permanent_exists: 'The customer already gave permanent permission: just call.',
  redis_unavailable: 'Permission state is unavailable right now: try again shortly.',
  meta_unavailable: 'Permission state is unavailable right now: try again shortly.',
};

const DIAL_KINDS = new Set(['dial', 'permission_request', 'permission_query']);

export class Dialer {
  /**
   * @param {object} o
   * @param {import('./store.js').Store} o.store
   * @param {(msg: object, kind?: string) => string|null} o.send
   * @param {(text: string, isError?: boolean) => void} o.notice
   * @param {() => void} o.unlockSound
   */
  constructor({ store, send, notice, unlockSound }) {
    this.store = store;
    this.send = send;
    this.notice = notice;
    this.unlockSound = unlockSound;
    this.timers = new Timers('dialer');
    this.debounce = 0;
  }

  wire() {
    $('dial-form').addEventListener('submit', (e) => { e.preventDefault(); this.query(); });
    $('dial-input').addEventListener('input', () => {
      this.timers.clear(this.debounce);
      this.debounce = this.timers.timeout(() => this.query(), 500);
    });
    $('request-permission').addEventListener('click', () => this.request());
    $('dial-call').addEventListener('click', () => this.dial());
    $('dial-from').addEventListener('change', () => { if (this.d.to) { this.patch({ perm: null }); this.query(); } });
  }

  get d() { return this.store.get().dial; }

  patch(p) { this.store.update((s) => { Object.assign(s.dial, p); }); }

  // target names the dialer's number for the server: the number itself, or
  // the earlier call whose (masked) number the server looks up.
  target() {
    return { ...(this.d.callId ? { call_id: this.d.callId } : { to: this.d.to }), ...this.from() };
  }

  /** from: the business number chosen in "Call from" (permission and the call are per number). */
  from() {
    const sel = $('dial-from');
    return sel && !sel.closest('.dial-from').hidden && sel.value ? { from: sel.value } : {};
  }

  query() {
    this.timers.clear(this.debounce);
    const typed = $('dial-input').value;
    if (this.d.callId && typed === this.d.to) {
      this.patch({ message: '', hint: 'Checking…' });
      this.send({ type: 'permission_query', ...this.target() }, 'permission_query');
      return;
    }
    const to = toE164(typed);
    if (!to) {
      this.patch({ callId: '', to: '', perm: null, message: '',
        hint: typed.trim() ? 'That is not a phone number in international format, e.g. +44 7700 900123.' : '' });
      return;
    }
    this.patch({ callId: '', perm: to === this.d.to ? this.d.perm : null, to, message: '', hint: 'Checking…' });
    this.send({ type: 'permission_query', to, ...this.from() }, 'permission_query');
  }

  request() {
    if (!this.d.to) return;
    this.send({ type: 'permission_request', ...this.target() }, 'permission_request');
  }

  dial() {
    if (!this.d.to || this.store.get().call) return;
    this.unlockSound();
    acquireMic().catch(() => {});
    if (this.send({ type: 'dial', ...this.target() }, 'dial') !== null) this.patch({ message: '' });
  }

  /** Puts a missed caller in the dialer; a masked number is named by its call. */
  callBack(m) {
    const input = $('dial-input');
    const masked = !m.from || m.from.includes('*');
    input.value = m.from || m.name || 'caller';
    input.focus();
    this.patch({ perm: null, callId: masked ? m.id : '', to: masked ? input.value : '' });
    this.query();
  }

  onPermission(m, req) {
    if (req && req.kind === 'permission_request') this.notice('Permission request sent. You will see the reply here.');
    const d = this.d;
    const forDial = (m.to && m.to === d.to) || (m.call_id && m.call_id === d.callId);
    if (forDial) this.patch({ perm: m.permission || null, hint: '' });
  }

  /** Shows a refused dial or permission request; returns whether it was one. */
  onError(m, req) {
    if (!req || !DIAL_KINDS.has(req.kind)) return false;
    if (req.kind === 'dial') releaseMic();
    this.patch({ message: errorMessage(m), hint: this.d.hint === 'Checking…' ? '' : this.d.hint });
    return true;
  }

  render(s) {
    const d = s.dial;
    const perm = d.perm;
    const el = $('permission-state');
    $('dial-message').textContent = d.message || '';
    $('request-permission').disabled = !(perm && perm.can_request);
    $('dial-call').disabled = !(perm && perm.can_call) || !!s.call;
    const key = JSON.stringify([perm, d.hint]);
    if (key === this.key) return;
    this.key = key;
    el.replaceChildren();
    el.className = 'permission';
    if (!perm) {
      delete el.dataset.status;
      el.append(h('span', { class: 'muted', text: d.hint || 'Enter a number to see whether you may call it.' }));
      return;
    }
    el.classList.add(perm.can_call ? 'ok' : 'no');
    el.dataset.status = perm.status || '';
    const lines = [];
    if (perm.can_call) {
      lines.push(perm.status === 'permanent' ? 'You may call: permanent permission.'
        : perm.expires_at ? `You may call: granted until ${fmtWhen(perm.expires_at)}.` : 'You may call.');
      if (perm.calls_left_24h !== undefined && perm.calls_left_24h !== null) lines.push(`${perm.calls_left_24h} call${perm.calls_left_24h === 1 ? '' : 's'} left today.`);
    } else {
      lines.push((statusWords[perm.status] || 'You may not call this number yet') + '.');
      if (perm.reason) lines.push(reasonWords[perm.reason] || perm.reason);
      if (perm.can_request) {
        lines.push(`${perm.requests_left_24h ?? '?'} permission request${perm.requests_left_24h === 1 ? '' : 's'} left today, ${perm.requests_left_7d ?? '?'} this week.`);
      } else if (perm.next_request_at) {
        lines.push(`Next request possible ${fmtUntil(perm.next_request_at)}.`);
      }
    }
    el.append(h('strong', { text: lines[0] }), ...lines.slice(1).map((l) => h('span', { class: 'line', text: ' ' + l })));
  }

  dispose() { this.timers.clearAll(); }
}
