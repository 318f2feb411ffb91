// The agent softphone: agent protocol v1 over /ws/agent (docs/agent-protocol.md).
// This module wires the others together and runs call control:
//   store.js    the page's state, with explicit subscriptions
//   protocol.js the websocket client (hello, reconnect, ping, ref matching)
//   media.js    the WebRTC leg of a call (answer, ICE, stats, levels)
//   view.js     rendering (ringing cards, in-call view, missed calls, notices)
//   dialer.js   number input, permission query/request, dial
//   history.js  the agent's call history (REST)
//   timers.js   owned timers, cleared on call end, socket close and page hide
import { takeToken, setToken, claims, api, fmtDuration, errorMessage, reasonText, h } from './common.js';
import { Sound } from './audio.js';
import { Store } from './store.js';
import { timerCounts } from './timers.js';
import { AgentSocket } from './protocol.js';
import { CallMedia, acquireMic, releaseMic, mediaErrorText } from './media.js';
import { View } from './view.js';
import { Dialer } from './dialer.js';
import { History } from './history.js';
import { initTransfer } from './transfer.js';
import { initRecording } from './recording.js';
import { Callbacks, loadRouting, fillFrom } from './callbacks.js';
import { hoursNextTo } from './hours.js';

const $ = (id) => document.getElementById(id);
const sound = new Sound();

// Call states in which the agent owns the call and has a media leg to keep.
const OWNED = new Set(['dialing', 'connecting', 'connected']);
// Requests whose `call` and `offer` replies make this tab the call's owner.
const OWNING = new Set(['accept', 'resume', 'dial']);

const store = new Store({
  token: '', agent: '', role: '', presence: 'away',
  welcomed: false, // the current socket got its welcome
  shown: false, // a welcome arrived since sign-in (the app is shown)
  conn: { cls: 'offline', text: 'Offline' },
  signinError: '',
  settings: { mask_numbers: true, ring_timeout_s: 25, demo: false },
  iceServers: [],
  ringing: new Map(), // call id -> CallInfo
  accepting: new Set(), // call ids this tab sent accept for
  call: null, // see newCall
  missed: [],
  lastCall: '',
  soundLocked: sound.locked,
  dial: { to: '', callId: '', perm: null, hint: '', message: '' },
});

function newCall(info, local) {
  return {
    info, // the server's CallInfo
    local, // this tab holds the call's media leg (it sent the accept, dial or resume)
    muted: false, ending: false, connectedAt: 0, quality: null, callerKeys: '', dtmfSent: '',
  };
}

let socket = null;
let media = null; // CallMedia of the call whose leg this tab holds
let lastResume = 0;
let reloading = false;
// Gateway candidates and offers that arrive before the call they belong to
// is known here (an outbound call's offer may overtake the dial's reply).
const early = new Map(); // call id -> {ice: [], offer: null}

// window.callgwTest is read by end-to-end tests (see web/README.md).
const test = {
  state: 'signed_out', callId: '', presence: 'away', ringing: false, ringingIds: [], media: '',
  remoteLevel: 0, remoteFreq: 0, localLevel: 0, muted: false, stats: null,
  connection: 'new', soundLocked: sound.locked, lastEnded: null, lastError: null, dtmfSent: '', callerKeys: '',
  offers: 0, // gateway offers this tab answered (an offer whose ref another tab sent is not)
};
Object.defineProperty(test, 'timers', { get: timerCounts, enumerable: true });
window.callgwTest = test;

const view = new View({
  accept, decline,
  callBack: (m) => dialer.callBack(m),
  dismissMissed: (id) => store.update((s) => { s.missed = s.missed.filter((x) => x.id !== id); saveMissed(s); }),
});
const dialer = new Dialer({ store, send, notice: (t, e) => view.notice(t, e), unlockSound: () => sound.unlock() });
const callLog = new History(() => store.get());
initTransfer({ store, send, notice: (t, e) => view.notice(t, e), test }); // hold and transfer (transfer.js)
const recording = initRecording({ store, send, notice: (t, e) => view.notice(t, e), test }); // local recording (recording.js)
let numbers = []; // the business numbers this agent may call from (GET /api/v1/routing)
const callbacks = new Callbacks({ list: 'callbacks-list', count: 'callbacks-count', agent: '', mask: true, callBack: (t) => {
  if (t.state === 'open') callbacks.move(t, 'claim');
  const n = numbers.find((x) => (t.brands || []).includes(x.brand));
  if (n) $('dial-from').value = n.phone_number_id;
  dialer.callBack({ id: t.last_call, from: t.call_back || t.user, name: t.name });
} });
async function startRouting(s) {
  Object.assign(callbacks.o, { agent: s.agent, mask: !!s.settings.mask_numbers });
  callbacks.start(s.token);
  numbers = (await loadRouting(s.token)).numbers || [];
  fillFrom($('dial-from'), numbers);
  hoursNextTo($('dial-from'), numbers); // call hours of the chosen number (hours.js)
}

store.subscribe((s) => view.render(s));
store.subscribe((s) => dialer.render(s));
store.subscribe((s) => {
  if (s.ringing.size && !s.call) sound.startRing(); else sound.stopRing();
  const c = s.call;
  Object.assign(test, {
    ringing: sound.ringing,
    ringingIds: [...s.ringing.keys()],
    presence: s.presence,
    state: !s.token ? 'signed_out' : c ? (c.ending ? 'ending' : c.info.state) : s.ringing.size ? 'ringing' : s.welcomed ? 'idle' : 'offline',
    callId: c ? c.info.id : s.ringing.size ? s.ringing.keys().next().value : '',
    media: c ? c.info.media || '' : '',
    muted: c ? c.muted : false,
    dtmfSent: c ? c.dtmfSent : '',
    callerKeys: c ? c.callerKeys : '',
    soundLocked: s.soundLocked,
  });
});

// send sends a protocol message; it returns the ref ('' without kind), or
// null (and says so) when the socket is not connected.
function send(msg, kind) {
  const r = socket ? socket.send(msg, kind) : null;
  if (r === null) view.notice('Not connected to callgw — reconnecting.');
  return r;
}

// ---------- protocol messages ----------

function onMessage(m, req) {
  switch (m.type) {
    case 'welcome': return onWelcome(m);
    case 'presence': return store.set({ presence: m.status });
    case 'call_offered': return addRing(m.call);
    case 'call_taken': return removeRing(m.call_id);
    case 'callbacks_changed': return callbacks.load();
    case 'call': return onCall(m.call, req);
    case 'call_ended': return onEnded(m);
    case 'offer': return onOffer(m, req);
    case 'ice': return onRemoteIce(m);
    case 'permission': return dialer.onPermission(m, req);
    case 'dtmf': return onCallerKey(m);
    // Fresh TURN credentials: used by peer connections created from now on.
    case 'ice_servers': return store.set({ iceServers: Array.isArray(m.ice_servers) ? m.ice_servers : store.get().iceServers });
    case 'error': return onError(m, req);
    default: return undefined; // pong and future types
  }
}

function onStatus(st) {
  if (st === 'connecting') store.set({ conn: { cls: 'connecting', text: 'Connecting…' } });
  else if (st === 'online') store.set({ conn: { cls: 'online', text: 'Online' } });
  else store.update((s) => { s.conn = { cls: 'offline', text: 'Reconnecting…' }; s.welcomed = false; s.accepting.clear(); });
}

function onRefused(code, err) {
  const fallback = code === 4002 ? 'This page is older than the server. Reload the page.'
    : 'Your sign-in is not valid or has expired. Please sign in again.';
  signOut(err && err.message ? 'Sign-in refused: ' + errorMessage(err) : fallback);
}

function onWelcome(m) {
  const calls = Array.isArray(m.calls) ? m.calls : [];
  const seen = new Set(calls.map((c) => c.id));
  store.update((s) => {
    s.welcomed = true;
    s.shown = true;
    s.signinError = '';
    s.agent = m.agent || s.agent;
    s.role = m.role || '';
    s.presence = m.presence || 'away';
    s.iceServers = Array.isArray(m.ice_servers) ? m.ice_servers : [];
    Object.assign(s.settings, m.settings || {});
    s.missed = loadMissed(s.agent);
    for (const id of [...s.ringing.keys()]) if (!seen.has(id)) s.ringing.delete(id);
  });
  const cur = store.get().call;
  if (cur && !seen.has(cur.info.id)) endLocal(cur.info.id, 'The call ended while you were disconnected.');
  for (const c of calls) {
    const s = store.get();
    if (c.state === 'ringing' || c.state === 'waiting') { store.update((st) => st.ringing.set(c.id, c)); continue; }
    if (c.agent !== s.agent || !OWNED.has(c.state)) continue;
    if (s.call && s.call.info.id === c.id) {
      setInfo(c);
      if (s.call.local && !(media && media.alive)) resume(c.id);
    } else if (!s.call) {
      // After a reload: take the call back and ask the gateway for a new leg.
      store.update((st) => { st.call = newCall(c, true); });
      setInfo(c);
      resume(c.id);
    }
  }
  if (sessionStorage.getItem('callgw.presence') === 'available' && store.get().presence !== 'available') {
    send({ type: 'presence', status: 'available' }, 'presence');
  }
  callLog.load(false);
  startRouting(store.get());
}

// ---------- ringing ----------

function addRing(c) {
  if (!c || !c.id) return;
  const cur = store.get().call;
  if (cur && cur.info.id === c.id) return;
  store.update((s) => s.ringing.set(c.id, c));
}

function removeRing(id) {
  store.update((s) => { s.accepting.delete(id); s.ringing.delete(id); });
}

function accept(id) {
  sound.unlock();
  const s = store.get();
  if (!s.ringing.has(id) || s.accepting.has(id)) return;
  if (s.presence !== 'available') {
    sessionStorage.setItem('callgw.presence', 'available');
    send({ type: 'presence', status: 'available' }, 'presence');
  }
  if (send({ type: 'accept', call_id: id }, 'accept') !== null) {
    store.update((st) => st.accepting.add(id));
    acquireMic().catch(() => {}); // ask for the microphone while the gateway prepares the offer
  }
}

function decline(id) {
  sound.unlock();
  if (send({ type: 'reject', call_id: id }, 'reject') !== null) removeRing(id);
}

// ---------- calls ----------

// setInfo stores a new CallInfo of the current call (and when it was answered).
function setInfo(c) {
  store.update((s) => {
    if (!s.call || s.call.info.id !== c.id) return;
    s.call.info = c;
    if (c.state === 'connected' && !s.call.connectedAt) {
      const t = Date.parse(c.connected_at);
      s.call.connectedAt = isNaN(t) ? Date.now() : Math.min(t, Date.now());
    }
  });
}

function onCall(c, req) {
  if (!c || !c.id) return;
  if (c.state === 'ringing') { addRing(c); return; }
  if (c.state === 'ended') return; // the end is call_ended
  if (req && req.kind === 'dial') req.callId = c.id;
  if (req && req.kind === 'dial' && c.warning === 'outside_call_hours') view.notice('This number is outside its call hours: the customer may not expect a call now.', true);
  const s = store.get();
  const mine = (!!req && OWNING.has(req.kind)) || s.accepting.has(c.id);
  if (s.call && s.call.info.id !== c.id && s.call.local) {
    removeRing(c.id); // one call per tab; another tab handles that one
    return;
  }
  store.update((st) => {
    st.ringing.delete(c.id);
    st.accepting.delete(c.id);
    if (!st.call || st.call.info.id !== c.id) st.call = newCall(c, mine);
    if (mine) st.call.local = true;
  });
  setInfo(c);
  // An offer that came before this tab knew the call was its own (an
  // outbound call's offer may overtake the dial's reply) is answered now.
  const e = early.get(c.id);
  if (mine && e && e.offer && !(media && media.callId === c.id)) {
    early.delete(c.id);
    startMedia(c.id, e.offer.sdp, e.ice);
  }
}

function onEnded(m) {
  const s = store.get();
  const rang = s.ringing.get(m.call_id);
  store.update((st) => {
    st.ringing.delete(m.call_id);
    st.accepting.delete(m.call_id);
    if (rang && (m.outcome === 'missed' || ['ring_timeout', 'no_agent', 'user_hangup', 'agent_rejected'].includes(m.reason))) addMissed(st, rang);
  });
  early.delete(m.call_id);
  if (socket) socket.forgetCall(m.call_id);
  if (s.call && s.call.info.id === m.call_id) {
    const words = reasonText[m.reason] || 'Call ended';
    const extra = m.message ? ` — ${m.message}` : '';
    endLocal(m.call_id, `${words}${m.duration_s ? ' · ' + fmtDuration(m.duration_s) : ''}${extra}`);
    test.lastEnded = { callId: m.call_id, reason: m.reason, outcome: m.outcome, duration_s: m.duration_s || 0 };
    callLog.afterCall();
  }
}

// endLocal forgets the current call here: its media (and their timers) go.
function endLocal(id, text) {
  const c = store.get().call;
  if (!c || c.info.id !== id) return;
  if (media) { media.close(); media = null; }
  releaseMic();
  early.delete(id);
  Object.assign(test, { stats: null, remoteLevel: 0, remoteFreq: 0, localLevel: 0, connection: 'closed' });
  store.update((s) => { s.call = null; s.lastCall = text; });
}

function hangup() {
  const c = store.get().call;
  if (!c) return;
  if (send({ type: 'hangup', call_id: c.info.id }, 'hangup') === null) endLocal(c.info.id, 'Call ended (disconnected)');
  else store.update((s) => { if (s.call) s.call.ending = true; });
}

function resume(id) {
  lastResume = Date.now();
  store.update((s) => { if (s.call && s.call.info.id === id) s.call.local = true; });
  send({ type: 'resume', call_id: id }, 'resume');
}

function setMuted(on) {
  if (!store.get().call) return;
  if (media) media.setMuted(on);
  store.update((s) => { s.call.muted = on; });
}

function sendDigit(d) {
  const c = store.get().call;
  if (!c || c.info.state !== 'connected') return;
  if (send({ type: 'dtmf', call_id: c.info.id, digits: d }, 'dtmf') !== null) {
    sound.dtmf(d);
    store.update((s) => { s.call.dtmfSent += d; });
  }
}

// onCallerKey shows the keys the WhatsApp user presses (e.g. an account
// number typed on the dial pad).
function onCallerKey(m) {
  const c = store.get().call;
  if (!c || c.info.id !== m.call_id) return;
  store.update((s) => { s.call.callerKeys = (s.call.callerKeys + m.digit).slice(-24); });
  view.notice(`Caller pressed ${store.get().call.callerKeys}`);
}

// ---------- media ----------

function onOffer(m, req) {
  // The offer carries the ref of the accept, resume or dial that led to it:
  // only the tab that sent it answers. Without a ref (an older server, or an
  // offer pushed before the dial's reply) the tab that holds the call does.
  const byRef = m.ref ? !!req && OWNING.has(req.kind) : null;
  const c = store.get().call;
  const known = !!c && c.info.id === m.call_id;
  const mine = byRef !== null ? byRef : known && c.local;
  if (!known || !mine) {
    // Keep it (unless it is another tab's) for the `call` that may make this
    // tab the owner: an outbound call's offer may overtake the dial's reply.
    if (byRef !== false) earlyFor(m.call_id).offer = m;
    return;
  }
  if (!c.local) store.update((s) => { s.call.local = true; });
  const e = early.get(m.call_id);
  early.delete(m.call_id);
  startMedia(m.call_id, m.sdp, e ? e.ice : []);
}

function earlyFor(id) {
  let e = early.get(id);
  if (!e) {
    if (early.size >= 4) early.delete(early.keys().next().value);
    e = { ice: [], offer: null };
    early.set(id, e);
  }
  return e;
}

async function startMedia(id, sdp, ice) {
  test.offers++;
  if (!media || media.callId !== id) {
    if (media) media.close();
    media = new CallMedia({
      callId: id, iceServers: store.get().iceServers, sound, audio: $('remote-audio'),
      send: (msg, kind) => (socket ? socket.send(msg, kind) : null),
      on: {
        connection: (st) => { test.connection = st; },
        levels: (l) => {
          view.levels(l);
          Object.assign(test, { localLevel: l.inRms, remoteLevel: l.outRms, remoteFreq: l.freq });
        },
        stats: (st) => {
          test.stats = st;
          store.update((s) => { if (s.call && s.call.info.id === id) s.call.quality = st; });
        },
        failed: () => {
          const c = store.get().call;
          if (!c || c.info.id !== id || Date.now() - lastResume < 10000) return;
          view.notice('Audio connection lost — reconnecting…');
          resume(id);
        },
        autoplayBlocked: () => store.set({ soundLocked: true }),
      },
    });
    media.setMuted(store.get().call.muted);
  }
  for (const cand of ice || []) media.addRemoteIce(cand);
  const m = media;
  try {
    await m.answer(sdp);
  } catch (e) {
    if (m.closed || media !== m) return; // the call ended or a newer offer replaced this one
    console.error('callgw: media setup', e);
    view.notice(mediaErrorText(e), true);
    const c = store.get().call;
    if (media === m && c && c.info.id === id) hangup();
  }
}

function onRemoteIce(m) {
  if (media && media.callId === m.call_id) { media.addRemoteIce(m.candidate); return; }
  // Not applied here (yet): kept, bounded, until an offer is, or the call ends.
  const e = earlyFor(m.call_id);
  if (e.ice.length < 64) e.ice.push(m.candidate);
}

// ---------- errors ----------

function onError(m, req) {
  const kind = req ? req.kind : '';
  test.lastError = { code: m.code, message: m.message || '', kind };
  const text = errorMessage(m); // the server's words
  const c = store.get().call;
  const callId = req ? req.msg.call_id : '';
  if (recording.onError(m, req)) return; // recording_stop refused (recording.js)
  if (kind === 'accept') {
    store.update((s) => s.accepting.delete(callId));
    if (['call_taken', 'unknown_call', 'out_of_turn', 'not_your_call'].includes(m.code)) removeRing(callId);
    releaseMic();
    view.notice(text, true);
  } else if (dialer.onError(m, req)) {
    // shown in the dialer
  } else if (kind === 'resume' && c && c.info.id === callId && ['unknown_call', 'out_of_turn'].includes(m.code)) {
    endLocal(callId, 'The call ended while you were away.');
  } else if (kind === 'hangup' && c && c.info.id === callId && m.code === 'unknown_call') {
    endLocal(callId, 'Call ended');
  } else {
    if (kind === 'hangup') store.update((s) => { if (s.call) s.call.ending = false; });
    view.notice(text, true);
  }
}

// ---------- missed calls ----------

function missedKey(agent) { return 'callgw.missed.' + agent; }

function loadMissed(agent) {
  try { return JSON.parse(localStorage.getItem(missedKey(agent)) || '[]'); } catch { return []; }
}

function saveMissed(s) {
  localStorage.setItem(missedKey(s.agent), JSON.stringify(s.missed));
}

function addMissed(s, c) {
  if (s.missed.some((x) => x.id === c.id)) return;
  s.missed = [{ id: c.id, from: c.from || '', name: c.name || '', at: c.created_at || new Date().toISOString() }, ...s.missed].slice(0, 30);
  saveMissed(s);
}

// ---------- sign-in and teardown ----------

function signOut(reason) {
  if (socket) { socket.stop(); socket = null; }
  const c = store.get().call;
  if (c) endLocal(c.info.id, '');
  early.clear();
  setToken('');
  sessionStorage.removeItem('callgw.presence');
  store.update((s) => {
    s.ringing.clear();
    s.accepting.clear();
    Object.assign(s, { welcomed: false, shown: false, token: '', agent: '', signinError: reason || '', conn: { cls: 'offline', text: 'Signed out' } });
  });
}

function start(token) {
  store.set({ token, agent: claims(token).sub || '', signinError: '' });
  socket = new AgentSocket({ token, onMessage, onStatus, onRefused });
  socket.connect();
}

// teardown stops everything that runs by itself: the socket (and its ping
// and reconnect timers), the call's media (levels, stats), the ringtone,
// the view's tick, the dialer's debounce and the history's reload.
function teardown() {
  if (socket) socket.stop();
  if (media) { media.close(); media = null; }
  sound.stopRing();
  sound.timers.clearAll();
  view.dispose();
  dialer.dispose();
  callLog.dispose();
  callbacks.stop();
}

// ---------- wiring ----------

function buildKeypad() {
  const pad = $('keypad');
  for (const k of ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#']) {
    pad.append(h('button', { type: 'button', class: 'key', 'data-testid': 'dtmf-' + (k === '*' ? 'star' : k === '#' ? 'hash' : k), 'aria-label': 'Key ' + k, onclick: () => sendDigit(k) }, k));
  }
}

function wire() {
  buildKeypad();
  dialer.wire();
  callLog.wire();
  $('presence').addEventListener('click', () => {
    sound.unlock();
    const next = store.get().presence === 'available' ? 'away' : 'available';
    sessionStorage.setItem('callgw.presence', next);
    send({ type: 'presence', status: next }, 'presence');
  });
  $('enable-sound').addEventListener('click', async () => {
    await sound.unlock();
    $('remote-audio').play().catch(() => {});
    if (!sound.locked) store.set({ soundLocked: false });
  });
  $('sign-out').addEventListener('click', () => signOut(''));
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token-input').value.trim();
    if (!t) return;
    setToken(t);
    $('token-input').value = '';
    start(t);
  });
  $('mute').addEventListener('click', () => { const c = store.get().call; setMuted(!(c && c.muted)); });
  $('hangup').addEventListener('click', hangup);
  $('keypad-toggle').addEventListener('click', () => {
    const pad = $('keypad');
    pad.hidden = !pad.hidden;
    $('keypad-toggle').setAttribute('aria-expanded', String(!pad.hidden));
  });
  $('simulate-caller').addEventListener('click', async () => {
    sound.unlock();
    const out = $('simulate-result');
    out.textContent = 'Placing a WhatsApp call…';
    try {
      const s = store.get();
      const r = await api(s.token, '/sim/calls', { method: 'POST', body: { from: '+447700900123', name: 'Alice', audio: 'greeting' } });
      out.textContent = `Alice is calling (${r && r.id ? r.id : 'call placed'}).` + (store.get().presence === 'available' ? '' : ' Set yourself available to get it.');
    } catch (e) { out.textContent = 'Could not simulate a call: ' + e.message; }
  });

  // Autoplay: any gesture unlocks the AudioContext; show a prompt while it is locked.
  const unlockOnce = () => sound.unlock().then((ok) => { if (ok) store.set({ soundLocked: false }); });
  document.addEventListener('pointerdown', unlockOnce, { capture: true });
  document.addEventListener('keydown', unlockOnce, { capture: true });
  sound.onstatechange = (st) => {
    store.set({ soundLocked: st !== 'running' });
    const s = store.get();
    if (st === 'running' && s.ringing.size && !s.call) { sound.stopRing(); sound.startRing(); }
  };

  document.addEventListener('keydown', (e) => {
    if (e.key === 'F5' || ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'r')) { reloading = true; return; }
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA') || e.ctrlKey || e.metaKey || e.altKey) return;
    const c = store.get().call;
    if (!c) return;
    if (e.key === 'm' || e.key === 'M') { setMuted(!c.muted); e.preventDefault(); } else if (e.key === 'k' || e.key === 'K') { $('keypad-toggle').click(); e.preventDefault(); } else if (!$('keypad').hidden && /^[0-9*#]$/.test(e.key)) { sendDigit(e.key); e.preventDefault(); }
  });

  // Leaving during a call: ask first; then best-effort hang up (the server
  // also ends calls whose agent leg is gone after its grace period). A reload
  // from the keyboard keeps the call so the reloaded page can resume it.
  window.addEventListener('beforeunload', (e) => {
    const c = store.get().call;
    if (c && c.local) { e.preventDefault(); e.returnValue = ''; }
  });
  window.addEventListener('pagehide', (e) => {
    const c = store.get().call;
    if (!e.persisted && !reloading && c && c.local && socket) socket.sendNow({ type: 'hangup', call_id: c.info.id });
    teardown();
  });
  // Back from the back/forward cache: connect again (welcome.calls and
  // resume bring a call back).
  window.addEventListener('pageshow', (e) => {
    if (!e.persisted || !socket || !store.get().token) return;
    socket.connect();
    view.render(store.get());
  });
}

wire();
const tok = takeToken();
if (tok) start(tok);
else store.set({ conn: { cls: 'offline', text: 'Signed out' } });
