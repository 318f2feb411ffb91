// Call media: the WebRTC audio leg of one call toward the gateway. One
// CallMedia per call; a new offer (resume after a reload or a failed
// connection) replaces its RTCPeerConnection and keeps the microphone. Its
// level (100 ms) and stats (1 s) intervals are owned and cleared by close().

import { Timers } from './timers.js';

let micReq = null;

/** Asks for the microphone once; later calls share the same promise. */
export function acquireMic() {
  if (!micReq) {
    micReq = navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    }).catch((e) => { micReq = null; throw e; });
  }
  return micReq;
}

/** Stops the microphone (the call ended or the accept/dial was refused). */
export function releaseMic() {
  if (!micReq) return;
  const p = micReq;
  micReq = null;
  p.then((s) => s.getTracks().forEach((t) => t.stop())).catch(() => {});
}

/** Words for a getUserMedia or WebRTC failure. */
export function mediaErrorText(e) {
  if (e && e.name === 'NotAllowedError') return 'Microphone access is blocked. Allow it from the address bar, then call again.';
  if (e && e.name === 'NotFoundError') return 'No microphone found. Plug in a headset and try again.';
  return 'Could not start the audio: ' + (e && e.message ? e.message : e);
}

function dbPercent(rms) {
  if (rms <= 0) return 0;
  const db = 20 * Math.log10(rms);
  return Math.max(0, Math.min(100, Math.round((db + 60) * 100 / 60)));
}

export class CallMedia {
  /**
   * @param {object} o
   * @param {string} o.callId
   * @param {RTCIceServer[]} o.iceServers
   * @param {import('./audio.js').Sound} o.sound
   * @param {HTMLAudioElement} o.audio where the caller is played
   * @param {(msg: object, kind?: string) => string|null} o.send protocol send
   * @param {object} o.on callbacks: connection(state), levels({inRms,outRms,freq,inPct,outPct}), stats(s),
   *   failed() (the connection failed: the caller may resume), autoplayBlocked()
   */
  constructor({ callId, iceServers, sound, audio, send, on }) {
    this.callId = callId;
    this.iceServers = iceServers || [];
    this.sound = sound;
    this.audio = audio;
    this.send = send;
    this.on = on;
    this.pc = null;
    this.stream = null;
    this.inLevel = null;
    this.outLevel = null;
    this.muted = false;
    this.pendingIce = [];
    this.statsPrev = null;
    this.closed = false;
    this.timers = new Timers('call');
  }

  get alive() {
    return !!this.pc && !['closed', 'failed'].includes(this.pc.connectionState);
  }

  /** Applies the gateway's offer and sends the answer; throws on failure. */
  async answer(sdp) {
    this.closePC();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    pc.onicecandidate = (e) => {
      if (this.pc !== pc) return;
      // A null candidate is the end of candidates: sent as an empty candidate.
      this.send({ type: 'ice', call_id: this.callId, candidate: e.candidate ? e.candidate.toJSON() : { candidate: '' } });
    };
    pc.ontrack = (e) => {
      if (this.pc !== pc) return;
      const stream = e.streams[0] || new MediaStream([e.track]);
      this.audio.srcObject = stream;
      this.audio.play().catch(() => this.on.autoplayBlocked());
      if (this.outLevel) this.outLevel.close();
      this.outLevel = this.sound.analyse(stream);
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      this.on.connection(pc.connectionState);
      if (pc.connectionState === 'failed') this.on.failed();
    };
    this.on.connection(pc.connectionState);
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      const stream = await acquireMic();
      if (this.pc !== pc) return;
      this.stream = stream;
      for (const t of stream.getAudioTracks()) { t.enabled = !this.muted; pc.addTrack(t, stream); }
      if (!this.inLevel) this.inLevel = this.sound.analyse(stream);
      for (const cand of this.pendingIce.splice(0)) await addIce(pc, cand);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
    } catch (e) {
      if (this.pc !== pc) return; // replaced by a newer offer, or closed: not a failure of this call
      throw e;
    }
    if (this.pc !== pc) return;
    this.send({ type: 'answer', call_id: this.callId, sdp: pc.localDescription.sdp }, 'answer');
    this.startTimers();
  }

  /** A gateway candidate: added now, or kept until the offer is applied. */
  addRemoteIce(cand) {
    if (this.pc && this.pc.remoteDescription) addIce(this.pc, cand);
    else if (this.pendingIce.length < 64) this.pendingIce.push(cand);
  }

  setMuted(on) {
    this.muted = on;
    if (this.stream) this.stream.getAudioTracks().forEach((t) => { t.enabled = !on; });
  }

  startTimers() {
    if (this.timers.size) return;
    this.timers.interval(() => this.levels(), 100);
    this.timers.interval(() => this.stats(), 1000);
  }

  levels() {
    const inRms = this.inLevel ? this.inLevel.rms() : 0;
    const outRms = this.outLevel ? this.outLevel.rms() : 0;
    const freq = this.outLevel && outRms > 0.003 ? Math.round(this.outLevel.dominant()) : 0;
    this.on.levels({ inRms, outRms, freq, inPct: this.muted ? 0 : dbPercent(inRms), outPct: dbPercent(outRms) });
  }

  async stats() {
    const pc = this.pc;
    if (!pc) return;
    let rep;
    try { rep = await pc.getStats(); } catch { return; }
    if (this.pc !== pc) return;
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
    let loss = 0;
    if (this.statsPrev) {
      const dl = lost - this.statsPrev.lost, dr = recv - this.statsPrev.recv;
      loss = dl + dr > 0 ? Math.max(0, (dl * 100) / (dl + dr)) : 0;
    }
    this.statsPrev = { lost, recv };
    const s = {
      rtt_ms: rtt === null ? null : Math.round(rtt),
      loss_pct: Math.round(loss * 10) / 10,
      jitter_ms: inb && inb.jitter !== undefined ? Math.round(inb.jitter * 1000) : null,
      packets_received: recv,
      packets_lost: lost,
      packets_sent: outb ? outb.packetsSent || 0 : 0,
      bytes_sent: outb ? outb.bytesSent || 0 : 0,
      connection: pc.connectionState,
    };
    const q = (s.rtt_ms ?? 0) < 250 && s.loss_pct < 2 && (s.jitter_ms ?? 0) < 30 ? 'good'
      : (s.rtt_ms ?? 0) < 500 && s.loss_pct < 6 && (s.jitter_ms ?? 0) < 60 ? 'fair' : 'poor';
    s.quality = recv > 0 ? q : 'unknown';
    this.on.stats(s);
  }

  closePC() {
    const pc = this.pc;
    if (pc) {
      this.pc = null;
      pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = null;
      pc.close();
    }
    if (this.outLevel) { this.outLevel.close(); this.outLevel = null; }
    this.statsPrev = null;
  }

  /** Ends the media of the call: peer connection, analysers, microphone, timers. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.timers.dispose();
    this.closePC();
    if (this.inLevel) { this.inLevel.close(); this.inLevel = null; }
    this.stream = null;
    this.pendingIce = [];
    releaseMic();
    this.audio.srcObject = null;
  }
}

async function addIce(pc, cand) {
  try {
    await pc.addIceCandidate(cand && cand.candidate ? cand : null);
  } catch (e) { console.warn('callgw: ice candidate', e); }
}
