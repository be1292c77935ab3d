// A small line chart on a canvas for one ingest metric over the last few minutes.
// No library: the studio needs three sparklines, not a charting framework.

export class HealthChart {
  constructor(canvas, { windowMs = 5 * 60_000, color = "#5b8cff", unit = "" } = {}) {
    this.canvas = canvas;
    this.windowMs = windowMs;
    this.color = color;
    this.unit = unit;
    this.points = []; // [timeMs, value]
    if (typeof ResizeObserver !== "undefined") new ResizeObserver(() => this.draw()).observe(canvas);
  }

  add(time, value) {
    if (value == null || !Number.isFinite(value)) return;
    this.points.push([time, value]);
    const oldest = time - this.windowMs;
    while (this.points.length && this.points[0][0] < oldest) this.points.shift();
    this.canvas.dataset.points = String(this.points.length);
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(100, canvas.clientWidth || canvas.width);
    const height = Math.max(60, canvas.clientHeight || canvas.height);
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    const muted = style.getPropertyValue("--muted").trim() || "#9a9fad";
    const pad = { left: 44, right: 8, top: 8, bottom: 16 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = muted;
    ctx.strokeStyle = "rgba(255,255,255,.08)";
    ctx.lineWidth = 1;
    if (!this.points.length) {
      ctx.fillText("no data yet", pad.left, pad.top + plotH / 2);
      return;
    }
    const now = this.points[this.points.length - 1][0];
    const start = now - this.windowMs;
    const values = this.points.map((p) => p[1]);
    const max = Math.max(...values) * 1.15 || 1;
    const x = (t) => pad.left + ((t - start) / this.windowMs) * plotW;
    const y = (v) => pad.top + plotH - (v / max) * plotH;
    for (const fraction of [0, 0.5, 1]) {
      const value = max * fraction;
      const gy = y(value);
      ctx.beginPath();
      ctx.moveTo(pad.left, gy);
      ctx.lineTo(width - pad.right, gy);
      ctx.stroke();
      ctx.fillText(value >= 100 ? Math.round(value).toString() : value.toFixed(1), 2, gy + 4);
    }
    ctx.fillText("−5 min", pad.left, height - 3);
    ctx.fillText("now", width - pad.right - 22, height - 3);
    ctx.strokeStyle = this.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    this.points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    const [lt, lv] = this.points[this.points.length - 1];
    ctx.fillStyle = this.color;
    ctx.beginPath();
    ctx.arc(x(lt), y(lv), 3, 0, Math.PI * 2);
    ctx.fill();
  }
}
