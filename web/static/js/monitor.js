// Supervisor monitoring of live calls (docs/agent-protocol.md, "Hold,
// transfer, monitor"): listen, whisper, take over. One websocket to
// /ws/agent with the supervisor's token (an agent token of role
// supervisor; an API key cannot open it). The monitor leg brings two
// tracks, the caller and the agent, mixed here with WebAudio; in whisper
// and take-over the microphone is sent.
import { h } from './common.js';
import { AgentSocket } from './protocol.js';
import { acquireMic, releaseMic } from './media.js';

// rms is an analyser's time-domain level (0..1).
function rms(an) {
  const b = new Float32Array(an.fftSize);
  an.getFloatTimeDomainData(b);
  let s = 0;
  for (const x of b) s += x * x;
  return Math.sqrt(s / b.length);
}

// peak is an analyser's dominant frequency in Hz.
function peak(an, rate) {
  const f = new Float32Array(an.frequencyBinCount);
  an.getFloatFrequencyData(f);
  let best = 1;
  for (let i = 2; i < f.length; i++) if (f[i] > f[best]) best = i;
  return (best * rate) / an.fftSize;
}

const MODES = [['listen', 'Listen'], ['whisper', 'Whisper'], ['takeover', 'Take over']];

export class Monitor {
  /**
   * @param {object} o
   * @param {string} o.token the supervisor's token
   * @param {object} o.test window.callgwTest (monitor state is set there)
   * @param {() => void} o.rerender redraw the live calls (buttons follow the state)
   */
  constructor({ token, test, rerender }) {
    this.token = token;
    this.test = test;
    this.rerender = rerender;
    this.socket = null;
    this.callId = '';
    this.mode = '';
    this.state = ''; // offering | connected | closed | failed
    this.pc = null;
    this.ctx = null;
    this.sink = null; // muted <audio> elements keep Chrome's remote tracks flowing into WebAudio
    this.analyser = null;
    this.perTrack = [];
    this.tracks = 0;
    this.error = '';
    this.pendingIce = [];
    this.outbox = [];
    Object.assign(test, { monitor: { callId: '', mode: '', state: '', tracks: 0, level: 0, error: '' } });
  }

  ensureSocket() {
    if (this.socket) return;
    this.socket = new AgentSocket({
      token: this.token,
      onMessage: (m) => this.onMessage(m),
      onStatus: (st) => { if (st === 'online') this.flush(); },
      onRefused: () => { this.fail('Monitoring needs a supervisor agent token (callgw token --agent ID --role supervisor).'); },
    });
    this.socket.connect();
  }

  // send sends now, or once the socket is welcomed (the first monitor opens it).
  send(msg, kind) {
    if (this.socket && this.socket.send(msg, kind) !== null) return;
    this.outbox.push([msg, kind]);
  }

  flush() {
    for (const [msg, kind] of this.outbox.splice(0)) this.socket.send(msg, kind);
  }

  publish() {
    Object.assign(this.test.monitor, { callId: this.callId, mode: this.mode, state: this.state, tracks: this.tracks, error: this.error });
    this.rerender();
  }

  fail(text) {
    this.error = text;
    this.closeMedia();
    this.state = 'failed';
    this.publish();
  }

  /** Starts monitoring callId in mode, or switches mode when already on it. */
  async start(callId, mode) {
    this.error = '';
    this.ensureSocket();
    if (this.callId === callId && this.pc) {
      if (mode !== 'listen') await this.mic();
      this.send({ type: 'monitor', call_id: callId, mode }, 'monitor');
      this.mode = mode;
      this.publish();
      return;
    }
    if (this.callId) this.stop();
    this.callId = callId;
    this.mode = mode;
    this.state = 'offering';
    this.publish();
    if (mode !== 'listen') await this.mic();
    this.send({ type: 'monitor', call_id: callId, mode }, 'monitor');
  }

  async mic() {
    try { await acquireMic(); } catch (e) { this.error = 'No microphone: ' + (e && e.message ? e.message : e); }
  }

  stop() {
    if (!this.callId) return;
    this.send({ type: 'monitor_stop', call_id: this.callId }, 'monitor');
    this.closeMedia();
    this.callId = '';
    this.mode = '';
    this.state = 'closed';
    this.publish();
  }

  closeMedia() {
    if (this.pc) { this.pc.ontrack = this.pc.onicecandidate = this.pc.onconnectionstatechange = null; this.pc.close(); }
    this.pc = null;
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
    this.analyser = null;
    this.perTrack = [];
    if (this.sink) for (const a of this.sink) a.srcObject = null;
    this.sink = null;
    this.tracks = 0;
    this.pendingIce = [];
    releaseMic();
  }

  onMessage(m) {
    if (m.call_id && m.call_id !== this.callId) return;
    switch (m.type) {
      case 'monitor_offer': return this.answer(m.sdp).catch((e) => this.fail('Cannot monitor: ' + (e && e.message ? e.message : e)));
      case 'monitor_ice':
        if (!m.candidate || !m.candidate.candidate) return undefined;
        if (this.pc && this.pc.remoteDescription) this.pc.addIceCandidate(m.candidate).catch(() => {});
        else this.pendingIce.push(m.candidate);
        return undefined;
      case 'monitor_state':
        if (m.state === 'connected') this.state = 'connected';
        if (m.state === 'closed' || m.state === 'failed') { this.closeMedia(); this.state = m.state; this.callId = ''; this.mode = ''; }
        return this.publish();
      case 'call_ended':
        if (m.call_id === this.callId) { this.closeMedia(); this.callId = ''; this.mode = ''; this.state = 'closed'; this.publish(); }
        return undefined;
      case 'error':
        if (m.call_id === this.callId || (m.ref && m.code)) this.fail(m.message || m.code);
        return undefined;
      default: return undefined;
    }
  }

  async answer(sdp) {
    this.closeMedia();
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.pc = pc;
    this.ctx = new AudioContext();
    const mix = this.ctx.createGain();
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 2048;
    mix.connect(this.analyser);
    mix.connect(this.ctx.destination);
    this.sink = [];
    this.perTrack = [];
    pc.ontrack = (e) => {
      if (this.pc !== pc) return;
      const stream = new MediaStream([e.track]);
      const a = new Audio();
      a.muted = true;
      a.srcObject = stream;
      a.play().catch(() => {});
      this.sink.push(a);
      const src = this.ctx.createMediaStreamSource(stream);
      src.connect(mix);
      const an = this.ctx.createAnalyser();
      an.fftSize = 4096;
      src.connect(an);
      this.perTrack.push({ id: e.track.id, an });
      this.tracks++;
      this.publish();
    };
    pc.onicecandidate = (e) => {
      if (this.pc === pc) this.send({ type: 'monitor_ice', call_id: this.callId, candidate: e.candidate ? e.candidate.toJSON() : { candidate: '' } });
    };
    pc.onconnectionstatechange = () => { if (this.pc === pc && pc.connectionState === 'failed') this.fail('The monitor connection failed.'); };
    await pc.setRemoteDescription({ type: 'offer', sdp });
    try {
      const mic = await acquireMic();
      for (const t of mic.getAudioTracks()) pc.addTrack(t, mic);
    } catch { /* listening needs no microphone */ }
    for (const c of this.pendingIce.splice(0)) await pc.addIceCandidate(c).catch(() => {});
    await pc.setLocalDescription(await pc.createAnswer());
    this.send({ type: 'monitor_answer', call_id: this.callId, sdp: pc.localDescription.sdp });
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    this.level();
  }

  /** Keeps test.monitor.level (0..1, RMS of the mix) fresh while monitoring. */
  level() {
    const an = this.analyser;
    if (!an) return;
    const buf = new Float32Array(an.fftSize);
    const tick = () => {
      if (this.analyser !== an) return;
      an.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const x of buf) sum += x * x;
      this.test.monitor.level = Math.sqrt(sum / buf.length);
      this.test.monitor.trackAudio = (this.perTrack || []).map((t) => ({ level: rms(t.an), freq: peak(t.an, this.ctx.sampleRate) }));
      setTimeout(tick, 200);
    };
    tick();
  }

  /** Adds the monitor buttons to the live calls' rows (tbody of data-call-id rows). */
  decorate(body, calls) {
    const byId = new Map(calls.map((c) => [c.id, c]));
    for (const tr of body.querySelectorAll('tr[data-call-id]')) {
      const c = byId.get(tr.getAttribute('data-call-id'));
      const cell = h('td', { class: 'monitor-cell' });
      if (c && c.state === 'connected') {
        const on = this.callId === c.id;
        for (const [mode, label] of MODES) {
          cell.append(h('button', { type: 'button', class: 'btn small' + (on && this.mode === mode ? ' primary' : ''), 'data-testid': 'monitor-' + mode,
            'aria-pressed': String(on && this.mode === mode), onclick: () => this.start(c.id, mode) }, label));
        }
        if (on) cell.append(h('button', { type: 'button', class: 'btn small ghost', 'data-testid': 'monitor-stop', onclick: () => this.stop() }, 'Stop'));
        if (on && this.state) cell.append(h('span', { class: 'muted small', 'data-testid': 'monitor-state', text: ' ' + this.state }));
      }
      tr.append(cell);
    }
    if (this.error) body.append(h('tr', {}, h('td', { colspan: 7, class: 'error', 'data-testid': 'monitor-error', text: this.error })));
  }

  close() {
    this.stop();
    if (this.socket) this.socket.stop();
    this.socket = null;
  }
}
