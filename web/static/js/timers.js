// Owned timers. Every setTimeout/setInterval of the agent page belongs to a
// Timers owner (the socket, a call's media, the view, the dialer…) that
// clears them all on teardown: call end, socket close, page hide.

const owners = new Set();

export class Timers {
  /** @param {string} name shown by counts() (test hook `callgwTest.timers`) */
  constructor(name) {
    this.name = name;
    this.ids = new Map(); // id -> 'timeout' | 'interval'
    owners.add(this);
  }

  timeout(fn, ms) {
    const id = setTimeout(() => { this.ids.delete(id); fn(); }, ms);
    this.ids.set(id, 'timeout');
    return id;
  }

  interval(fn, ms) {
    const id = setInterval(fn, ms);
    this.ids.set(id, 'interval');
    return id;
  }

  /** Clears one timer of this owner (0 or an unknown id: nothing). */
  clear(id) {
    const kind = this.ids.get(id);
    if (!kind) return;
    if (kind === 'interval') clearInterval(id); else clearTimeout(id);
    this.ids.delete(id);
  }

  clearAll() {
    for (const id of [...this.ids.keys()]) this.clear(id);
  }

  /** Clears everything and forgets the owner (a call's media when the call ends). */
  dispose() {
    this.clearAll();
    owners.delete(this);
  }

  get size() { return this.ids.size; }
}

/** Pending timers per owner name, e.g. {socket: 1, view: 1}; owners with none are left out. */
export function timerCounts() {
  const out = {};
  for (const o of owners) if (o.size) out[o.name] = (out[o.name] || 0) + o.size;
  return out;
}
