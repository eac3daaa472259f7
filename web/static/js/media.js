// Camera and microphone: capability check, getUserMedia with a chosen device, the device lists,
// a microphone level meter, and the speaker (setSinkId, where the browser has it).

// The same checks as browser-check.js (which also covers browsers that never run a module).
export function browserSupported() {
  return Boolean(
    window.RTCPeerConnection &&
      window.crypto?.subtle &&
      typeof Object.hasOwn === "function" &&
      navigator.mediaDevices &&
      navigator.mediaDevices.getUserMedia &&
      window.WebSocket &&
      window.isSecureContext !== false,
  );
}

export const speakerSelectable = "setSinkId" in HTMLMediaElement.prototype;
// Phones' browsers have no getDisplayMedia: no "share screen" button there.
export const screenShareSupported = Boolean(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);

/** Camera and microphone; `devices` may name a deviceId per kind. Throws a DOMException. */
export async function getMedia({ camera, microphone } = {}) {
  return navigator.mediaDevices.getUserMedia({
    audio: {
      ...(microphone ? { deviceId: { exact: microphone } } : {}),
      echoCancellation: true,
      noiseSuppression: true,
      autoGainControl: true,
    },
    video: {
      ...(camera ? { deviceId: { exact: camera } } : {}),
      width: { ideal: 1280 },
      height: { ideal: 720 },
      frameRate: { ideal: 30, max: 30 },
    },
  });
}

/** One new track of `kind` ("audio" | "video") from `deviceId`. */
export async function getTrack(kind, deviceId) {
  const constraints = kind === "audio" ? { audio: { deviceId: { exact: deviceId } } } : {
    video: { deviceId: { exact: deviceId }, width: { ideal: 1280 }, height: { ideal: 720 } },
  };
  const stream = await navigator.mediaDevices.getUserMedia(constraints);
  return stream.getTracks()[0];
}

/**
 * A camera track facing `facing` ("user" | "environment"), for a phone's front/back switch.
 * `ideal`, not `exact`: a tablet with one camera still answers with the one it has.
 */
export async function getFacingTrack(facing) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: facing }, width: { ideal: 1280 }, height: { ideal: 720 } },
  });
  return stream.getVideoTracks()[0];
}

/** True where a front/back camera switch makes sense: a touch device, or several cameras. */
export async function cameraSwitchUseful() {
  if (!navigator.mediaDevices?.getSupportedConstraints?.().facingMode) return false;
  if (matchMedia("(pointer: coarse)").matches) return true;
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  return devices.filter((device) => device.kind === "videoinput").length > 1;
}

/** "denied" | "missing" | "busy" | "other": what went wrong, for the message to show. */
export function mediaErrorKind(error) {
  const name = error && error.name;
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") return "denied";
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") return "missing";
  if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") return "busy";
  return "other";
}

/**
 * Fill the <select>s for camera, microphone and speaker with the devices there are, selecting
 * the ones `stream` uses. Labels are only known after permission was granted.
 */
export async function fillDeviceSelects({ camera, microphone, speaker }, stream, labels) {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const using = (kind) => stream?.getTracks().find((track) => track.kind === kind)?.getSettings().deviceId;
  fill(camera, devices.filter((d) => d.kind === "videoinput"), using("video"), labels.camera);
  fill(microphone, devices.filter((d) => d.kind === "audioinput"), using("audio"), labels.microphone);
  if (speaker) {
    const outputs = devices.filter((d) => d.kind === "audiooutput");
    fill(speaker, outputs, speaker.value || "default", labels.speaker);
    speaker.closest(".speaker-field").hidden = !speakerSelectable || outputs.length === 0;
  }
}

function fill(select, devices, selected, label) {
  const options = devices.map((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = device.label || `${label} ${index + 1}`;
    option.selected = device.deviceId === selected;
    return option;
  });
  select.replaceChildren(...options);
  select.disabled = options.length <= 1;
}

export async function setSpeaker(element, deviceId) {
  if (speakerSelectable && deviceId) await element.setSinkId(deviceId);
}

/** A level meter for `track`, drawn into `fill` (a bar scaled 0…1); returns a stop function. */
export function startLevelMeter(track, fillElement, meterElement) {
  const AudioContext = window.AudioContext || window.webkitAudioContext;
  if (!AudioContext) return () => {};
  const context = new AudioContext();
  const source = context.createMediaStreamSource(new MediaStream([track]));
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let frame = 0;
  let shown = 0;
  let lastAnnounced = -1;
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    const rms = Math.sqrt(sum / samples.length);
    // Speech sits around -40…-10 dBFS; map -60…0 dB onto the bar.
    const level = Math.max(0, Math.min(1, (20 * Math.log10(rms || 1e-8) + 60) / 60));
    shown = Math.max(level, shown * 0.85);
    fillElement.style.transform = `scaleX(${shown.toFixed(3)})`;
    const percent = Math.round(shown * 10) * 10;
    if (percent !== lastAnnounced) {
      meterElement.setAttribute("aria-valuenow", String(percent));
      lastAnnounced = percent;
    }
    frame = requestAnimationFrame(draw);
  };
  // Safari starts an AudioContext suspended unless a click created it.
  context.resume().catch(() => {});
  draw();
  return () => {
    cancelAnimationFrame(frame);
    source.disconnect();
    context.close().catch(() => {});
  };
}

/** A short, quiet tone on `deviceId`, to check the speaker. */
export async function playTestTone(deviceId) {
  const AudioContext = window.AudioContext || window.webkitAudioContext;
  const context = new AudioContext();
  const oscillator = context.createOscillator();
  const gain = context.createGain();
  oscillator.frequency.value = 440;
  gain.gain.setValueAtTime(0.0001, context.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.2, context.currentTime + 0.05);
  gain.gain.exponentialRampToValueAtTime(0.0001, context.currentTime + 0.8);
  oscillator.connect(gain);
  const destination = context.createMediaStreamDestination();
  gain.connect(destination);
  const audio = new Audio();
  audio.srcObject = destination.stream;
  await setSpeaker(audio, deviceId).catch(() => {});
  await audio.play();
  oscillator.start();
  oscillator.stop(context.currentTime + 0.85);
  setTimeout(() => {
    audio.srcObject = null;
    context.close().catch(() => {});
  }, 1200);
}
