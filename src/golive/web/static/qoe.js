// QoE reporter: queues playback events and posts them in small batches to /qoe/PLAYBACK_ID
// (every ~10 s, and with navigator.sendBeacon when the page is hidden or goes away).
// Event times are performance.now() milliseconds; the server maps them onto its own clock.

const FLUSH_MS = 10_000;
const MAX_BATCH = 100;
const MAX_QUEUE = 500;

function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// A null url reports nothing (a recording's page: QoE is stored per live stream, and the
// intake answers 404 for an asset's playback id).
export class QoeReporter {
  constructor(url) {
    this.url = url;
    this.viewId = randomId();
    this.queue = [];
    this.pendingStall = null; // () => event fields for a stall still in progress
    this.pendingPause = null; // () => event fields for the viewer's pause so far
    if (!url) return;
    this.timer = setInterval(() => this.flush(false), FLUSH_MS);
    const leave = () => this.flush(true);
    addEventListener("pagehide", leave);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") leave();
    });
  }

  add(type, fields = {}) {
    if (!this.url) return;
    if (this.queue.length >= MAX_QUEUE) this.queue.shift(); // bounded: the oldest go first
    this.queue.push({ type, t: Math.max(0, performance.now()), ...fields });
    if (this.queue.length >= MAX_BATCH) this.flush(false);
  }

  requeue(events) {
    this.queue = events.concat(this.queue).slice(-MAX_QUEUE);
  }

  flush(leaving) {
    if (leaving && this.pendingStall) {
      const stall = this.pendingStall();
      if (stall) this.add("stall", stall);
    }
    if (leaving && this.pendingPause) {
      const pause = this.pendingPause();
      if (pause) this.add("pause", pause);
    }
    while (this.queue.length) {
      const events = this.queue.splice(0, MAX_BATCH);
      const body = JSON.stringify({ view_id: this.viewId, sent: performance.now(), events });
      if (leaving && navigator.sendBeacon) {
        navigator.sendBeacon(this.url, new Blob([body], { type: "application/json" }));
      } else {
        fetch(this.url, {
          method: "POST",
          body,
          headers: { "Content-Type": "application/json" },
          keepalive: body.length < 60_000,
        }).then((answer) => {
          // 503 (store busy) and 429 (slow down) mean nothing was stored: keep the events
          // for the next flush, ahead of newer ones, within the queue's bound.
          if (answer.status === 503 || answer.status === 429) this.requeue(events);
        }).catch(() => {}); // QoE must never disturb playback
      }
    }
  }
}
