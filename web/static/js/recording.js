// Local call recording on the agent page (docs/agent-protocol.md,
// "Recording"). The server's CallInfo says how the call's own recording
// stands (`recording`: consent | on | stopped | refused; absent when the
// number does not record) and whether the agent may stop it
// (`recording_may_stop`). This module shows that next to the call's state
// and sends recording_stop; the server's `call` that follows says
// "stopped", and a refusal (`recording_refused`) is shown in its words.
import { h, errorMessage } from './common.js';

const words = {
  consent: "Asking the caller's consent to record…",
  on: 'Recording',
  stopped: 'Recording stopped',
  refused: 'Caller declined recording',
};

/**
 * @param {object} o
 * @param {import('./store.js').Store} o.store the agent page's store (s.call.info is the CallInfo)
 * @param {(msg: object, kind?: string) => string|null} o.send sends a protocol message
 * @param {(text: string, error?: boolean) => void} o.notice
 * @param {object} o.test window.callgwTest (recording, recordingError are set here)
 * @returns {{onError: (m: object, req: object|null) => boolean}} onError takes the
 *   errors of this module's requests (true when it was one)
 */
export function initRecording({ store, send, notice, test }) {
  const active = document.getElementById('active');
  const meta = active && active.querySelector('.call-meta');
  if (!meta) return { onError: () => false };
  Object.assign(test, { recording: '', recordingError: '' });

  const label = h('span', { class: 'rec-text' });
  const status = h('span', { class: 'rec-status', 'data-testid': 'recording-state', role: 'status', 'aria-live': 'polite' },
    h('span', { class: 'rec-dot', 'aria-hidden': 'true', text: '●' }), ' ', label);
  const stop = h('button', { type: 'button', class: 'btn small', 'data-testid': 'recording-stop', text: 'Stop recording', hidden: '' });
  const error = h('span', { class: 'error small', 'data-testid': 'recording-error', role: 'alert' });
  const box = h('div', { class: 'recording', 'data-testid': 'recording', hidden: '' }, status, stop, error);
  meta.after(box);

  let pending = ''; // the call id a recording_stop was sent for, until the answer
  const cur = () => store.get().call;
  stop.addEventListener('click', () => {
    const c = cur();
    if (!c || c.info.agent !== store.get().agent || pending) return;
    error.textContent = '';
    test.recordingError = '';
    if (send({ type: 'recording_stop', call_id: c.info.id }, 'recording_stop') === null) return;
    pending = c.info.id;
    stop.disabled = true;
  });

  let last = { id: '', state: '' };
  store.subscribe((s) => {
    const c = s.call;
    const st = (c && c.info.recording) || '';
    const id = c ? c.info.id : '';
    if (id !== last.id || st !== last.state) {
      if (id !== last.id || st === 'stopped') { pending = ''; }
      if (id !== last.id) { error.textContent = ''; test.recordingError = ''; }
      last = { id, state: st };
    }
    box.hidden = !st;
    box.dataset.state = st;
    label.textContent = words[st] || '';
    const mine = !!c && c.info.agent === s.agent && c.info.state === 'connected';
    stop.hidden = !(mine && st === 'on' && c.info.recording_may_stop);
    stop.disabled = !!pending;
    test.recording = st;
  });

  return {
    onError(m, req) {
      if (!req || req.kind !== 'recording_stop') return false;
      pending = '';
      stop.disabled = false;
      const text = errorMessage(m); // the server's words
      error.textContent = text;
      test.recordingError = text;
      notice(text, true);
      return true;
    },
  };
}
