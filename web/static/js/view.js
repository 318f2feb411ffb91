// The agent page's view: renders the store's state into the page (top bar,
// ringing cards, in-call view, idle card, missed calls, notices). It keeps
// no state of its own besides what it last drew; its 500 ms tick (call
// timer, ring countdown, title) runs only while a call rings or is up.

import { maskNumber, fmtDuration, fmtWhen, initials, h, fmtMicros, runningCost } from './common.js';
import { Timers } from './timers.js';

const $ = (id) => document.getElementById(id);

/** Words for the call pill: the call's state and, while an agent owns it, its media. */
export function callStateText(c) {
  if (c.ending) return 'Ending…';
  if (!c.local) return 'On a call in another tab';
  const { state, media } = c.info;
  switch (state) {
    case 'dialing': return 'Ringing…'; // outbound: the customer's phone rings until they pick up
    case 'connecting': return media === 'up' ? 'Connecting…' : 'Connecting audio…';
    case 'connected': return media === 'connecting' ? 'Connecting audio…' : 'Connected';
    case 'ringing': return 'Ringing';
    default: return state || '';
  }
}

export class View {
  /**
   * @param {object} actions accept(id), decline(id), callBack(missed), dismissMissed(id)
   */
  constructor(actions) {
    this.actions = actions;
    this.timers = new Timers('view');
    this.noticeTimers = new Timers('notice');
    this.tickTimer = 0;
    this.incomingKey = null;
    this.missedKey = null;
    this.state = null;
  }

  setConn(cls, text) {
    const el = $('connection');
    el.className = 'conn ' + cls;
    el.querySelector('.conn-text').textContent = text;
  }

  notice(text, isError) {
    const el = $('notice');
    el.textContent = text;
    el.className = 'toast' + (isError ? ' error' : '');
    el.hidden = false;
    this.noticeTimers.clearAll();
    this.noticeTimers.timeout(() => { el.hidden = true; }, isError ? 8000 : 5000);
  }

  /** Meters from CallMedia's level callback; zero when there is no call. */
  levels(l) {
    const inP = l ? l.inPct : 0, outP = l ? l.outPct : 0;
    $('meter-in').style.width = inP + '%';
    $('meter-out').style.width = outP + '%';
    $('meter-in').parentElement.setAttribute('aria-valuenow', inP);
    $('meter-out').parentElement.setAttribute('aria-valuenow', outP);
  }

  render(s) {
    this.state = s;
    this.setConn(s.conn.cls, s.conn.text);
    // Signed in: the sign-in card goes; the app shows from the first welcome on.
    $('signin').hidden = !!s.token;
    $('app').hidden = !(s.token && s.shown);
    $('sign-out').hidden = !(s.token && s.shown);
    $('signin-error').textContent = s.signinError || '';
    $('agent-name').textContent = s.agent || '';
    $('demo').hidden = !s.settings.demo;
    $('enable-sound').hidden = !s.soundLocked;

    const available = s.presence === 'available';
    const pres = $('presence');
    pres.disabled = !s.welcomed;
    pres.setAttribute('aria-pressed', String(available));
    pres.className = 'presence ' + (available ? 'available' : 'away');
    pres.querySelector('.presence-text').textContent = available ? 'Available' : 'Away';
    pres.title = available ? 'You receive calls. Click to go away.' : 'You do not receive calls. Click to become available.';

    this.renderIncoming(s);
    this.renderActive(s);
    $('idle').hidden = !!s.call || s.ringing.size > 0;
    $('idle-title').textContent = available ? 'Ready for calls' : 'You are away';
    $('idle-sub').textContent = available ? 'Incoming WhatsApp calls will ring here.' : 'Set yourself available to receive calls.';
    $('last-call').textContent = s.lastCall || '';
    document.body.classList.toggle('is-ringing', s.ringing.size > 0 && !s.call);
    document.body.classList.toggle('in-call', !!s.call);
    this.renderMissed(s);
    this.renderQuality(s);

    // The tick runs only while something moves on screen.
    const moving = s.ringing.size > 0 || !!s.call;
    if (moving && !this.tickTimer) this.tickTimer = this.timers.interval(() => this.tick(), 500);
    if (!moving && this.tickTimer) { this.timers.clear(this.tickTimer); this.tickTimer = 0; }
    this.tick();
  }

  renderIncoming(s) {
    // Redraw only when the ringing calls change, so that buttons under the
    // pointer are not replaced by identical ones.
    const key = JSON.stringify([...s.ringing.values()].map((c) => [c.id, c.name, c.from, c.brand, c.ring_expires_at, c.offer_expires_at, s.accepting.has(c.id), c.transfer ? c.transfer.from : '']).concat([s.settings.mask_numbers]));
    if (key === this.incomingKey) return;
    this.incomingKey = key;
    const focusFirst = s.ringing.size > 0 && (document.activeElement === document.body || !document.activeElement);
    $('incoming-list').replaceChildren(...[...s.ringing.values()].map((c) => {
      const busy = s.accepting.has(c.id);
      return h('div', { class: 'incoming', 'data-testid': 'incoming-call', 'data-call-id': c.id, role: 'alertdialog', 'aria-label': 'Incoming WhatsApp call' },
        h('div', { class: 'avatar ring', 'aria-hidden': 'true', text: initials(c.name, c.from) }),
        h('div', { class: 'incoming-who' },
          h('div', { class: 'kicker', text: 'Incoming WhatsApp call' + (c.state === 'waiting' ? ' · waiting in the queue' : '') + (c.transfer ? ` · transferred by ${c.transfer.from}` : '') }),
          // brand: which business number the customer called (several brands, one page).
          c.brand ? h('div', { class: 'brand-tag', 'data-testid': 'caller-brand', text: c.brand }) : null,
          h('div', { class: 'peer-name', 'data-testid': 'caller-name', text: c.name || 'Unknown caller' }),
          h('div', { class: 'peer-number muted', 'data-testid': 'caller-number', text: maskNumber(c.from, s.settings.mask_numbers) }),
          // payload: what brought the caller (a deeplink or CTA payload). User input: text only.
          c.payload ? h('div', { class: 'muted small', 'data-testid': 'caller-payload', title: 'What the caller came from', text: c.payload }) : null,
          // the countdown: this agent's offer (round_robin / longest_idle ring time), else the call's ring.
          h('div', { class: 'countdown muted small', 'data-testid': 'ring-countdown', 'data-expires': c.offer_expires_at || c.ring_expires_at || '' })),
        h('div', { class: 'incoming-actions' },
          h('button', { type: 'button', class: 'btn round accept', 'data-testid': 'accept', disabled: busy, 'aria-label': `Accept call from ${c.name || 'caller'}`, onclick: () => this.actions.accept(c.id) },
            h('span', { 'aria-hidden': 'true', text: '✆' }), h('span', { class: 'lbl', text: busy ? 'Connecting…' : 'Accept' })),
          h('button', { type: 'button', class: 'btn round danger', 'data-testid': 'decline', disabled: busy, 'aria-label': `Decline call from ${c.name || 'caller'}`, onclick: () => this.actions.decline(c.id) },
            h('span', { 'aria-hidden': 'true', text: '✕' }), h('span', { class: 'lbl', text: 'Decline' }))));
    }));
    if (focusFirst) {
      const first = document.querySelector('[data-testid="accept"]');
      if (first) first.focus();
    }
  }

  renderActive(s) {
    const c = s.call;
    $('active').hidden = !c;
    if (!c) {
      $('keypad').hidden = true;
      $('keypad-toggle').setAttribute('aria-expanded', 'false');
      $('dtmf-sent').textContent = '';
      this.levels(null);
      return;
    }
    const out = c.info.direction === 'business_initiated';
    const num = out ? c.info.to : c.info.from;
    $('active-avatar').textContent = initials(c.info.name, num);
    $('active-name').textContent = c.info.name || (out ? 'Customer' : 'Unknown caller');
    $('active-number').textContent = (out ? 'Outbound · ' : 'WhatsApp · ') + maskNumber(num, s.settings.mask_numbers && !out);
    $('active-brand').textContent = c.info.brand ? (out ? 'From ' : 'To ') + c.info.brand : '';
    const st = $('call-state');
    st.textContent = callStateText(c);
    st.dataset.state = c.ending ? 'ending' : c.info.state;
    st.dataset.media = c.info.media || '';
    const mute = $('mute');
    mute.setAttribute('aria-pressed', String(c.muted));
    mute.querySelector('.lbl').textContent = c.muted ? 'Unmute' : 'Mute';
    mute.disabled = !c.local;
    $('hangup').disabled = !!c.ending;
    $('dtmf-sent').textContent = c.dtmfSent ? 'Sent: ' + c.dtmfSent.slice(-24) : '';
  }

  renderQuality(s) {
    const el = $('quality');
    const q = s.call && s.call.quality;
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

  renderMissed(s) {
    const key = JSON.stringify([s.missed, s.settings.mask_numbers]);
    if (key === this.missedKey) return;
    this.missedKey = key;
    const ul = $('missed-list');
    $('missed-count').textContent = s.missed.length ? `(${s.missed.length})` : '';
    if (!s.missed.length) { ul.replaceChildren(h('li', { class: 'empty muted', text: 'No missed calls.' })); return; }
    ul.replaceChildren(...s.missed.map((m) => {
      const masked = !m.from || m.from.includes('*');
      return h('li', { 'data-testid': 'missed-row', 'data-call-id': m.id },
        h('div', { class: 'avatar small', 'aria-hidden': 'true', text: initials(m.name, m.from) }),
        h('div', { class: 'grow' }, h('div', { text: m.name || 'Unknown caller' }), h('div', { class: 'muted small', text: `${maskNumber(m.from, s.settings.mask_numbers)} · ${fmtWhen(m.at)}` })),
        h('button', {
          type: 'button', class: 'btn small', 'data-testid': 'call-back',
          title: masked ? 'Put this caller in the dialer (the number stays hidden)' : 'Put this number in the dialer',
          'aria-label': `Call back ${m.name || 'caller'}`, onclick: () => this.actions.callBack(m),
        }, 'Call back'),
        h('button', { type: 'button', class: 'btn ghost small', 'aria-label': 'Dismiss', title: 'Dismiss', onclick: () => this.actions.dismissMissed(m.id) }, '✕'));
    }));
  }

  tick() {
    const s = this.state;
    if (!s) return;
    const c = s.call;
    const timer = $('call-timer');
    timer.textContent = c && c.connectedAt ? fmtDuration((Date.now() - c.connectedAt) / 1000) : '00:00';
    const cost = $('call-cost');
    if (cost) {
      const price = c && c.info && c.info.price;
      cost.hidden = !(price && c.connectedAt);
      cost.textContent = price && c.connectedAt ? `≈ ${fmtMicros(runningCost(price, (Date.now() - c.connectedAt) / 1000))}` : '';
    }
    for (const el of document.querySelectorAll('.countdown[data-expires]')) {
      const t = Date.parse(el.dataset.expires);
      el.textContent = isNaN(t) ? '' : `Rings for ${Math.max(0, Math.ceil((t - Date.now()) / 1000))} s more`;
    }
    document.title = s.ringing.size && !c ? '📞 Incoming call — callgw'
      : c && c.connectedAt ? `● ${timer.textContent} — callgw` : 'callgw · Agent';
  }

  /** Clears the view's timers (page hide). */
  dispose() {
    this.timers.clearAll();
    this.tickTimer = 0;
    this.noticeTimers.clearAll();
  }
}
