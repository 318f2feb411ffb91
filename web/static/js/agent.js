// The agent softphone: agent protocol v1 over /ws/agent (docs/agent-protocol.md),
// WebRTC audio leg toward the gateway, ringing, dialer, missed calls, history.
import {
  takeToken, setToken, claims, api, maskNumber, toE164, fmtDuration, fmtMicros, fmtWhen, fmtUntil,
  describeError, errorText, reasonText, outcomeText, h, initials,
} from './common.js';
import { Sound } from './audio.js';

const $ = (id) => document.getElementById(id);

// window.callgwTest is read by end-to-end tests (see web/README.md).
const test = {
  state: 'signed_out', callId: '', presence: 'away', ringing: false, ringingIds: [],
  remoteLevel: 0, remoteFreq: 0, localLevel: 0, muted: false, stats: null,
  connection: 'new', soundLocked: true, lastEnded: null, lastError: null, dtmfSent: '',
};
window.callgwTest = test;

const S = {
  token: '', agent: '', role: '', presence: 'away', welcomed: false,
  settings: { mask_numbers: true, ring_timeout_s: 25, demo: false },
  iceServers: [],
  ws: null, backoff: 1000, reconnectTimer: 0, refSeq: 0, pending: new Map(),
  ringing: new Map(), // call id -> CallInfo
  accepting: new Set(),
  call: null, // see newCall
  missed: [],
  dial: { to: '', callId: '', perm: null, timer: 0 }, // callId: calling back a caller whose number is masked
  historyCursor: '',
  reloading: false,
};
const sound = new Sound();

// ---------- websocket ----------

function wsURL() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/agent';
}

function connect() {
  clearTimeout(S.reconnectTimer);
  if (S.ws) { S.ws.onclose = null; S.ws.close(); }
  setConn('connecting', 'Connecting…');
  const ws = new WebSocket(wsURL());
  S.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', v: 1, token: S.token }));
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    try { dispatch(m); } catch (e) { console.error('callgw: handling', m.type, e); }
  };
  ws.onclose = (ev) => {
    if (S.ws !== ws) return;
    S.ws = null;
    S.welcomed = false;
    if (ev.code === 4001 || ev.code === 4002) {
      signOut(ev.code === 4001 ? errorText.unauthenticated : errorText.unsupported_version);
      return;
    }
    setConn('offline', 'Reconnecting…');
    S.reconnectTimer = setTimeout(connect, S.backoff);
    S.backoff = Math.min(S.backoff * 2, 15000);
    render();
  };
}

function send(msg, kind) {
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN || !S.welcomed) {
    notice('Not connected to callgw — reconnecting.');
    return false;
  }
  if (kind) {
    msg.ref = 'r' + (++S.refSeq);
    S.pending.set(msg.ref, { kind, msg });
  }
  S.ws.send(JSON.stringify(msg));
  return true;
}

function dispatch(m) {
  const p = m.ref ? S.pending.get(m.ref) : null;
  if (m.ref) S.pending.delete(m.ref);
  switch (m.type) {
    case 'welcome': return onWelcome(m);
    case 'presence': S.presence = m.status; test.presence = m.status; return render();
    case 'call_offered': return addRing(m.call);
    case 'call_taken': return removeRing(m.call_id);
    case 'call': return onCall(m.call, p);
    case 'call_ended': return onEnded(m);
    case 'offer': return onOffer(m);
    case 'ice': return onRemoteIce(m);
    case 'permission': return onPermission(m, p);
    case 'dtmf': return onCallerKey(m);
    // Fresh TURN credentials: used by peer connections created from now on.
    case 'ice_servers': S.iceServers = Array.isArray(m.ice_servers) ? m.ice_servers : S.iceServers; return;
    case 'error': return onError(m, p);
    default: return undefined; // pong and future types
  }
}

// onCallerKey shows the keys the WhatsApp user presses (e.g. an account
// number typed on the dial pad).
function onCallerKey(m) {
  if (!S.call || S.call.info.id !== m.call_id) return;
  S.callerKeys = ((S.callerKeys || '') + m.digit).slice(-24);
  test.callerKeys = S.callerKeys;
  notice(`Caller pressed ${S.callerKeys}`);
}

function onWelcome(m) {
  S.welcomed = true;
  S.backoff = 1000;
  S.agent = m.agent || S.agent;
  S.role = m.role || '';
  S.presence = m.presence || 'away';
  S.iceServers = Array.isArray(m.ice_servers) ? m.ice_servers : [];
  Object.assign(S.settings, m.settings || {});
  test.presence = S.presence;
  setConn('online', 'Online');
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  $('agent-name').textContent = S.agent;
  $('demo').hidden = !S.settings.demo;
  loadMissed();

  const calls = Array.isArray(m.calls) ? m.calls : [];
  const seen = new Set(calls.map((c) => c.id));
  for (const id of [...S.ringing.keys()]) if (!seen.has(id)) S.ringing.delete(id);
  if (S.call && !seen.has(S.call.info.id)) {
    endLocal(S.call.info.id, 'The call ended while you were disconnected.');
  }
  for (const c of calls) {
    if (c.state === 'ringing') { S.ringing.set(c.id, c); continue; }
    if (c.agent !== S.agent) continue;
    if (S.call && S.call.info.id === c.id) {
      S.call.info = c;
      if (!pcAlive(S.call) && S.call.local && (c.state === 'connecting' || c.state === 'connected')) resume(c.id);
    } else if (!S.call) {
      // After a reload: take the call back and ask the gateway for a new leg.
      S.call = newCall(c, true);
      if (c.state === 'connecting' || c.state === 'connected') resume(c.id);
    }
  }
  if (sessionStorage.getItem('callgw.presence') === 'available' && S.presence !== 'available') {
    send({ type: 'presence', status: 'available' }, 'presence');
  }
  render();
  loadHistory(false);
}

// ---------- ringing ----------

function addRing(c) {
  if (!c || !c.id || (S.call && S.call.info.id === c.id)) return;
  S.ringing.set(c.id, c);
  render();
  const first = document.querySelector('[data-testid="accept"]');
  if (first && (document.activeElement === document.body || !document.activeElement)) first.focus();
}

function removeRing(id) {
  S.accepting.delete(id);
  if (S.ringing.delete(id)) render();
}

function accept(id) {
  sound.unlock();
  if (!S.ringing.has(id) || S.accepting.has(id)) return;
  if (S.presence !== 'available') {
    sessionStorage.setItem('callgw.presence', 'available');
    send({ type: 'presence', status: 'available' }, 'presence');
  }
  if (send({ type: 'accept', call_id: id }, 'accept')) {
    S.accepting.add(id);
    micPromise(); // ask for the microphone while the gateway prepares the offer
    render();
  }
}

function decline(id) {
  sound.unlock();
  if (send({ type: 'reject', call_id: id }, 'reject')) removeRing(id);
}

// ---------- calls ----------

function newCall(info, local) {
  return {
    info, local, pc: null, pendingIce: [], remote: null, outLevel: null, inLevel: null,
    stream: null, muted: false, connectedAt: 0, statsPrev: null, quality: null, resumedAt: 0,
  };
}

function onCall(c, p) {
  if (!c || !c.id) return;
  if (c.state === 'ringing') return addRing(c);
  const mine = S.accepting.has(c.id) || (p && p.kind === 'dial');
  S.ringing.delete(c.id);
  S.accepting.delete(c.id);
  if (c.state === 'ended') return;
  if (!S.call || S.call.info.id !== c.id) {
    if (S.call && S.call.local) return; // one call per tab; another tab handles that one
    S.call = newCall(c, mine);
  }
  if (mine) S.call.local = true;
  S.call.info = c;
  if (c.state === 'connected' && !S.call.connectedAt) {
    const t = Date.parse(c.connected_at);
    S.call.connectedAt = isNaN(t) ? Date.now() : Math.min(t, Date.now());
  }
  render();
}

function onEnded(m) {
  const rang = S.ringing.get(m.call_id);
  if (rang) {
    S.ringing.delete(m.call_id);
    S.accepting.delete(m.call_id);
    if (m.outcome === 'missed' || ['ring_timeout', 'no_agent', 'user_hangup', 'agent_rejected'].includes(m.reason)) {
      addMissed(rang);
    }
  }
  if (S.call && S.call.info.id === m.call_id) {
    const words = reasonText[m.reason] || 'Call ended';
    const extra = m.message ? ` — ${m.message}` : '';
    endLocal(m.call_id, `${words}${m.duration_s ? ' · ' + fmtDuration(m.duration_s) : ''}${extra}`);
    test.lastEnded = { callId: m.call_id, reason: m.reason, outcome: m.outcome, duration_s: m.duration_s || 0 };
    loadHistory(false);
    setTimeout(() => loadHistory(false), 3000); // the ledger may trail the event
  }
  render();
}

function endLocal(id, text) {
  const c = S.call;
  if (!c || c.info.id !== id) return;
  closeMedia(c);
  S.call = null;
  S.callerKeys = '';
  $('last-call').textContent = text;
  test.muted = false;
  test.stats = null;
  test.remoteLevel = 0;
  test.remoteFreq = 0;
  test.localLevel = 0;
  test.connection = 'closed';
}

function hangup() {
  const c = S.call;
  if (!c) return;
  if (!send({ type: 'hangup', call_id: c.info.id }, 'hangup')) {
    endLocal(c.info.id, 'Call ended (disconnected)');
  } else {
    c.info = Object.assign({}, c.info, { state: 'ending' });
  }
  render();
}

function resume(id) {
  if (S.call) { S.call.local = true; S.call.resumedAt = Date.now(); }
  send({ type: 'resume', call_id: id }, 'resume');
}

function pcAlive(c) {
  return c.pc && !['closed', 'failed'].includes(c.pc.connectionState);
}

// ---------- media ----------

let micReq = null;
function micPromise() {
  if (!micReq) {
    micReq = navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    }).catch((e) => { micReq = null; throw e; });
  }
  return micReq;
}

function releaseMic() {
  if (!micReq) return;
  const p = micReq;
  micReq = null;
  p.then((s) => s.getTracks().forEach((t) => t.stop())).catch(() => {});
}

async function onOffer(m) {
  const c = S.call;
  if (!c || c.info.id !== m.call_id || !c.local) return; // another tab owns this leg
  closePC(c);
  const pc = new RTCPeerConnection({ iceServers: S.iceServers, bundlePolicy: 'max-bundle' });
  c.pc = pc;
  c.pendingIce = c.pendingIce || [];
  pc.onicecandidate = (e) => {
    if (c.pc !== pc) return;
    send({ type: 'ice', call_id: c.info.id, candidate: e.candidate ? e.candidate.toJSON() : { candidate: '' } });
  };
  pc.ontrack = (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    c.remote = stream;
    const el = $('remote-audio');
    el.srcObject = stream;
    el.play().catch(() => showSoundPrompt());
    if (c.outLevel) c.outLevel.close();
    c.outLevel = sound.analyse(stream);
  };
  pc.onconnectionstatechange = () => {
    if (c.pc !== pc) return;
    test.connection = pc.connectionState;
    if (pc.connectionState === 'failed' && S.call === c && Date.now() - c.resumedAt > 10000) {
      notice('Audio connection lost — reconnecting…');
      resume(c.info.id);
    }
    render();
  };
  try {
    await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
    const stream = await micPromise();
    c.stream = stream;
    for (const t of stream.getAudioTracks()) { t.enabled = !c.muted; pc.addTrack(t, stream); }
    if (!c.inLevel) c.inLevel = sound.analyse(stream);
    for (const cand of c.pendingIce.splice(0)) await addIce(pc, cand);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (c.pc !== pc) return;
    send({ type: 'answer', call_id: c.info.id, sdp: pc.localDescription.sdp }, 'answer');
  } catch (e) {
    console.error('callgw: media setup', e);
    const why = e && e.name === 'NotAllowedError'
      ? 'Microphone access is blocked. Allow it from the address bar, then call again.'
      : e && e.name === 'NotFoundError' ? 'No microphone found. Plug in a headset and try again.'
        : 'Could not start the audio: ' + (e && e.message ? e.message : e);
    notice(why, true);
    if (S.call === c) hangup();
  }
}

async function addIce(pc, cand) {
  try {
    await pc.addIceCandidate(cand && cand.candidate ? cand : null);
  } catch (e) { console.warn('callgw: ice candidate', e); }
}

function onRemoteIce(m) {
  const c = S.call;
  if (!c || c.info.id !== m.call_id || !c.local) return;
  if (c.pc && c.pc.remoteDescription) addIce(c.pc, m.candidate);
  else c.pendingIce.push(m.candidate);
}

function closePC(c) {
  if (c.pc) { c.pc.onicecandidate = null; c.pc.ontrack = null; c.pc.close(); c.pc = null; }
  if (c.outLevel) { c.outLevel.close(); c.outLevel = null; }
  c.statsPrev = null;
}

function closeMedia(c) {
  closePC(c);
  if (c.inLevel) { c.inLevel.close(); c.inLevel = null; }
  c.stream = null;
  releaseMic();
  $('remote-audio').srcObject = null;
}

function setMuted(on) {
  const c = S.call;
  if (!c) return;
  c.muted = on;
  test.muted = on;
  if (c.stream) c.stream.getAudioTracks().forEach((t) => { t.enabled = !on; });
  render();
}

function sendDigit(d) {
  const c = S.call;
  if (!c || c.info.state !== 'connected') return;
  if (send({ type: 'dtmf', call_id: c.info.id, digits: d }, 'dtmf')) {
    sound.dtmf(d);
    test.dtmfSent += d;
    $('dtmf-sent').textContent = 'Sent: ' + test.dtmfSent.slice(-24);
  }
}

// Level meters and test hooks: ten times a second while in a call.
function dbPercent(rms) {
  if (rms <= 0) return 0;
  const db = 20 * Math.log10(rms);
  return Math.max(0, Math.min(100, Math.round((db + 60) * 100 / 60)));
}

setInterval(() => {
  const c = S.call;
  const inRms = c && c.inLevel ? c.inLevel.rms() : 0;
  const outRms = c && c.outLevel ? c.outLevel.rms() : 0;
  test.localLevel = inRms;
  test.remoteLevel = outRms;
  test.remoteFreq = c && c.outLevel && outRms > 0.003 ? Math.round(c.outLevel.dominant()) : 0;
  const inP = c && c.muted ? 0 : dbPercent(inRms), outP = dbPercent(outRms);
  $('meter-in').style.width = inP + '%';
  $('meter-out').style.width = outP + '%';
  $('meter-in').parentElement.setAttribute('aria-valuenow', inP);
  $('meter-out').parentElement.setAttribute('aria-valuenow', outP);
}, 100);

// Connection quality from getStats, every second.
setInterval(async () => {
  const c = S.call;
  if (!c || !c.pc) return;
  let rep;
  try { rep = await c.pc.getStats(); } catch { return; }
  let pair = null, inb = null, outb = null, rin = null, selectedId = '';
  rep.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) selectedId = r.selectedCandidatePairId;
    if (r.type === 'inbound-rtp' && r.kind === 'audio') inb = r;
    if (r.type === 'outbound-rtp' && r.kind === 'audio') outb = r;
    if (r.type === 'remote-inbound-rtp' && r.kind === 'audio') rin = r;
  });
  if (selectedId) pair = rep.get(selectedId);
  if (!pair) rep.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
  const rtt = pair && pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000
    : rin && rin.roundTripTime !== undefined ? rin.roundTripTime * 1000 : null;
  const lost = inb ? inb.packetsLost || 0 : 0, recv = inb ? inb.packetsReceived || 0 : 0;
  const prev = c.statsPrev;
  let loss = 0;
  if (prev) {
    const dl = lost - prev.lost, dr = recv - prev.recv;
    loss = dl + dr > 0 ? Math.max(0, (dl * 100) / (dl + dr)) : 0;
  }
  c.statsPrev = { lost, recv };
  const stats = {
    rtt_ms: rtt === null ? null : Math.round(rtt),
    loss_pct: Math.round(loss * 10) / 10,
    jitter_ms: inb && inb.jitter !== undefined ? Math.round(inb.jitter * 1000) : null,
    packets_received: recv,
    packets_lost: lost,
    packets_sent: outb ? outb.packetsSent || 0 : 0,
    bytes_sent: outb ? outb.bytesSent || 0 : 0,
    connection: c.pc.connectionState,
  };
  const q = (stats.rtt_ms ?? 0) < 250 && stats.loss_pct < 2 && (stats.jitter_ms ?? 0) < 30 ? 'good'
    : (stats.rtt_ms ?? 0) < 500 && stats.loss_pct < 6 && (stats.jitter_ms ?? 0) < 60 ? 'fair' : 'poor';
  stats.quality = recv > 0 ? q : 'unknown';
  c.quality = stats;
  test.stats = stats;
  renderQuality();
}, 1000);

// ---------- permissions and dialing ----------

function onPermission(m, p) {
  if (p && p.kind === 'permission_request') notice('Permission request sent. You will see the reply here.');
  const forDial = (m.to && m.to === S.dial.to) || (m.call_id && m.call_id === S.dial.callId);
  if (!forDial) return;
  S.dial.perm = m.permission || null;
  renderPermission();
}

// target names the dialer's number for the server: the number itself, or
// the earlier call whose (masked) number the server looks up.
function target() {
  return S.dial.callId ? { call_id: S.dial.callId } : { to: S.dial.to };
}

function queryPermission() {
  $('dial-message').textContent = '';
  if (S.dial.callId && $('dial-input').value === S.dial.to) {
    renderPermission('Checking…');
    send({ type: 'permission_query', ...target() }, 'permission_query');
    return;
  }
  S.dial.callId = '';
  const to = toE164($('dial-input').value);
  if (!to) {
    S.dial.to = '';
    S.dial.perm = null;
    renderPermission($('dial-input').value.trim() ? errorText.invalid_number : '');
    return;
  }
  if (to !== S.dial.to) S.dial.perm = null;
  S.dial.to = to;
  renderPermission('Checking…');
  send({ type: 'permission_query', to }, 'permission_query');
}

const statusWords = {
  temporary: 'Temporary permission', permanent: 'Permanent permission', none: 'No permission yet', no_permission: 'No permission yet',
  pending: 'Request sent, waiting for the customer', requested: 'Request sent, waiting for the customer',
  rejected: 'The customer declined calls', expired: 'Permission expired', revoked: 'Permission revoked',
};

function renderPermission(msg) {
  const el = $('permission-state');
  const perm = S.dial.perm;
  el.replaceChildren();
  el.className = 'permission';
  $('request-permission').disabled = !(perm && perm.can_request);
  $('dial-call').disabled = !(perm && perm.can_call) || !!S.call;
  if (!perm) {
    el.append(h('span', { class: 'muted', text: msg || 'Enter a number to see whether you may call it.' }));
    return;
  }
  el.classList.add(perm.can_call ? 'ok' : 'no');
  el.dataset.status = perm.status || '';
  const lines = [];
  if (perm.can_call) {
    let s = perm.status === 'permanent' ? 'You may call: permanent permission.'
      : perm.expires_at ? `You may call: granted until ${fmtWhen(perm.expires_at)}.` : 'You may call.';
    lines.push(s);
    if (perm.calls_left_24h !== undefined && perm.calls_left_24h !== null) lines.push(`${perm.calls_left_24h} call${perm.calls_left_24h === 1 ? '' : 's'} left today.`);
  } else {
    lines.push((statusWords[perm.status] || 'You may not call this number yet') + '.');
    if (perm.reason) lines.push(errorText[perm.reason] || perm.reason);
    if (perm.can_request) {
      lines.push(`${perm.requests_left_24h ?? '?'} permission request${perm.requests_left_24h === 1 ? '' : 's'} left today, ${perm.requests_left_7d ?? '?'} this week.`);
    } else if (perm.next_request_at) {
      lines.push(`Next request possible ${fmtUntil(perm.next_request_at)}.`);
    }
  }
  el.append(h('strong', { text: lines[0] }), ...lines.slice(1).map((l) => h('span', { class: 'line', text: ' ' + l })));
}

function requestPermission() {
  if (!S.dial.to) return;
  send({ type: 'permission_request', ...target() }, 'permission_request');
}

function dial() {
  if (!S.dial.to || S.call) return;
  sound.unlock();
  micPromise().catch(() => {});
  if (send({ type: 'dial', ...target() }, 'dial')) $('dial-message').textContent = '';
}

function onError(m, p) {
  test.lastError = { code: m.code, message: m.message || '', kind: p ? p.kind : '' };
  const text = describeError(m);
  const kind = p ? p.kind : '';
  if (kind === 'accept' && p.msg) {
    S.accepting.delete(p.msg.call_id);
    if (['call_taken', 'unknown_call', 'out_of_turn', 'not_your_call'].includes(m.code)) removeRing(p.msg.call_id);
    releaseMic();
    notice(text, true);
  } else if (['dial', 'permission_request', 'permission_query'].includes(kind)) {
    $('dial-message').textContent = text;
    if (kind === 'dial') releaseMic();
  } else if (kind === 'resume' && S.call && p.msg && S.call.info.id === p.msg.call_id && ['unknown_call', 'out_of_turn'].includes(m.code)) {
    endLocal(S.call.info.id, 'The call ended while you were away.');
  } else {
    notice(text, true);
  }
  render();
}

// ---------- missed calls and history ----------

function missedKey() { return 'callgw.missed.' + S.agent; }

function loadMissed() {
  try { S.missed = JSON.parse(localStorage.getItem(missedKey()) || '[]'); } catch { S.missed = []; }
}

function addMissed(c) {
  if (S.missed.some((x) => x.id === c.id)) return;
  S.missed.unshift({ id: c.id, from: c.from || '', name: c.name || '', at: c.created_at || new Date().toISOString() });
  S.missed = S.missed.slice(0, 30);
  localStorage.setItem(missedKey(), JSON.stringify(S.missed));
}

// callBack puts a missed caller in the dialer. A masked number cannot be
// typed, so the dialer then names the missed call and the server looks the
// number up.
function callBack(m) {
  const input = $('dial-input');
  const masked = !m.from || m.from.includes('*');
  input.value = m.from || m.name || 'caller';
  input.focus();
  S.dial.perm = null;
  S.dial.callId = masked ? m.id : '';
  S.dial.to = masked ? input.value : '';
  queryPermission();
}

async function loadHistory(more) {
  const q = new URLSearchParams({ agent: 'me', limit: '20' });
  if (more && S.historyCursor) q.set('cursor', S.historyCursor);
  const body = $('history-body');
  try {
    const res = await api(S.token, '/api/v1/calls?' + q);
    const calls = (res && res.calls) || [];
    if (!more) body.replaceChildren();
    for (const c of calls) body.append(historyRow(c));
    if (!body.children.length) body.append(h('tr', { class: 'empty' }, h('td', { colspan: 5, class: 'muted', text: 'No calls yet.' })));
    S.historyCursor = (res && res.next_cursor) || '';
    $('history-more').hidden = !S.historyCursor;
  } catch (e) {
    if (!more) body.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 5, class: 'muted', text: `Could not load history (${e.message}).` })));
  }
}

function historyRow(c) {
  const out = c.direction === 'business_initiated';
  const secs = c.gateway_duration_ms ? Math.round(c.gateway_duration_ms / 1000) : (c.meta_duration || 0);
  const who = c.user_name ? `${c.user_name} · ${maskNumber(c.user_phone, S.settings.mask_numbers)}` : maskNumber(c.user_phone, S.settings.mask_numbers);
  return h('tr', { 'data-testid': 'history-row', 'data-call-id': c.id, class: 'outcome-' + (c.outcome || '') },
    h('td', { text: fmtWhen(c.created_at) }),
    h('td', {}, h('span', { class: 'dir ' + (out ? 'out' : 'in'), title: out ? 'Outbound' : 'Inbound', 'aria-label': out ? 'Outbound' : 'Inbound', text: out ? '↗' : '↙' }), ' ', who),
    h('td', { text: c.answered_at || secs ? fmtDuration(secs) : '–' }),
    h('td', { title: reasonText[c.end_reason] || '' }, h('span', { class: 'badge ' + (c.outcome || ''), text: outcomeText[c.outcome] || c.outcome || '' })),
    h('td', { class: 'num', text: out ? fmtMicros(c.cost_micros || 0) : 'free' }),
  );
}

// ---------- rendering ----------

function setConn(cls, text) {
  const el = $('connection');
  el.className = 'conn ' + cls;
  el.querySelector('.conn-text').textContent = text;
}

let noticeTimer = 0;
function notice(text, isError) {
  const el = $('notice');
  el.textContent = text;
  el.className = 'toast' + (isError ? ' error' : '');
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, isError ? 8000 : 5000);
}

function showSoundPrompt() {
  $('enable-sound').hidden = false;
  test.soundLocked = true;
}

function numberOf(c) {
  return c.direction === 'business_initiated' ? c.to : c.from;
}

function render() {
  const available = S.presence === 'available';
  const pres = $('presence');
  pres.disabled = !S.welcomed;
  pres.setAttribute('aria-pressed', String(available));
  pres.className = 'presence ' + (available ? 'available' : 'away');
  pres.querySelector('.presence-text').textContent = available ? 'Available' : 'Away';
  pres.title = available ? 'You receive calls. Click to go away.' : 'You do not receive calls. Click to become available.';

  // Incoming calls.
  const list = $('incoming-list');
  list.replaceChildren(...[...S.ringing.values()].map((c) => {
    const busy = S.accepting.has(c.id);
    return h('div', { class: 'incoming', 'data-testid': 'incoming-call', 'data-call-id': c.id, role: 'alertdialog', 'aria-label': 'Incoming WhatsApp call' },
      h('div', { class: 'avatar ring', 'aria-hidden': 'true', text: initials(c.name, c.from) }),
      h('div', { class: 'incoming-who' },
        h('div', { class: 'kicker', text: 'Incoming WhatsApp call' }),
        h('div', { class: 'peer-name', 'data-testid': 'caller-name', text: c.name || 'Unknown caller' }),
        h('div', { class: 'peer-number muted', 'data-testid': 'caller-number', text: maskNumber(c.from, S.settings.mask_numbers) }),
        h('div', { class: 'countdown muted small', 'data-expires': c.ring_expires_at || '' })),
      h('div', { class: 'incoming-actions' },
        h('button', { type: 'button', class: 'btn round accept', 'data-testid': 'accept', disabled: busy, 'aria-label': `Accept call from ${c.name || 'caller'}`, onclick: () => accept(c.id) },
          h('span', { 'aria-hidden': 'true', text: '✆' }), h('span', { class: 'lbl', text: busy ? 'Connecting…' : 'Accept' })),
        h('button', { type: 'button', class: 'btn round danger', 'data-testid': 'decline', disabled: busy, 'aria-label': `Decline call from ${c.name || 'caller'}`, onclick: () => decline(c.id) },
          h('span', { 'aria-hidden': 'true', text: '✕' }), h('span', { class: 'lbl', text: 'Decline' }))));
  }));
  const ringing = S.ringing.size > 0 && !S.call;
  if (ringing) sound.startRing(); else sound.stopRing();
  test.ringing = sound.ringing;
  test.ringingIds = [...S.ringing.keys()];

  // Active call.
  const c = S.call;
  $('active').hidden = !c;
  $('idle').hidden = !!c || S.ringing.size > 0;
  if (c) {
    const num = numberOf(c.info);
    $('active-avatar').textContent = initials(c.info.name, num);
    $('active-name').textContent = c.info.name || (c.info.direction === 'business_initiated' ? 'Customer' : 'Unknown caller');
    $('active-number').textContent = (c.info.direction === 'business_initiated' ? 'Outbound · ' : 'WhatsApp · ') + maskNumber(num, S.settings.mask_numbers && c.info.direction !== 'business_initiated');
    const st = $('call-state');
    st.textContent = c.local || c.info.state === 'ended' ? stateWords[c.info.state] || c.info.state : 'On a call in another tab';
    st.dataset.state = c.info.state;
    const mute = $('mute');
    mute.setAttribute('aria-pressed', String(c.muted));
    mute.querySelector('.lbl').textContent = c.muted ? 'Unmute' : 'Mute';
    mute.disabled = !c.local;
    $('hangup').disabled = c.info.state === 'ending';
  } else {
    $('keypad').hidden = true;
    $('keypad-toggle').setAttribute('aria-expanded', 'false');
    $('dtmf-sent').textContent = '';
    test.dtmfSent = '';
  }
  $('idle-title').textContent = available ? 'Ready for calls' : 'You are away';
  $('idle-sub').textContent = available ? 'Incoming WhatsApp calls will ring here.' : 'Set yourself available to receive calls.';
  document.body.classList.toggle('is-ringing', ringing);
  document.body.classList.toggle('in-call', !!c);
  $('dial-call').disabled = !(S.dial.perm && S.dial.perm.can_call) || !!c;
  renderMissed();
  renderQuality();
  tick();

  test.state = !S.token ? 'signed_out' : c ? c.info.state : S.ringing.size ? 'ringing' : S.welcomed ? 'idle' : 'offline';
  test.callId = c ? c.info.id : S.ringing.size ? [...S.ringing.keys()][0] : '';
}

const stateWords = {
  dialing: 'Calling…', connecting: 'Connecting…', connected: 'Connected', ending: 'Ending…', ended: 'Ended', ringing: 'Ringing',
};

function renderQuality() {
  const el = $('quality');
  const q = S.call && S.call.quality;
  el.dataset.quality = q ? q.quality : 'unknown';
  const txt = el.querySelector('.quality-text');
  if (!q || q.quality === 'unknown') { txt.textContent = '–'; el.title = 'Connection quality: waiting for audio'; return; }
  const parts = [];
  if (q.rtt_ms !== null) parts.push(`${q.rtt_ms} ms`);
  parts.push(`${q.loss_pct}% loss`);
  if (q.jitter_ms !== null) parts.push(`${q.jitter_ms} ms jitter`);
  txt.textContent = q.quality[0].toUpperCase() + q.quality.slice(1);
  el.title = 'Connection quality: ' + parts.join(', ');
  el.setAttribute('aria-label', 'Connection quality ' + q.quality + ': ' + parts.join(', '));
}

function renderMissed() {
  const ul = $('missed-list');
  $('missed-count').textContent = S.missed.length ? `(${S.missed.length})` : '';
  if (!S.missed.length) { ul.replaceChildren(h('li', { class: 'empty muted', text: 'No missed calls.' })); return; }
  ul.replaceChildren(...S.missed.map((m) => {
    const masked = !m.from || m.from.includes('*');
    return h('li', { 'data-testid': 'missed-row', 'data-call-id': m.id },
      h('div', { class: 'avatar small', 'aria-hidden': 'true', text: initials(m.name, m.from) }),
      h('div', { class: 'grow' }, h('div', { text: m.name || 'Unknown caller' }), h('div', { class: 'muted small', text: `${maskNumber(m.from, S.settings.mask_numbers)} · ${fmtWhen(m.at)}` })),
      h('button', {
        type: 'button', class: 'btn small', 'data-testid': 'call-back',
        title: masked ? 'Put this caller in the dialer (the number stays hidden)' : 'Put this number in the dialer',
        'aria-label': `Call back ${m.name || 'caller'}`, onclick: () => callBack(m),
      }, 'Call back'),
      h('button', { type: 'button', class: 'btn ghost small', 'aria-label': 'Dismiss', title: 'Dismiss', onclick: () => { S.missed = S.missed.filter((x) => x.id !== m.id); localStorage.setItem(missedKey(), JSON.stringify(S.missed)); renderMissed(); } }, '✕'));
  }));
}

function tick() {
  const c = S.call;
  const timer = $('call-timer');
  if (c && c.connectedAt) timer.textContent = fmtDuration((Date.now() - c.connectedAt) / 1000);
  else timer.textContent = '00:00';
  for (const el of document.querySelectorAll('.countdown[data-expires]')) {
    const t = Date.parse(el.dataset.expires);
    el.textContent = isNaN(t) ? '' : `Rings for ${Math.max(0, Math.ceil((t - Date.now()) / 1000))} s more`;
  }
  document.title = S.ringing.size && !c ? '📞 Incoming call — callgw'
    : c && c.connectedAt ? `● ${timer.textContent} — callgw` : 'callgw · Agent';
}
setInterval(tick, 500);

// ---------- sign-in ----------

function signOut(reason) {
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
  clearTimeout(S.reconnectTimer);
  if (S.call) endLocal(S.call.info.id, '');
  S.ringing.clear();
  S.welcomed = false;
  S.token = '';
  setToken('');
  sessionStorage.removeItem('callgw.presence');
  $('app').hidden = true;
  $('signin').hidden = false;
  $('sign-out').hidden = true;
  $('agent-name').textContent = '';
  $('signin-error').textContent = reason || '';
  setConn('offline', 'Signed out');
  render();
}

function start(token) {
  S.token = token;
  const cl = claims(token);
  S.agent = cl.sub || '';
  $('agent-name').textContent = S.agent;
  connect();
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
  $('presence').addEventListener('click', () => {
    sound.unlock();
    const next = S.presence === 'available' ? 'away' : 'available';
    sessionStorage.setItem('callgw.presence', next);
    send({ type: 'presence', status: next }, 'presence');
  });
  $('enable-sound').addEventListener('click', async () => {
    await sound.unlock();
    $('remote-audio').play().catch(() => {});
    if (!sound.locked) { $('enable-sound').hidden = true; test.soundLocked = false; }
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
  $('mute').addEventListener('click', () => setMuted(!(S.call && S.call.muted)));
  $('hangup').addEventListener('click', hangup);
  $('keypad-toggle').addEventListener('click', () => {
    const pad = $('keypad');
    pad.hidden = !pad.hidden;
    $('keypad-toggle').setAttribute('aria-expanded', String(!pad.hidden));
  });
  $('dial-form').addEventListener('submit', (e) => { e.preventDefault(); queryPermission(); });
  $('dial-input').addEventListener('input', () => {
    clearTimeout(S.dial.timer);
    S.dial.timer = setTimeout(queryPermission, 500);
  });
  $('request-permission').addEventListener('click', requestPermission);
  $('dial-call').addEventListener('click', dial);
  $('history-refresh').addEventListener('click', () => loadHistory(false));
  $('history-more').addEventListener('click', () => loadHistory(true));
  $('simulate-caller').addEventListener('click', async () => {
    sound.unlock();
    const out = $('simulate-result');
    out.textContent = 'Placing a WhatsApp call…';
    try {
      const r = await api(S.token, '/sim/calls', { method: 'POST', body: { from: '+447700900123', name: 'Alice', audio: 'greeting' } });
      out.textContent = `Alice is calling (${r && r.id ? r.id : 'call placed'}).` + (S.presence === 'available' ? '' : ' Set yourself available to get it.');
    } catch (e) { out.textContent = 'Could not simulate a call: ' + e.message; }
  });

  // Autoplay: any gesture unlocks the AudioContext; show a prompt while it is locked.
  const unlockOnce = () => sound.unlock().then((ok) => { if (ok) { $('enable-sound').hidden = true; test.soundLocked = false; } });
  document.addEventListener('pointerdown', unlockOnce, { capture: true });
  document.addEventListener('keydown', unlockOnce, { capture: true });
  sound.onstatechange = (st) => {
    test.soundLocked = st !== 'running';
    $('enable-sound').hidden = st === 'running';
    if (st === 'running' && S.ringing.size && !S.call) { sound.stopRing(); sound.startRing(); }
  };
  test.soundLocked = sound.locked;
  $('enable-sound').hidden = !sound.locked;

  document.addEventListener('keydown', (e) => {
    if (e.key === 'F5' || ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'r')) { S.reloading = true; return; }
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA') || e.ctrlKey || e.metaKey || e.altKey) return;
    if (!S.call) return;
    if (e.key === 'm' || e.key === 'M') { setMuted(!S.call.muted); e.preventDefault(); } else if (e.key === 'k' || e.key === 'K') { $('keypad-toggle').click(); e.preventDefault(); } else if (!$('keypad').hidden && /^[0-9*#]$/.test(e.key)) { sendDigit(e.key); e.preventDefault(); }
  });

  // Leaving during a call: ask first; then best-effort hang up (the server
  // also ends calls whose agent leg is gone after its grace period). A reload
  // from the keyboard keeps the call so the reloaded page can resume it.
  window.addEventListener('beforeunload', (e) => { if (S.call && S.call.local) { e.preventDefault(); e.returnValue = ''; } });
  window.addEventListener('pagehide', (e) => {
    if (e.persisted || S.reloading || !S.call || !S.call.local) return;
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify({ type: 'hangup', call_id: S.call.info.id }));
  });
}

wire();
const tok = takeToken();
if (tok) start(tok);
else { $('signin').hidden = false; setConn('offline', 'Signed out'); render(); }
