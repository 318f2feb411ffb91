// WebAudio for the softphone: one AudioContext (unlocked by a user gesture),
// a calm generated ringtone, DTMF feedback tones and level/frequency analysers.

import { Timers } from './timers.js';

export class Sound {
  constructor() {
    const AC = window.AudioContext || window.webkitAudioContext;
    this.ctx = AC ? new AC({ latencyHint: 'interactive' }) : null;
    this.ringTimer = 0;
    this.timers = new Timers('sound');
    this.ringing = false;
    this.onstatechange = null;
    if (this.ctx) this.ctx.onstatechange = () => this.onstatechange && this.onstatechange(this.ctx.state);
  }

  /** True when the browser blocks sound until a user gesture. */
  get locked() { return !this.ctx || this.ctx.state !== 'running'; }

  /** Call from a user gesture (click, key press) to satisfy autoplay rules. */
  async unlock() {
    if (this.ctx && this.ctx.state === 'suspended') {
      try { await this.ctx.resume(); } catch { /* still locked */ }
    }
    return !this.locked;
  }

  // A soft two-note chime (E5 then C#5) with bell-like decay, every 3 s.
  _chime() {
    const ctx = this.ctx;
    if (!ctx || ctx.state !== 'running') return;
    const t0 = ctx.currentTime + 0.02;
    const master = ctx.createGain();
    master.gain.value = 0.22;
    master.connect(ctx.destination);
    [[659.25, 0], [554.37, 0.32], [659.25, 1.0], [554.37, 1.32]].forEach(([f, dt]) => {
      for (const [mult, level] of [[1, 1], [2, 0.18], [3, 0.06]]) {
        const o = ctx.createOscillator();
        const g = ctx.createGain();
        o.type = 'sine';
        o.frequency.value = f * mult;
        const t = t0 + dt;
        g.gain.setValueAtTime(0.0001, t);
        g.gain.exponentialRampToValueAtTime(level, t + 0.015);
        g.gain.exponentialRampToValueAtTime(0.0001, t + 0.6);
        o.connect(g).connect(master);
        o.start(t);
        o.stop(t + 0.65);
      }
    });
    this.timers.timeout(() => master.disconnect(), 2500);
  }

  startRing() {
    if (this.ringing) return;
    this.ringing = true;
    this._chime();
    this.ringTimer = this.timers.interval(() => this._chime(), 3000);
  }

  stopRing() {
    this.ringing = false;
    this.timers.clear(this.ringTimer);
    this.ringTimer = 0;
  }

  /** Plays the DTMF pair of a key for 120 ms, quietly, as feedback. */
  dtmf(key) {
    const ctx = this.ctx;
    if (!ctx || ctx.state !== 'running') return;
    const rows = { 1: 697, 2: 697, 3: 697, A: 697, 4: 770, 5: 770, 6: 770, B: 770, 7: 852, 8: 852, 9: 852, C: 852, '*': 941, 0: 941, '#': 941, D: 941 };
    const cols = { 1: 1209, 4: 1209, 7: 1209, '*': 1209, 2: 1336, 5: 1336, 8: 1336, 0: 1336, 3: 1477, 6: 1477, 9: 1477, '#': 1477, A: 1633, B: 1633, C: 1633, D: 1633 };
    if (!rows[key]) return;
    const t = ctx.currentTime + 0.01;
    const g = ctx.createGain();
    g.gain.setValueAtTime(0.08, t);
    g.gain.setValueAtTime(0.08, t + 0.11);
    g.gain.linearRampToValueAtTime(0, t + 0.12);
    g.connect(ctx.destination);
    for (const f of [rows[key], cols[key]]) {
      const o = ctx.createOscillator();
      o.frequency.value = f;
      o.connect(g);
      o.start(t);
      o.stop(t + 0.13);
    }
  }

  /** Returns an analyser fed by a MediaStream (not connected to the speakers). */
  analyse(stream) {
    if (!this.ctx || !stream) return null;
    const src = this.ctx.createMediaStreamSource(stream);
    const an = this.ctx.createAnalyser();
    an.fftSize = 8192;
    an.smoothingTimeConstant = 0.2;
    src.connect(an);
    return new Level(src, an, this.ctx.sampleRate);
  }
}

/** Level wraps an AnalyserNode: RMS level and dominant frequency. */
export class Level {
  constructor(src, an, rate) {
    this.src = src;
    this.an = an;
    this.rate = rate;
    this.time = new Float32Array(an.fftSize);
    this.freq = new Float32Array(an.frequencyBinCount);
  }

  /** RMS of the latest window, 0..1. */
  rms() {
    this.an.getFloatTimeDomainData(this.time);
    let s = 0;
    for (let i = 0; i < this.time.length; i++) s += this.time[i] * this.time[i];
    return Math.sqrt(s / this.time.length);
  }

  /** Dominant frequency (Hz) between 80 Hz and 4 kHz, parabolic-interpolated; 0 if silent. */
  dominant() {
    this.an.getFloatFrequencyData(this.freq);
    const binHz = this.rate / this.an.fftSize;
    const lo = Math.max(1, Math.floor(80 / binHz));
    const hi = Math.min(this.freq.length - 2, Math.ceil(4000 / binHz));
    let best = lo;
    for (let i = lo; i <= hi; i++) if (this.freq[i] > this.freq[best]) best = i;
    if (!isFinite(this.freq[best]) || this.freq[best] < -90) return 0;
    const a = this.freq[best - 1], b = this.freq[best], c = this.freq[best + 1];
    const d = a - 2 * b + c;
    const p = d === 0 || !isFinite(d) ? 0 : 0.5 * (a - c) / d;
    return (best + p) * binHz;
  }

  close() {
    try { this.src.disconnect(); } catch { /* already */ }
  }
}
