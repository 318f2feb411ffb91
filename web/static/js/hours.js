// Call hours: each number's weekly hours and holidays as Meta last reported
// them (GET /api/v1/routing carries call_hours, calling_status and open_now
// per number). The supervisor page lists every number; the agent's dialer
// shows, next to "Call from", whether the chosen number is open now.

import { h } from './common.js';

const days = ['MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY', 'SUNDAY'];
const hhmm = (s) => (s && s.length === 4 ? `${s.slice(0, 2)}:${s.slice(2)}` : s || '');

/** weeklyText: "Mon 09:00–17:00, Tue … (Europe/London)", or why there are none. */
export function weeklyText(ch) {
  if (!ch) return 'hours not reported by Meta yet';
  if ((ch.status || '').toUpperCase() !== 'ENABLED') return 'no call hours (always open)';
  const slots = [...(ch.weekly_operating_hours || [])]
    .sort((a, b) => days.indexOf(a.day_of_week) - days.indexOf(b.day_of_week) || a.open_time.localeCompare(b.open_time))
    .map((s) => `${s.day_of_week.slice(0, 1)}${s.day_of_week.slice(1, 3).toLowerCase()} ${hhmm(s.open_time)}–${hhmm(s.close_time)}`);
  return `${slots.join(', ') || 'closed all week'} (${ch.timezone_id || 'unknown time zone'})`;
}

/** holidaysText lists the holidays ("" when none). */
export function holidaysText(ch) {
  const hs = (ch && ch.holiday_schedule) || [];
  return hs.map((d) => `${d.date} ${hhmm(d.start_time)}–${hhmm(d.end_time)}`).join(', ');
}

function openText(n) {
  if (n.open_now === true) return 'Open now';
  if (n.open_now === false) return 'Closed now';
  return 'Open/closed unknown';
}

/** showNumberHours renders the supervisor's per-number hours table into #routing. */
export function showNumberHours(numbers) {
  const root = document.getElementById('routing');
  if (!root) return;
  let box = document.getElementById('number-hours');
  if (!box) {
    box = h('div', { id: 'number-hours' });
    root.prepend(box);
  }
  box.replaceChildren(
    h('h2', { text: 'Numbers and call hours' }),
    h('table', { class: 'table', 'data-testid': 'number-hours' },
      h('thead', {}, h('tr', {}, ...['Brand', 'Phone number id', 'Status', 'Weekly hours', 'Holidays'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, ...(numbers || []).map((n) => h('tr', { 'data-testid': 'number-hours-row', 'data-number': n.phone_number_id },
        h('td', { 'data-testid': 'hours-brand', text: n.brand }),
        h('td', { text: n.phone_number_id }),
        h('td', { 'data-testid': 'hours-status', text: `${openText(n)}${n.calling_status ? ' · calling ' + n.calling_status.toLowerCase() : ''}` }),
        h('td', { 'data-testid': 'hours-weekly', text: weeklyText(n.call_hours) }),
        h('td', { 'data-testid': 'hours-holidays', text: holidaysText(n.call_hours) || '—' }))))));
}

/** hoursNextTo shows the chosen "Call from" number's hours next to the selector, kept in step with it. */
export function hoursNextTo(sel, numbers) {
  if (!sel) return;
  let out = document.getElementById('dial-from-hours');
  if (!out) {
    out = h('div', { id: 'dial-from-hours', class: 'small muted', 'data-testid': 'dial-from-hours', 'aria-live': 'polite' });
    sel.after(out);
  }
  const show = () => {
    const n = (numbers || []).find((x) => x.phone_number_id === sel.value);
    out.dataset.open = n && n.open_now !== undefined ? String(n.open_now) : '';
    out.textContent = n ? `${openText(n)} · ${weeklyText(n.call_hours)}${holidaysText(n.call_hours) ? ' · holidays ' + holidaysText(n.call_hours) : ''}` : '';
  };
  sel.addEventListener('change', show);
  show();
}
