// Shared helpers of the agent and supervisor pages: token, REST, formatting.

const TOKEN_KEY = 'callgw.token';

/** Takes the token from #token=… or ?token=…, stores it in sessionStorage and
 * removes it from the address bar; returns the stored token or ''. */
export function takeToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  const t = hash.get('token') || query.get('token');
  if (t) {
    sessionStorage.setItem(TOKEN_KEY, t);
    query.delete('token');
    const q = query.toString();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : ''));
  }
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
}

/** Decodes a JWT's claims for display only (the server verifies it). */
export function claims(token) {
  try {
    const p = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(p));
  } catch { return {}; }
}

export class HTTPError extends Error {
  constructor(status, body) {
    super((body && (body.message || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Calls the REST API with the bearer token; resolves to the JSON body. */
export async function api(token, path, opts = {}) {
  const res = await fetch(path, {
    method: opts.method || 'GET',
    headers: Object.assign({ 'Authorization': 'Bearer ' + token },
      opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    signal: opts.signal,
    cache: 'no-store',
  });
  let body = null;
  const text = await res.text();
  if (text) { try { body = JSON.parse(text); } catch { body = { message: text.trim() }; } }
  if (!res.ok) throw new HTTPError(res.status, body && body.error && typeof body.error === 'object' ? body.error : body);
  return body;
}

/** Shortens an already-masked or a full E.164 number for display. */
export function maskNumber(n, mask) {
  if (!n) return '';
  if (!mask || n.includes('*')) return n;
  const d = n.replace(/^\+/, '');
  if (d.length <= 6) return n;
  return '+' + d.slice(0, 2) + '*'.repeat(d.length - 5) + d.slice(-3);
}

/** Normalises a typed number to E.164, or '' when it cannot be one. */
export function toE164(s) {
  const t = (s || '').trim().replace(/[\s().-]/g, '').replace(/^00/, '+');
  return /^\+[1-9]\d{6,14}$/.test(t) ? t : '';
}

export function fmtDuration(sec) {
  sec = Math.max(0, Math.floor(sec || 0));
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  const mm = String(m).padStart(2, '0'), ss = String(s).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** Formats integer micro-USD as dollars with string arithmetic (no floats). */
export function fmtMicros(micros) {
  if (micros === null || micros === undefined || micros === '') return '';
  let s = String(Math.trunc(Number(micros)));
  const neg = s.startsWith('-');
  if (neg) s = s.slice(1);
  s = s.padStart(7, '0');
  const dollars = s.slice(0, -6).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  let frac = s.slice(-6, -2); // 4 decimals, truncated
  if (frac.endsWith('00')) frac = frac.slice(0, 2);
  return (neg ? '-$' : '$') + dollars + '.' + frac;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayTimeFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

/** "14:05" today, "Tue 24 Nov 14:05" otherwise. */
export function fmtWhen(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeFmt.format(d) : dayTimeFmt.format(d);
}

/** "in 3 h", "in 12 min", "tomorrow 10:00"… for a future time. */
export function fmtUntil(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const min = Math.round((d - Date.now()) / 60000);
  if (min <= 0) return 'now';
  if (min < 60) return `in ${min} min (${timeFmt.format(d)})`;
  return fmtWhen(iso);
}

/**
 * The text of an agent-protocol `error`: the server's `message`, as written
 * by the server (the page keeps no table of its own), with Meta's code when
 * there is one; a plain fallback only when the message is missing.
 */
export function errorMessage(m) {
  let s = (m && m.message) || `The request failed (${(m && m.code) || 'error'}).`;
  if (m && m.meta_code) s += ` (WhatsApp error ${m.meta_code})`;
  return s;
}

/** Words for call_ended.reason. */
export const reasonText = {
  agent_hangup: 'You hung up',
  user_hangup: 'The customer hung up',
  ring_timeout: 'Nobody answered in time',
  queue_abandoned: 'The caller hung up while waiting',
  queue_timeout: 'The caller waited too long',
  queue_full: 'The queue was full',
  ivr_hangup: 'Ended in the menu',
  transferred: 'Transferred',
  transfer_cancelled: 'The transfer was cancelled',
  no_agent: 'No agent was available',
  agent_rejected: 'Declined',
  media_timeout: 'The audio connection was lost',
  agent_lost: 'Your connection was lost',
  user_declined: 'The customer declined',
  user_no_answer: 'The customer did not answer',
  meta_error: 'WhatsApp ended the call with an error',
  drained: 'The server restarted',
  owner_lost: 'The server handling the call went away',
  setup_failed: 'The call could not be set up',
  stale: 'WhatsApp’s answer came too late',
};

export const outcomeText = {
  answered: 'Answered', missed: 'Missed', declined: 'Declined', unanswered: 'Not answered', failed: 'Failed',
};

/** Tiny element builder: h('div', {class:'x', 'data-testid':'y'}, child…). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function initials(name, number) {
  const n = (name || '').trim();
  if (n) return n.split(/\s+/).slice(0, 2).map((w) => w[0]).join('').toUpperCase();
  return (number || '#').replace(/\D/g, '').slice(-2) || '#';
}

/**
 * runningCost is what a connected business-initiated call costs after
 * elapsedS seconds, as billing computes it (billing.Quote.CostAt): begun
 * pulses count whole, the whole call at the tier reached now.
 */
export function runningCost(price, elapsedS) {
  const inc = Math.max(price.increment_s || 1, 1);
  const secs = Math.max(0, Math.ceil(elapsedS));
  const billed = Math.ceil(secs / inc) * inc;
  const after = (price.used_seconds || 0) + billed;
  let rate = 0;
  (price.tiers || []).forEach((t, i) => { if (i === 0 || after > t.from_minutes * 60) rate = t.rate_micros; });
  return billed > 0 && rate > 0 ? Math.ceil(billed * rate / 60) : 0;
}

/** Words for a record's media_failure ("<leg>:<cause>", see docs/openapi.yaml). */
export function mediaFailureText(mf) {
  const [leg, cause] = String(mf).split(':');
  const legs = { whatsapp: 'WhatsApp side', agent: 'agent side' };
  const causes = {
    no_remote_candidates: 'no network candidates arrived',
    nothing_from_peer: 'nothing arrived from the other side (firewall, NAT, public IP?)',
    checks_unanswered: 'our connectivity checks went unanswered',
    ice_failed: 'no network path worked',
    dtls_failed: 'the encrypted session never started',
    no_media_from_peer: 'connected, but no audio ever arrived',
    media_stopped: 'audio arrived, then stopped',
    unknown: 'cause unknown',
  };
  return `${legs[leg] || leg}: ${causes[cause] || cause || ''}`;
}
