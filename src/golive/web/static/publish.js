// /publish: go live from this browser over WHIP (RFC 9725). The stream key is the WHIP
// bearer token; it stays in the page (a #key= fragment is never sent to a server).
const $ = (id) => document.getElementById(id);
const form = $("publish-form");
const keyInput = $("publish-key");
const videoChoice = $("publish-video");
const cameraChoice = $("publish-camera");
const microphoneChoice = $("publish-microphone");
const qualityChoice = $("publish-quality");
const startButton = $("publish-start");
const stopButton = $("publish-stop");
const stateLine = $("publish-state");
const preview = $("publish-preview");

const WHIP_URL = "/whip";
const CONFIG = JSON.parse(document.getElementById("golive-config").textContent);
const ICE_WAIT_MS = 2000; // at most this long for host candidates before the offer goes
const BITRATES = { 1080: 4_500_000, 720: 2_500_000, 480: 1_000_000 };

let session = null; // { pc, stream, location, key }

function say(text, error = false) {
  stateLine.textContent = text;
  stateLine.classList.toggle("is-error", error);
}

const fragmentKey = new URLSearchParams(location.hash.slice(1)).get("key");
if (fragmentKey) {
  keyInput.value = fragmentKey;
  history.replaceState(null, "", location.pathname); // out of the address bar and history
}

async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[cameraChoice, "videoinput"], [microphoneChoice, "audioinput"]]) {
    const current = select.value;
    select.replaceChildren(new Option("Default", ""));
    devices.filter((d) => d.kind === kind && d.deviceId).forEach((d, i) => {
      select.add(new Option(d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`, d.deviceId));
    });
    select.value = current;
  }
}

async function capture() {
  const height = Number(qualityChoice.value);
  const audio = microphoneChoice.value ? { deviceId: { exact: microphoneChoice.value } } : true;
  if (videoChoice.value === "none") {
    return navigator.mediaDevices.getUserMedia({ audio });
  }
  if (videoChoice.value === "screen") {
    const screen = await navigator.mediaDevices.getDisplayMedia({
      video: { height: { ideal: height }, frameRate: { ideal: 30 } }, audio: true });
    if (!screen.getAudioTracks().length) {
      // No shared tab audio: the microphone instead, so the broadcast has sound.
      const mic = await navigator.mediaDevices.getUserMedia({ audio });
      mic.getAudioTracks().forEach((track) => screen.addTrack(track));
    }
    return screen;
  }
  const video = { height: { ideal: height }, frameRate: { ideal: 30 } };
  if (cameraChoice.value) video.deviceId = { exact: cameraChoice.value };
  return navigator.mediaDevices.getUserMedia({ video, audio });
}

function preferH264(transceiver) {
  // golive passes H.264 through and has to re-encode VP8: ask for H.264 first.
  const capabilities = RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("video");
  if (!capabilities || !transceiver.setCodecPreferences) return;
  const h264 = capabilities.codecs.filter((c) => c.mimeType.toLowerCase() === "video/h264");
  const rest = capabilities.codecs.filter((c) => c.mimeType.toLowerCase() !== "video/h264");
  if (h264.length) transceiver.setCodecPreferences([...h264, ...rest]);
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_WAIT_MS);
  });
}

async function refusal(response) {
  let text = "";
  try {
    text = await response.text();
    const body = JSON.parse(text);
    text = (body.error && (body.error.message || body.error)) || text;
  } catch (_) { /* plain text */ }
  if (response.status === 401 || response.status === 403) return `The stream key was refused: ${text}`;
  if (response.status === 409) return `This stream already has a publisher: ${text}`;
  return `golive refused (${response.status}): ${text}`;
}

async function start(event) {
  event.preventDefault();
  if (session) return;
  const key = keyInput.value.trim();
  startButton.disabled = true;
  say("Asking for your camera and microphone…");
  let stream;
  try {
    stream = await capture();
  } catch (error) {
    startButton.disabled = false;
    say(`No camera or microphone: ${error.message || error.name}`, true);
    return;
  }
  preview.srcObject = stream;
  preview.hidden = !stream.getVideoTracks().length;
  listDevices().catch(() => {}); // labels are readable once access was granted
  // The node's STUN/TURN servers (webrtc settings), as its WHEP players get them.
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: CONFIG.iceServers });
  for (const track of stream.getTracks()) {
    const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    if (track.kind === "video") {
      preferH264(transceiver);
      const parameters = transceiver.sender.getParameters();
      if (parameters.encodings && parameters.encodings.length) {
        parameters.encodings[0].maxBitrate = BITRATES[qualityChoice.value];
        transceiver.sender.setParameters(parameters).catch(() => {});
      }
    }
  }
  session = { pc, stream, location: null, key };
  pc.addEventListener("connectionstatechange", () => {
    if (!session || session.pc !== pc) return;
    if (pc.connectionState === "connected") say("Live.");
    if (pc.connectionState === "failed") say("The connection to golive failed; press Stop, then Go live again.", true);
    if (pc.connectionState === "disconnected") say("Connection interrupted; trying to recover…", true);
  });
  try {
    say("Connecting…");
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const response = await fetch(WHIP_URL, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${key}` },
      body: pc.localDescription.sdp,
    });
    if (response.status !== 201) throw new Error(await refusal(response));
    session.location = new URL(response.headers.get("Location"), location.href).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    stopButton.hidden = false;
    startButton.hidden = true;
    say("Connecting… (media starts once the connection is up)");
  } catch (error) {
    await stop(null, error.message || String(error));
  } finally {
    startButton.disabled = false;
  }
}

async function stop(_event, problem = "") {
  const current = session;
  session = null;
  if (current) {
    if (current.location) {
      // Ends the broadcast at once, instead of after its reconnect window.
      // (keepalive: the request still goes out when the page is being closed.)
      await fetch(current.location, {
        method: "DELETE", keepalive: true, headers: { Authorization: `Bearer ${current.key}` },
      }).catch(() => {});
    }
    current.pc.close();
    current.stream.getTracks().forEach((track) => track.stop());
  }
  preview.srcObject = null;
  preview.hidden = true;
  stopButton.hidden = true;
  startButton.hidden = false;
  say(problem || "Not live.", Boolean(problem));
}

form.addEventListener("submit", start);
stopButton.addEventListener("click", stop);
videoChoice.addEventListener("change", () => {
  cameraChoice.closest("label").hidden = videoChoice.value !== "camera";
  qualityChoice.closest("label").hidden = videoChoice.value === "none";
});
window.addEventListener("pagehide", () => { if (session) stop(null); });
if (!window.RTCPeerConnection || !navigator.mediaDevices) {
  startButton.disabled = true;
  say("This browser cannot publish over WebRTC.", true);
} else {
  listDevices().catch(() => {});
}
