// Chat replay: a recording's chat shown beside the video, in time with it. The clock is
// the player's program date-time (hls.js `playingDate`), the wall-clock time the frame on
// screen was live, which is also the clock the server stamped each message's sent_at
// with. Messages come from GET /chat/PLAYBACK_ID/replay a minute at a time (keyset pages)
// and are shown once the video reaches them; a seek starts over from the minute before.

const TICK_MS = 250;
const WINDOW_MS = 60_000; // fetched ahead of the video
const BACKLOG_MS = 60_000; // shown at once after a seek: the minute before
const SEEK_BACK_MS = 1500; // the video went back further than this: a seek
const EDGE_POLL_MS = 2000; // how often to look for new messages near the live edge
const MAX_PAGES = 20; // per load: 20 x 200 messages a minute is plenty

export class ChatReplay {
  // panel: a ChatPanel (its log and rendering, no socket); clock: () => Date | null;
  // live: the video may be at the live edge, where later messages are still to come.
  constructor(panel, url, clock, { live = false } = {}) {
    this.panel = panel;
    this.live = live;
    this.url = url;
    this.clock = clock;
    this.generation = 0;
    this.queue = []; // fetched, not yet shown: ordered by (sent_at, id)
    this.seen = new Set(); // ids fetched since the last reset
    this.shownUntil = null; // the playing date (ms) of the last tick
    this.loadedUntil = null; // every message before this is fetched
    this.loading = false;
    this.nextLoadAt = 0;
    this.refused = false; // the replay answered 403: nothing more is asked
  }

  start() {
    this.panel.setState("replay");
    this.panel.el.joinForm.hidden = true;
    this.panel.el.sendForm.hidden = true;
    setInterval(() => this.tick(), TICK_MS);
  }

  tick() {
    if (this.refused) return;
    const date = this.clock();
    if (!date) return;
    const t = date.getTime();
    if (this.shownUntil === null || t < this.shownUntil - SEEK_BACK_MS
        || t > this.loadedUntil + WINDOW_MS) {
      this.reset(t);
      return;
    }
    this.shownUntil = t;
    this.showDue(t);
    if (!this.loading && this.loadedUntil - t < WINDOW_MS / 2 && performance.now() >= this.nextLoadAt) {
      this.load(this.loadedUntil, t + WINDOW_MS, t);
    }
  }

  reset(t) {
    this.generation += 1;
    this.queue = [];
    this.seen = new Set();
    this.panel.el.log.replaceChildren();
    this.shownUntil = t;
    this.loadedUntil = t - BACKLOG_MS;
    this.loading = false;
    this.load(t - BACKLOG_MS, t + WINDOW_MS, t);
  }

  showDue(t) {
    let shown = 0;
    while (shown < this.queue.length && Date.parse(this.queue[shown].sent_at) <= t) {
      const frame = this.queue[shown];
      this.panel.addMessage(frame);
      const line = this.panel.el.log.lastElementChild;
      if (line) line.dataset.shownAt = String(t); // the playing date it appeared at
      shown += 1;
    }
    if (shown) this.queue.splice(0, shown);
  }

  // Fetch [from, to); `now` is the playing date when asked. Near the live edge messages
  // after it may not be sent yet, so only up to it counts as loaded (and is asked again).
  async load(from, to, now) {
    const generation = this.generation;
    this.loading = true;
    try {
      let after = null;
      for (let page = 0; page < MAX_PAGES; page += 1) {
        // The URL may carry a query already (a signed recording's ?playback_token=).
        const url = new URL(this.url, location.origin);
        url.searchParams.set("from", (from / 1000).toFixed(3));
        url.searchParams.set("to", (to / 1000).toFixed(3));
        url.searchParams.set("limit", "200");
        if (after) url.searchParams.set("after", after);
        const response = await fetch(url);
        if (response.status === 403) {
          // A signed recording's chat without a chat token (aud c): retrying will not help.
          const body = await response.json().catch(() => ({}));
          this.refused = true;
          this.panel.setState(body.error || "this chat replay needs a chat token");
          return;
        }
        if (!response.ok) throw new Error(`replay: HTTP ${response.status}`);
        const body = await response.json();
        if (generation !== this.generation) return;
        this.add(body.messages);
        after = body.next;
        if (!after) break;
      }
      this.loadedUntil = Math.max(this.loadedUntil, this.live ? Math.min(to, now) : to);
      this.showDue(this.shownUntil);
    } catch (err) {
      if (generation === this.generation) this.panel.showError("Could not load the chat replay; retrying.");
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.nextLoadAt = performance.now() + EDGE_POLL_MS;
      }
    }
  }

  add(frames) {
    let added = false;
    for (const frame of frames) {
      if (frame.type !== "message" || this.seen.has(frame.id)) continue;
      this.seen.add(frame.id);
      this.queue.push(frame);
      added = true;
    }
    if (added) {
      this.queue.sort((a, b) => (Date.parse(a.sent_at) - Date.parse(b.sent_at)) || (a.id - b.id));
    }
  }
}
