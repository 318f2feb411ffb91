// The agent page's state, in one place, with explicit subscriptions.
// Changes go through update() or set(); subscribers run after each change
// (synchronously, in subscription order). A subscriber may change the state
// again: the subscribers then run once more, a bounded number of times.

export class Store {
  constructor(state) {
    this.state = state;
    this.subs = new Set();
    this.emitting = false;
    this.again = false;
  }

  /** Returns the state (read it; change it only through update or set). */
  get() { return this.state; }

  /** Changes the state in fn(state), then notifies the subscribers. */
  update(fn) {
    fn(this.state);
    this.emit();
  }

  /** Merges patch into the state, then notifies the subscribers. */
  set(patch) {
    Object.assign(this.state, patch);
    this.emit();
  }

  /** Calls fn(state) after every change; returns the unsubscribe function. */
  subscribe(fn) {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }

  emit() {
    if (this.emitting) { this.again = true; return; }
    this.emitting = true;
    try {
      for (let round = 0; round < 5; round++) {
        this.again = false;
        for (const fn of [...this.subs]) {
          try { fn(this.state); } catch (e) { console.error('callgw: subscriber', e); }
        }
        if (!this.again) break;
      }
    } finally {
      this.emitting = false;
    }
  }
}
