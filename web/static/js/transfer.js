// Hold, resume and transfer on the agent page (docs/agent-protocol.md,
// "Hold, transfer, monitor"). The server's CallInfo says whether the caller
// is on hold (`on_hold`) and how a transfer stands (`transfer`); this module
// renders that and sends hold, unhold, transfer, transfer_complete and
// transfer_cancel. A transfer's target needs nothing here: it is offered the
// call like any ringing call (call_offered) and accepts it as usual.
import { h } from './common.js';

/**
 * @param {object} o
 * @param {import('./store.js').Store} o.store the agent page's store (s.call.info is the CallInfo)
 * @param {(msg: object, kind?: string) => string|null} o.send sends a protocol message
 * @param {(text: string, error?: boolean) => void} o.notice
 * @param {object} o.test window.callgwTest (onHold, transfer are set here)
 */
export function initTransfer({ store, send, notice, test }) {
  const active = document.getElementById('active');
  const controls = active && active.querySelector('.controls');
  if (!controls) return;
  Object.assign(test, { onHold: false, transfer: '' });

  const holdBtn = h('button', { type: 'button', class: 'btn round', id: 'hold', 'data-testid': 'hold', 'aria-pressed': 'false',
    'aria-label': 'Put the caller on hold' }, h('span', { 'aria-hidden': 'true', text: '⏸' }), h('span', { class: 'lbl', text: 'Hold' }));
  const xferBtn = h('button', { type: 'button', class: 'btn round', id: 'transfer-toggle', 'data-testid': 'transfer-toggle',
    'aria-expanded': 'false', 'aria-controls': 'transfer-panel', 'aria-label': 'Transfer the call' },
  h('span', { 'aria-hidden': 'true', text: '⇄' }), h('span', { class: 'lbl', text: 'Transfer' }));
  controls.insertBefore(holdBtn, controls.querySelector('#hangup'));
  controls.insertBefore(xferBtn, controls.querySelector('#hangup'));

  const kind = h('select', { id: 'transfer-kind', 'data-testid': 'transfer-kind', 'aria-label': 'Transfer to' },
    h('option', { value: 'agent', text: 'Agent' }), h('option', { value: 'team', text: 'Team' }));
  const target = h('input', { id: 'transfer-target', 'data-testid': 'transfer-target', type: 'text', placeholder: 'agent or team id',
    'aria-label': 'Agent or team id', autocomplete: 'off', spellcheck: 'false' });
  const blind = h('input', { type: 'radio', name: 'transfer-mode', value: 'blind', id: 'transfer-blind', 'data-testid': 'transfer-blind', checked: '' });
  const warm = h('input', { type: 'radio', name: 'transfer-mode', value: 'warm', id: 'transfer-warm', 'data-testid': 'transfer-warm' });
  const start = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'transfer-start', text: 'Transfer' });
  const form = h('form', { class: 'transfer-form', autocomplete: 'off' }, kind, target,
    h('label', { for: 'transfer-blind' }, blind, ' Blind'), h('label', { for: 'transfer-warm' }, warm, ' Talk first'), start);
  const state = h('p', { class: 'muted', 'data-testid': 'transfer-state', 'aria-live': 'polite' });
  const complete = h('button', { type: 'button', class: 'btn primary', 'data-testid': 'transfer-complete', text: 'Complete transfer', hidden: '' });
  const cancel = h('button', { type: 'button', class: 'btn', 'data-testid': 'transfer-cancel', text: 'Cancel transfer', hidden: '' });
  const panel = h('div', { class: 'transfer', id: 'transfer-panel', 'data-testid': 'transfer-panel', role: 'group', 'aria-label': 'Transfer', hidden: '' },
    form, state, h('div', { class: 'dial-actions' }, complete, cancel));
  active.insertBefore(panel, document.getElementById('keypad'));

  const cur = () => store.get().call;
  const mine = (c) => !!c && c.info.agent === store.get().agent;

  holdBtn.addEventListener('click', () => {
    const c = cur();
    if (!mine(c)) return;
    send({ type: c.info.on_hold ? 'unhold' : 'hold', call_id: c.info.id }, 'hold');
  });
  xferBtn.addEventListener('click', () => {
    const open = panel.hidden;
    panel.hidden = !open;
    xferBtn.setAttribute('aria-expanded', String(open));
    if (open) target.focus();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const c = cur();
    const to = target.value.trim();
    if (!mine(c) || !to) return;
    const msg = { type: 'transfer', call_id: c.info.id, mode: warm.checked ? 'warm' : 'blind' };
    msg[kind.value === 'team' ? 'team' : 'agent'] = to;
    send(msg, 'transfer');
  });
  complete.addEventListener('click', () => { const c = cur(); if (mine(c)) send({ type: 'transfer_complete', call_id: c.info.id }, 'transfer'); });
  cancel.addEventListener('click', () => { const c = cur(); if (mine(c)) send({ type: 'transfer_cancel', call_id: c.info.id }, 'transfer'); });

  const words = { ringing: 'ringing', consulting: 'talking with', connecting: 'connecting to' };
  store.subscribe((s) => {
    const c = s.call;
    const own = mine(c) && c.info.state === 'connected';
    const x = c && c.info.transfer;
    holdBtn.hidden = xferBtn.hidden = !own;
    if (!own) panel.hidden = true;
    const held = !!(c && c.info.on_hold);
    holdBtn.setAttribute('aria-pressed', String(held));
    holdBtn.disabled = !!x;
    holdBtn.querySelector('.lbl').textContent = held ? 'Resume' : 'Hold';
    active.classList.toggle('on-hold', held);
    form.hidden = !!x;
    complete.hidden = !(x && x.phase === 'consulting' && own);
    cancel.hidden = !(x && (x.phase === 'ringing' || x.phase === 'consulting') && own);
    if (x && own) {
      state.textContent = `Transfer (${x.mode === 'warm' ? 'talk first' : 'blind'}): ${words[x.phase] || x.phase} ${x.to || x.team || ''}`.trim();
      panel.hidden = false;
    } else if (c && !own && x && x.phase === 'consulting') {
      state.textContent = `${x.from} is transferring this call to you: talk, then they hand it over.`;
    } else {
      state.textContent = held ? 'The caller is on hold and hears the hold music.' : '';
    }
    Object.assign(test, { onHold: held, transfer: x ? x.phase : '' });
  });
  return { notice };
}
