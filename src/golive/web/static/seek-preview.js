// The seek bar preview (the watch page's player): where a point on the bar would go, its
// time and a still of that moment, above the pointer (hovering or dragging) or the thumb
// (dragging by keys or a finger). The player says which still shows a moment: for a
// recording, the thumbnail route's at the storyboard's whole steps
// (golive.web.thumbnails.storyboard_step: at most 100 over the recording); in a DVR
// window, the first picture of the segment that holds it. Either way a sweep asks for
// few, and the browser and an edge cache them.

export const PREVIEW_WIDTH = 160; // pixels, as the storyboard's stills
const SWEEP_REST_MS = 60; // how long a sweep rests on a step before its still is asked for

export class SeekPreview {
  // `root` holds the preview (the player), `bar` is the seek bar (a range input over the
  // media's seconds); `still(seconds)` the URL of that moment's still (or null: none),
  // `label(seconds)` the time written beside it, `dragging()` whether the viewer holds
  // the thumb.
  constructor(root, bar, { still, label, dragging }) {
    this.root = root;
    this.bar = bar;
    this.still = still;
    this.label = label;
    this.box = document.createElement("div");
    this.box.className = "player-preview";
    this.box.hidden = true;
    this.box.setAttribute("aria-hidden", "true"); // the seek bar's own value text says it
    this.image = document.createElement("img");
    this.image.alt = "";
    this.image.width = PREVIEW_WIDTH;
    this.time = document.createElement("span");
    this.time.className = "player-preview-time";
    this.box.append(this.image, this.time);
    root.append(this.box);
    this.wanted = "";
    this.timer = 0;
    this.image.addEventListener("error", () => { this.image.hidden = true; });
    this.image.addEventListener("load", () => { this.image.hidden = false; });
    const fromPointer = (event) => this.atPointer(event.clientX);
    bar.addEventListener("pointermove", fromPointer);
    bar.addEventListener("pointerdown", fromPointer);
    bar.addEventListener("pointerleave", () => { if (!dragging()) this.box.hidden = true; });
    bar.addEventListener("input", () => {
      if (!bar.matches(":hover")) this.atThumb(); // keys or a finger
    });
    const hide = () => { if (!bar.matches(":hover")) this.box.hidden = true; };
    bar.addEventListener("change", hide);
    bar.addEventListener("blur", hide);
  }

  get min() {
    return Number(this.bar.min) || 0;
  }

  get max() {
    return Number(this.bar.max) || 0;
  }

  atPointer(clientX) {
    const rect = this.bar.getBoundingClientRect();
    if (!rect.width) return;
    const share = Math.min(Math.max((clientX - rect.left) / rect.width, 0), 1);
    this.show(this.min + share * (this.max - this.min), clientX);
  }

  atThumb() {
    const rect = this.bar.getBoundingClientRect();
    const min = this.min;
    const value = Number(this.bar.value);
    this.show(value, rect.left + ((value - min) / ((this.max - min) || 1)) * rect.width);
  }

  // The preview of `seconds` on the bar, centred on `clientX` inside the player.
  show(seconds, clientX) {
    const at = Math.min(Math.max(this.min, seconds), this.max);
    this.time.textContent = this.label(at);
    const url = this.still(at);
    if (!url) {
      clearTimeout(this.timer);
      this.wanted = "";
      this.image.hidden = true;
    } else if (url !== this.wanted) {
      this.wanted = url;
      clearTimeout(this.timer); // a sweep across the bar asks only where it rests
      this.timer = setTimeout(() => { this.image.src = this.wanted; },
        this.image.src ? SWEEP_REST_MS : 0);
    }
    this.box.hidden = false;
    const box = this.root.getBoundingClientRect();
    const half = this.box.offsetWidth / 2;
    this.box.style.left = `${Math.min(Math.max(clientX - box.left - half, 4), box.width - 2 * half - 4)}px`;
  }
}
