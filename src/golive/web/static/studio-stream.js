// One stream in the studio: live status, ingest health charts, preview, destinations, events,
// recordings, actions.
import { Player, readConfig } from "/static/player.js";
import { HealthChart } from "/static/health-chart.js";
import { api, formatTime, revealKey, showError } from "/static/studio-api.js";
import { startModeratorChat } from "/static/studio-chat.js";
import { startPreflight } from "/static/studio-preflight.js";

const POLL_MS = 2000;
const EVENTS_EVERY = 3; // polls

// "-23 dBFS (peak -18 dBFS)", with "silent for 12 s" or "clipping 40 %" when it is.
function audioLevel(levels) {
  if (!levels || levels.audio_rms_dbfs == null) return "–";
  let text = `${levels.audio_rms_dbfs.toFixed(0)} dBFS (peak ${levels.audio_peak_dbfs.toFixed(1)} dBFS)`;
  if (levels.silent_s >= 2) text += `, silent for ${levels.silent_s.toFixed(0)} s`;
  if (levels.clipping_ratio >= 0.05) text += `, clipping ${(levels.clipping_ratio * 100).toFixed(0)} %`;
  return text;
}

function picture(levels) {
  if (!levels || levels.black_s == null) return "–";
  return levels.black_s >= 1 ? `black for ${levels.black_s.toFixed(0)} s` : "not black";
}

export function startStreamPage() {
  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("studio-config").textContent);
  const id = config.streamId;
  const path = `live-streams/${encodeURIComponent(id)}`;
  const error = $("stream-error");
  const charts = {
    bitrate: new HealthChart($("chart-bitrate"), { color: "#5b8cff" }),
    fps: new HealthChart($("chart-fps"), { color: "#7fd18b" }),
    gop: new HealthChart($("chart-gop"), { color: "#f0b35b" }),
  };

  if ($("player") && $("golive-config")) {
    new Player($("player"), readConfig()).start();
  }

  function show(stream) {
    $("stream-name").textContent = stream.name;
    const status = $("stream-status");
    status.className = `status status-${stream.status}`;
    status.textContent = stream.status === "active" ? "live" : stream.status;
    $("ingest-key-prefix").textContent = `${stream.stream_key_prefix}…`;
    $("action-enable").hidden = stream.status !== "disabled";
    $("action-disable").hidden = stream.status === "disabled";
    const live = stream.live;
    const now = Date.now();
    if (live && live.connected) {
      charts.bitrate.add(now, live.video_bitrate_kbps);
      charts.fps.add(now, live.frame_rate);
      charts.gop.add(now, live.keyframe_interval_s);
    }
    const fmt = (value, unit, digits = 1) => (value == null ? "–" : `${Number(value).toFixed(digits)} ${unit}`);
    $("fact-bitrate").textContent = live ? fmt(live.video_bitrate_kbps, "kbit/s", 0) : "–";
    $("fact-fps").textContent = live ? fmt(live.frame_rate, "fps") : "–";
    $("fact-gop").textContent = live ? fmt(live.keyframe_interval_s, "s", 2) : "–";
    // With what an operator checks before going live: interlaced pictures (deinterlaced
    // here) and the CEA-608 captions a captioner or the encoder puts in them.
    const video = live && live.width ? [`${live.video_codec || ""} ${live.width}×${live.height}`.trim()] : [];
    if (video.length && live.interlaced) video.push("interlaced");
    if (video.length && live.captions) {
      // The channels their control codes named; CC1 is offered to viewers in any case.
      const channels = new Set(["CC1", ...(live.caption_channels || [])]);
      video.push(`captions (${[...channels].sort().join(", ")})`);
    }
    $("fact-video").textContent = video.length ? video.join(" · ") : "–";
    // Measured in the transcoder's graph (absent while nothing is transcoded).
    const transcoder = live && live.pipeline ? live.pipeline.transcoder : null;
    const levels = transcoder && transcoder.running ? transcoder.levels : null;
    $("fact-audio").textContent = audioLevel(levels);
    $("fact-picture").textContent = picture(levels);
    const input = (p) => `${p.protocol || "?"} from ${p.remote_address || "?"}`;
    let publisher = live
      ? (live.connected ? input(live) : "disconnected, waiting to reconnect")
      : "not connected";
    // With a backup key both inputs may be connected: the active one, and the standby.
    if (live && live.connected && live.role) publisher += ` (${live.role}, active)`;
    if (live && live.standby) {
      publisher += `; standby: ${input(live.standby)} (${live.standby.role}${live.standby.ready ? ", ready" : ""})`;
    }
    $("fact-publisher").textContent = publisher;
  }

  async function refreshEvents() {
    try {
      const events = (await api("GET", `${path}/events?limit=20`)).data;
      const list = $("event-list");
      if (!events.length) {
        const li = document.createElement("li");
        li.className = "muted";
        li.textContent = "No events yet.";
        list.replaceChildren(li);
        return;
      }
      list.replaceChildren(...events.map((event) => {
        const li = document.createElement("li");
        const time = document.createElement("time");
        time.dateTime = event.at;
        time.textContent = formatTime(event.at);
        const type = document.createElement("b");
        type.textContent = event.type;
        li.append(time, " ", type);
        if (event.data && event.data.reason) li.append(` — ${event.data.reason}`);
        return li;
      }));
    } catch (err) {
      showError(error, err);
    }
  }

  // Alerts with their diagnosis: what is wrong, the likely cause and the fix. The
  // node answers 404 for the route when its alerts are off: the block stays hidden.
  function alertRow(alert) {
    const li = document.createElement("li");
    li.className = `alert alert-${alert.state}`;
    li.dataset.rule = alert.rule;
    const head = document.createElement("p");
    const state = document.createElement("b");
    state.textContent = alert.state === "pending" ? "pending" : alert.state === "firing" ? "firing" : "resolved";
    head.append(state, ` ${alert.summary}`);
    const since = document.createElement("time");
    since.dateTime = alert.fired_at || alert.started_at;
    since.textContent = ` since ${formatTime(alert.fired_at || alert.started_at)}`;
    head.append(since);
    const cause = document.createElement("p");
    cause.className = "alert-cause";
    cause.textContent = `Likely cause: ${alert.cause}`;
    const fix = document.createElement("p");
    fix.className = "alert-fix";
    fix.textContent = `Fix: ${alert.fix}`;
    li.append(head, cause, fix);
    return li;
  }

  let alertsOff = false;
  async function refreshAlerts() {
    if (alertsOff) return;
    let body;
    try {
      body = (await api("GET", `${path}/alerts`)).data;
    } catch (err) {
      if (err.status === 404) alertsOff = true;
      else showError(error, err);
      return;
    }
    $("alerts").hidden = false;
    const list = $("alert-list");
    if (!body.active.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No alerts.";
      list.replaceChildren(li);
    } else {
      list.replaceChildren(...body.active.map(alertRow));
    }
    $("alert-recent-box").hidden = !body.recent.length;
    $("alert-recent").replaceChildren(...body.recent.slice(0, 10).map(alertRow));
  }

  // Recordings: the stream's assets, newest first, with play, download and delete.
  function duration(seconds) {
    const s = Math.round(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
  }

  function recordingRow(asset) {
    const li = document.createElement("li");
    li.className = "recording-row";
    li.dataset.id = asset.id;
    const time = document.createElement("time");
    time.dateTime = asset.created_at;
    time.textContent = new Date(asset.created_at).toLocaleString();
    const length = document.createElement("span");
    length.className = "muted small";
    length.textContent = asset.status === "ready" ? duration(asset.duration) : asset.status;
    li.append(time, length);
    const pid = (asset.playback_ids || [])[0];
    if (asset.status === "ready" && pid) {
      const play = document.createElement("a");
      play.href = `/watch/${encodeURIComponent(pid.id)}`;
      play.target = "_blank";
      play.rel = "noopener";
      play.textContent = "Play";
      play.className = "recording-play";
      const download = document.createElement("a");
      download.href = `/vod/${encodeURIComponent(pid.id)}/high.mp4`;
      download.download = `${($("stream-name").textContent || "recording").replace(/[^\w.-]+/g, "-")}-${asset.id}.mp4`;
      download.textContent = "Download";
      download.className = "recording-download";
      li.append(play, download);
    }
    if (asset.status !== "preparing") {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "danger recording-delete";
      remove.textContent = "Delete";
      remove.addEventListener("click", async () => {
        if (!confirm("Delete this recording and its media for good?")) return;
        try {
          await api("DELETE", `assets/${encodeURIComponent(asset.id)}`);
          refreshRecordings();
        } catch (err) {
          showError(error, err);
        }
      });
      li.append(remove);
    }
    return li;
  }

  // Past broadcasts, newest first, each with a link to its post-event report.
  function broadcastRow(broadcast) {
    const li = document.createElement("li");
    li.className = "broadcast-row";
    li.dataset.id = broadcast.id;
    const time = document.createElement("time");
    time.dateTime = broadcast.started_at;
    time.textContent = new Date(broadcast.started_at).toLocaleString();
    const facts = document.createElement("span");
    facts.className = "muted small";
    const peak = `${broadcast.peak_viewers}${broadcast.peak_viewers_truncated ? "+" : ""} viewers at peak`;
    facts.textContent = broadcast.ended_at
      ? `${duration(broadcast.duration_s)} · ${broadcast.protocol} · ${peak}`
      : `live for ${duration(broadcast.duration_s)} · ${broadcast.protocol} · ${peak}`;
    li.append(time, facts);
    if (broadcast.report_available) {
      const report = document.createElement("a");
      report.href = `/studio/broadcasts/${encodeURIComponent(broadcast.id)}/report`;
      report.target = "_blank";
      report.rel = "noopener";
      report.textContent = "Report";
      report.className = "broadcast-report";
      li.append(report);
    }
    return li;
  }

  async function refreshBroadcasts() {
    try {
      const broadcasts = (await api("GET", `${path}/broadcasts?limit=20`)).data;
      const list = $("broadcast-list");
      if (!broadcasts.length) {
        const li = document.createElement("li");
        li.className = "muted";
        li.textContent = "No broadcasts yet.";
        list.replaceChildren(li);
        return;
      }
      list.replaceChildren(...broadcasts.map(broadcastRow));
    } catch (err) {
      showError(error, err);
    }
  }

  async function refreshRecordings() {
    try {
      const assets = (await api("GET", `assets?live_stream_id=${encodeURIComponent(id)}&limit=1000`)).data;
      const list = $("recording-list");
      if (!assets.length) {
        const li = document.createElement("li");
        li.className = "muted";
        li.textContent = "No recordings. Turn recording on for this stream to keep its broadcasts.";
        list.replaceChildren(li);
        return;
      }
      list.replaceChildren(...assets.slice().reverse().map(recordingRow));
    } catch (err) {
      showError(error, err);
    }
  }

  // Viewer experience over the last 10 minutes, from GET live-streams/ID/qoe.
  const QOE_WINDOW_MS = 10 * 60 * 1000;
  const seconds = (value) => (value == null ? "–" : `${value.toFixed(1)} s`);
  const percent = (value) => (value == null ? "–" : `${value.toFixed(1)} %`);
  async function refreshQoe() {
    const to = new Date();
    const from = new Date(to.getTime() - QOE_WINDOW_MS);
    const query = `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
    let qoe;
    try {
      qoe = (await api("GET", `${path}/qoe?${query}`)).data.summary;
    } catch (err) {
      showError(error, err);
      return;
    }
    $("qoe-views").textContent = `${qoe.views} (${qoe.started_views} started)`;
    $("qoe-startup").textContent = `${seconds(qoe.startup_time_p50_s)} / ${seconds(qoe.startup_time_p95_s)}`;
    $("qoe-rebuffer").textContent = qoe.rebuffer_percentage == null ? "–"
      : `${percent(qoe.rebuffer_percentage)} · ${qoe.rebuffer_frequency_per_minute.toFixed(2)}/min`;
    $("qoe-latency").textContent = `${seconds(qoe.live_latency_p50_s)} / ${seconds(qoe.live_latency_p95_s)}`;
    $("qoe-failures").textContent = percent(qoe.playback_failure_percentage);
    $("qoe-exits").textContent = percent(qoe.exits_before_video_start_percentage);
    $("qoe-score").textContent = qoe.viewer_experience_score == null ? "–" : qoe.viewer_experience_score.toFixed(0);
  }

  // Destinations (simulcast): each one's state while live, with the reason of an error.
  function destinationRow(dest) {
    const li = document.createElement("li");
    li.className = `destination destination-${dest.status}`;
    li.dataset.destination = dest.id;
    const head = document.createElement("p");
    const state = document.createElement("b");
    state.className = "destination-state";
    state.textContent = dest.enabled ? dest.status : "disabled";
    head.append(state, ` ${dest.name} `);
    if (dest.rendition && dest.rendition !== "source") {
      const rendition = document.createElement("span");
      rendition.className = "destination-rendition";
      rendition.textContent = `${dest.rendition} `;
      head.append(rendition);
    }
    const url = document.createElement("code");
    url.textContent = dest.key ? `${dest.url} (key ${dest.key})` : dest.url;
    head.append(url);
    if (dest.since) {
      const since = document.createElement("time");
      since.dateTime = dest.since;
      since.textContent = ` since ${formatTime(dest.since)}`;
      head.append(since);
    }
    li.append(head);
    if (dest.reason) {
      const reason = document.createElement("p");
      reason.className = "destination-reason";
      reason.textContent = dest.reason;
      li.append(reason);
    }
    return li;
  }

  async function refreshDestinations() {
    let list;
    try {
      list = (await api("GET", `${path}/destinations`)).data;
    } catch (err) {
      showError(error, err);
      return;
    }
    if (!list.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No destinations.";
      $("destination-list").replaceChildren(li);
    } else {
      $("destination-list").replaceChildren(...list.map(destinationRow));
    }
  }

  let polls = 0;
  async function refresh() {
    try {
      show((await api("GET", path)).data);
      error.hidden = true;
      refreshAlerts();
      refreshDestinations();
    } catch (err) {
      if (err.status === 404) {
        location.assign("/studio");
        return;
      }
      showError(error, err);
    }
    if (polls++ % EVENTS_EVERY === 0) {
      refreshEvents();
      refreshRecordings();
      refreshBroadcasts();
      refreshQoe();
    }
  }

  async function act(method, suffix, question) {
    if (question && !confirm(question)) return null;
    try {
      const body = await api(method, `${path}${suffix}`);
      refresh();
      return body;
    } catch (err) {
      showError(error, err);
      return null;
    }
  }

  $("action-enable").addEventListener("click", () => act("PUT", "/enable"));
  $("action-disable").addEventListener("click", () => act("PUT", "/disable", "Disable this stream? A connected publisher is disconnected."));
  $("action-reset").addEventListener("click", async () => {
    const body = await act("POST", "/reset-stream-key", "Reset the stream key and the backup key? The old keys stop working, and publishers using them are disconnected.");
    if (body) revealKey(body.data);
  });
  $("action-delete").addEventListener("click", async () => {
    if (!confirm("Delete this stream for good? Its playback ids and chat go with it.")) return;
    try {
      await api("DELETE", path);
      location.assign("/studio");
    } catch (err) {
      showError(error, err);
    }
  });

  refresh();
  setInterval(() => {
    if (document.visibilityState === "visible") refresh();
  }, POLL_MS);
  startModeratorChat(id, config.chatUrl);
  startPreflight(path, $);
}
