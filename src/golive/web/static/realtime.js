// Real-time playback over WHEP: one recvonly RTCPeerConnection, a non-trickle offer POSTed
// to /whep/PLAYBACK_ID, the answer applied, DELETE on the session's Location to leave.
const GATHER_TIMEOUT_MS = 2000;
const CONNECT_TIMEOUT_MS = 10_000;
const STATS_MS = 1000;

export class RealtimeError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

function waitForGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS); // send what has been gathered by then
  });
}

async function refusal(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  const error = (body && body.error) || {};
  if (response.status === 503 && error.reason === "viewer_limit") {
    return new RealtimeError("Real-time is full (viewer limit reached)", "viewer_limit");
  }
  if (response.status === 503) return new RealtimeError("Real-time is not ready yet", "starting");
  if (response.status === 404) return new RealtimeError("Real-time is not available for this stream", "unavailable");
  return new RealtimeError(`Real-time was refused (HTTP ${response.status})`, `http_${response.status}`);
}

export class RealtimeSession {
  constructor(config, onFailure) {
    this.config = config;
    this.onFailure = onFailure; // called once if the connection drops after it was up
    this.pc = null;
    this.location = null;
    this.statsTimer = 0;
    this.delay = null; // jitter-buffer delay in seconds, once getStats has it
    this.framesDecoded = 0;
    this.stopped = false;
  }

  async start() {
    const pc = new RTCPeerConnection({ iceServers: this.config.iceServers || [] });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const stream = new MediaStream();
    pc.addEventListener("track", (event) => stream.addTrack(event.track));
    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(pc);
    if (this.stopped) throw new RealtimeError("Real-time was cancelled", "cancelled");
    let response;
    try {
      response = await fetch(this.config.whepUrl, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: pc.localDescription.sdp,
      });
    } catch {
      throw new RealtimeError("Real-time could not reach the server", "network");
    }
    if (response.status !== 201) throw await refusal(response);
    const location = response.headers.get("Location");
    this.location = location ? new URL(location, new URL(this.config.whepUrl, window.location.href)).href : null;
    const answer = await response.text();
    if (this.stopped) {
      this.stopped = false;
      this.stop(); // stopped while the POST was in flight: end the session it made
      throw new RealtimeError("Real-time was cancelled", "cancelled");
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    await this.connected();
    pc.addEventListener("connectionstatechange", () => {
      if (["failed", "disconnected", "closed"].includes(pc.connectionState) && !this.stopped) {
        this.onFailure(new RealtimeError("The real-time connection was lost", "connection_lost"));
      }
    });
    this.statsTimer = setInterval(() => this.sampleStats(), STATS_MS);
    return stream;
  }

  connected() {
    const pc = this.pc;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new RealtimeError("The real-time connection could not be set up", "ice_timeout"));
      }, CONNECT_TIMEOUT_MS);
      const check = () => {
        if (pc.connectionState === "connected") {
          cleanup();
          resolve();
        } else if (["failed", "closed"].includes(pc.connectionState)) {
          cleanup();
          reject(new RealtimeError("The real-time connection failed", "ice_failed"));
        }
      };
      const cleanup = () => {
        clearTimeout(timer);
        pc.removeEventListener("connectionstatechange", check);
      };
      pc.addEventListener("connectionstatechange", check);
      check();
    });
  }

  async sampleStats() {
    if (!this.pc || this.stopped) return;
    try {
      const report = await this.pc.getStats();
      report.forEach((s) => {
        if (s.type !== "inbound-rtp" || s.kind !== "video") return;
        this.framesDecoded = s.framesDecoded || 0;
        if (s.jitterBufferEmittedCount > 0 && Number.isFinite(s.jitterBufferDelay)) {
          this.delay = s.jitterBufferDelay / s.jitterBufferEmittedCount;
        }
      });
    } catch {
      // stats are a nicety
    }
  }

  // Ends the session: closes the peer connection and DELETEs the WHEP resource.
  stop() {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.statsTimer);
    const pc = this.pc;
    if (!this.location) {
      if (pc) pc.close();
      return;
    }
    // DELETE first: closing the connection first would end the session on the server, and
    // the DELETE that follows would find nothing (404).
    const close = () => pc && pc.close();
    fetch(this.location, { method: "DELETE", keepalive: true }).then(close, close);
    setTimeout(close, 2000);
  }
}
