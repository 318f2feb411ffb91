// The agent protocol client (docs/agent-protocol.md): one websocket to
// /ws/agent, hello, reconnect with backoff, an application ping that also
// detects a dead connection, and ref matching of replies to requests.

import { Timers } from './timers.js';

const PING_MS = 20000; // client ping (the server pings too; browsers answer those by themselves)
const DEAD_MS = 45000; // nothing received for this long: the connection is dead
const BACKOFF_MIN = 1000;
const BACKOFF_MAX = 15000;
const PENDING_TTL = 120000; // a request without a reply is forgotten after this long

// Requests whose ref comes back on more than one message: the `call` and
// `offer` that follow an accept, resume or dial all carry the command's ref.
const LASTING = new Set(['accept', 'resume', 'dial']);

export function wsURL() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/agent';
}

export class AgentSocket {
  /**
   * @param {object} o
   * @param {string} o.token agent token sent in hello
   * @param {(m: object, req: object|null) => void} o.onMessage every server message, with the request its ref names
   * @param {(status: 'connecting'|'online'|'offline') => void} o.onStatus
   * @param {(code: number, error: object|null) => void} o.onRefused the server closed with 4001/4002 (no reconnect)
   */
  constructor({ token, onMessage, onStatus, onRefused }) {
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onRefused = onRefused;
    this.ws = null;
    this.welcomed = false;
    this.backoff = BACKOFF_MIN;
    // Refs are unique across tabs: all sessions of an agent see the `call`
    // and `offer` that carry one tab's ref.
    this.refPrefix = Math.random().toString(36).slice(2, 8) + '.';
    this.refSeq = 0;
    this.pending = new Map(); // ref -> {kind, msg, at, callId}
    this.lastRx = 0;
    this.lastError = null;
    this.stopped = false;
    this.timers = new Timers('socket');
    this.reconnectTimer = 0;
    this.pingTimer = 0;
  }

  get ready() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN && this.welcomed;
  }

  connect() {
    this.stopped = false;
    this.timers.clear(this.reconnectTimer);
    this.detach();
    this.onStatus('connecting');
    const ws = new WebSocket(wsURL());
    this.ws = ws;
    this.lastError = null;
    ws.onopen = () => {
      this.lastRx = Date.now();
      ws.send(JSON.stringify({ type: 'hello', v: 1, token: this.token }));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastRx = Date.now();
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (!m || typeof m.type !== 'string') return;
      if (m.type === 'welcome') this.onWelcome();
      if (m.type === 'error') this.lastError = m;
      const req = m.ref ? this.pending.get(m.ref) || null : null;
      if (req && (m.type === 'error' || !LASTING.has(req.kind))) this.pending.delete(m.ref);
      try { this.onMessage(m, req); } catch (e) { console.error('callgw: handling', m.type, e); }
    };
    ws.onclose = (ev) => { if (this.ws === ws) this.closed(ev.code); };
  }

  onWelcome() {
    this.welcomed = true;
    this.backoff = BACKOFF_MIN;
    this.timers.clear(this.pingTimer);
    this.pingTimer = this.timers.interval(() => this.ping(), PING_MS);
    this.onStatus('online');
  }

  ping() {
    if (!this.ws) return;
    if (Date.now() - this.lastRx > DEAD_MS) {
      // A half-open connection: closing may hang, so drop it and start over.
      this.detach();
      this.closed(1006);
      return;
    }
    if (this.ready) this.ws.send(JSON.stringify({ type: 'ping' }));
  }

  // closed handles the end of the current socket: refused (4001/4002) or
  // lost (reconnect after the backoff, with jitter).
  closed(code) {
    const err = this.lastError;
    this.ws = null;
    this.welcomed = false;
    this.pending.clear();
    this.timers.clear(this.pingTimer);
    if (this.stopped) return;
    if (code === 4001 || code === 4002) {
      this.stopped = true;
      this.onRefused(code, err);
      return;
    }
    this.onStatus('offline');
    const wait = Math.round(this.backoff * (0.8 + Math.random() * 0.4));
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    this.reconnectTimer = this.timers.timeout(() => this.connect(), wait);
  }

  detach() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try { ws.close(); } catch { /* already closed */ }
  }

  /** Closes the socket for good and clears every timer (sign-out, page hide). */
  stop() {
    this.stopped = true;
    this.detach();
    this.welcomed = false;
    this.pending.clear();
    this.timers.clearAll();
  }

  /**
   * Sends msg. With kind, a fresh ref is added and the request remembered, so
   * the reply (or error) is handed to onMessage with it. Returns the ref
   * ('' without kind), or null when not connected.
   */
  send(msg, kind) {
    if (!this.ready) return null;
    let ref = '';
    if (kind) {
      const now = Date.now();
      for (const [r, p] of this.pending) if (now - p.at > PENDING_TTL) this.pending.delete(r);
      ref = this.refPrefix + (++this.refSeq);
      msg.ref = ref;
      this.pending.set(ref, { kind, msg, at: now, ref, callId: msg.call_id || '' });
    }
    this.ws.send(JSON.stringify(msg));
    return ref;
  }

  /** Sends now if the socket is open, welcomed or not (best effort on page hide). */
  sendNow(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Forgets the requests about a call (it ended). */
  forgetCall(id) {
    for (const [r, p] of this.pending) if (p.callId === id) this.pending.delete(r);
  }
}
