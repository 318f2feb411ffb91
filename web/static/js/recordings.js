// Call history with recordings on the supervisor page: the last calls
// (GET /api/v1/calls, whose `recordings` map gives each call's recording
// status), a player per recorded direction or Meta's mixed recording
// (<audio> on the short-lived signed link of GET /api/v1/calls/{id}/recordings),
// and the transcript as speaker turns (GET /api/v1/calls/{id}/transcript).
// Every listing, link and transcript is written to the server's audit log.
import { api, h, fmtDuration, maskNumber } from './common.js';

const kindWords = { recording: "Meta's recording", transcript: 'Transcript', user_audio: 'Caller', business_audio: 'Agent' };
const consentWords = { notice: 'Notice', explicit_given: 'Agreed (pressed 1)', explicit_refused: 'Refused', none: 'Not asked' };
const test = { history: null, players: 0, transcript: null, error: null };

let token = '';
let mask = true;
let timer = 0;
let section = null;

/** startRecordings adds the call history card to the page and loads it. */
export function startRecordings(tok, masked) {
  token = tok;
  mask = masked;
  window.callgwTest = window.callgwTest || {};
  window.callgwTest.recordings = test;
  if (!section) {
    section = h('section', { class: 'card history', 'aria-labelledby': 'history-h', 'data-testid': 'call-history' },
      h('h2', { id: 'history-h' }, 'Call history ',
        h('button', { type: 'button', class: 'btn small', 'data-testid': 'history-refresh', onclick: () => load(true) }, 'Refresh')),
      h('div', { id: 'history' }));
    document.getElementById('app').append(section);
  }
  load(true);
}

/** stopRecordings stops the refresh (sign-out). */
export function stopRecordings() {
  clearTimeout(timer);
  token = '';
}

function playing() {
  return [...section.querySelectorAll('audio')].some((a) => !a.paused) || section.querySelector('.rec-detail');
}

async function load(force) {
  clearTimeout(timer);
  if (!token) return;
  if (force || !playing()) {
    try {
      const res = await api(token, '/api/v1/calls?limit=50');
      test.history = res;
      test.error = null;
      render(res || {});
    } catch (e) {
      test.error = e.message;
      document.getElementById('history').replaceChildren(h('span', { class: 'muted', text: `Could not load the call history (${e.message}).` }));
    }
  }
  timer = setTimeout(() => load(false), 15000);
}

function render(res) {
  const calls = res.calls || [];
  const recs = res.recordings || {};
  const head = h('thead', {}, h('tr', {}, ...['Ended', 'Direction', 'Caller', 'Agent', 'Talk', 'Consent', 'Recordings'].map((t) => h('th', { scope: 'col', text: t }))));
  const body = h('tbody', {});
  for (const c of calls) {
    const out = c.direction === 'business_initiated';
    body.append(h('tr', { 'data-testid': 'history-row', 'data-call-id': c.id },
      h('td', { text: c.ended_at ? new Date(c.ended_at).toLocaleString() : '' }),
      h('td', { text: out ? '↗ Outbound' : '↙ Inbound' }),
      h('td', { text: maskNumber(c.user_phone || c.user_id || '', mask) }),
      h('td', { text: c.agent || '—' }),
      h('td', { class: 'num', text: fmtDuration(Math.round((c.gateway_duration_ms || 0) / 1000)) }),
      h('td', { 'data-testid': 'history-consent', text: consentWords[c.recording_consent] || '—' }),
      h('td', {}, recordingCell(c.id, recs[c.id] || []))));
  }
  if (!calls.length) body.append(h('tr', { class: 'empty' }, h('td', { colspan: 7, class: 'muted', text: 'No calls yet.' })));
  document.getElementById('history').replaceChildren(h('table', { class: 'table', 'data-testid': 'history-table' }, head, body));
}

function recordingCell(id, statuses) {
  if (!statuses.length) return h('span', { class: 'muted', text: '—' });
  const stored = statuses.some((s) => s.status === 'stored');
  const words = statuses.map((s) => {
    const w = `${kindWords[s.kind] || s.kind}: ${s.status}`;
    return h('span', { class: 'rec-status ' + s.status, 'data-testid': 'rec-status', 'data-kind': s.kind, 'data-status': s.status,
      title: s.last_error ? `${s.attempts || 0} attempt(s): ${s.last_error}` : '', text: w });
  });
  const cell = h('div', { class: 'rec-cell' }, ...words);
  if (stored) {
    cell.append(h('button', { type: 'button', class: 'btn small', 'data-testid': 'rec-open', onclick: (e) => open(id, e.currentTarget) }, 'Play'));
  }
  return cell;
}

// sourceFor is a URL an <audio> element may load under the page's CSP
// (media-src 'self' blob:): the signed link when it is ours, else the
// bytes through the API as a blob.
async function sourceFor(e) {
  if (e.url && new URL(e.url, location.href).origin === location.origin) return e.url;
  const res = await fetch(e.stream_url, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return URL.createObjectURL(await res.blob());
}

async function open(id, button) {
  const row = button.closest('tr');
  const next = row.nextElementSibling;
  if (next && next.classList.contains('rec-detail')) { next.remove(); return; }
  const box = h('div', { class: 'rec-players' });
  const detail = h('tr', { class: 'rec-detail', 'data-testid': 'rec-detail', 'data-call-id': id }, h('td', { colspan: 7 }, box));
  row.after(detail);
  try {
    const res = await api(token, '/api/v1/calls/' + encodeURIComponent(id) + '/recordings');
    for (const e of res.entries || []) {
      if (e.status !== 'stored') continue;
      if (e.kind === 'transcript') {
        box.append(await transcriptView(id));
        continue;
      }
      const audio = h('audio', { controls: true, preload: 'metadata', 'data-testid': 'rec-audio', 'data-kind': e.kind });
      audio.src = await sourceFor(e);
      box.append(h('figure', { class: 'rec-player' }, h('figcaption', { text: kindWords[e.kind] || e.kind }), audio));
      test.players++;
    }
  } catch (err) {
    test.error = err.message;
    box.append(h('span', { class: 'muted', text: `Could not load the recordings (${err.message}).` }));
  }
}

async function transcriptView(id) {
  const t = await api(token, '/api/v1/calls/' + encodeURIComponent(id) + '/transcript');
  test.transcript = t;
  const turns = t.turns || [];
  const at = (s) => fmtDuration(Math.floor(s || 0));
  return h('div', { class: 'transcript', 'data-testid': 'transcript' },
    h('h3', { text: `Transcript${t.language ? ' (' + t.language + ')' : ''}` }),
    turns.length
      ? h('ol', { class: 'turns' }, ...turns.map((u) => h('li', { class: 'turn ' + (u.speaker === 'Business' ? 'business' : 'customer'), 'data-testid': 'transcript-turn' },
        h('span', { class: 'muted small', text: `${at(u.start)}–${at(u.end)} · ${u.speaker === 'Business' ? 'Agent' : 'Caller'}` }),
        h('p', { text: u.text }))))
      : h('p', { class: 'muted', text: 'No speech was recognised (unsupported language?).' }));
}
