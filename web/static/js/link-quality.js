// Whether the link can carry video, from getStats() samples, and the audio-only switch with
// hysteresis. Pure: no timers, no DOM, no peer connection (callview.js samples every 2 s and
// acts on the answer; tests/web/test_link_quality_logic.py runs this module in node).
//
// A sample is weak when any of these holds:
// - more than 10 % of our packets lost on the way to the relay (remote-inbound-rtp
//   fractionLost) or of the other's on the way to us (inbound-rtp): VP8 then freezes between
//   keyframes faster than retransmissions repair it, while Opus with in-band FEC still carries
//   speech at that loss;
// - a round trip over 1 s: a retransmission arrives too late for the jitter buffer;
// - the encoder limited by bandwidth (qualityLimitationReason "bandwidth") with the congestion
//   controller's estimate under 150 kbit/s: below that VP8 shows a blurred stamp at a few
//   frames a second, and Opus needs only ~30 kbit/s of it;
// - two or more freezes of the received video within one sample.
// A sample is good (to go back to video) only with a margin: loss at most 3 %, a round trip
// under 500 ms, and an estimate of at least 300 kbit/s where there is one.
export const WEAK_LOSS = 0.1;
export const WEAK_RTT_S = 1.0;
export const WEAK_BITRATE_BPS = 150_000;
export const WEAK_FREEZES = 2;
export const GOOD_LOSS = 0.03;
export const GOOD_RTT_S = 0.5;
export const GOOD_BITRATE_BPS = 300_000;
// Samples in a row (one every 2 s): weak for 4 s offers audio only, weak for 10 s switches;
// good for 16 s returns to video. The long way back keeps a flapping link from toggling the
// picture on and off every few seconds.
export const OFFER_AFTER = 2;
export const SWITCH_AFTER = 5;
export const RECOVER_AFTER = 8;

/**
 * The figures of one getStats() report, as deltas against `before` (the previous result of
 * this function for the same peer connection, or null).
 */
export function linkSample(report, before) {
  const now = { time: 0, lostIn: 0, receivedIn: 0, freezes: 0, remoteLoss: null, remoteAudioLoss: null, rtt: null, outBitrate: null, bandwidthLimited: false };
  let pairId = null;
  const pairs = new Map();
  report.forEach((entry) => {
    now.time = Math.max(now.time, entry.timestamp || 0);
    if (entry.type === "transport" && entry.selectedCandidatePairId) pairId = entry.selectedCandidatePairId;
    else if (entry.type === "candidate-pair") pairs.set(entry.id, entry);
    else if (entry.type === "inbound-rtp") {
      now.lostIn += Math.max(0, entry.packetsLost || 0);
      now.receivedIn += entry.packetsReceived || 0;
      now.freezes += entry.freezeCount || 0;
    } else if (entry.type === "remote-inbound-rtp") {
      if (typeof entry.fractionLost === "number") {
        now.remoteLoss = Math.max(now.remoteLoss ?? 0, entry.fractionLost);
        if (entry.kind === "audio") now.remoteAudioLoss = Math.max(now.remoteAudioLoss ?? 0, entry.fractionLost);
      }
      if (typeof entry.roundTripTime === "number") now.rtt = Math.max(now.rtt ?? 0, entry.roundTripTime);
    } else if (entry.type === "outbound-rtp" && entry.kind === "video" && entry.qualityLimitationReason === "bandwidth") {
      now.bandwidthLimited = true;
    }
  });
  let pair = pairId ? pairs.get(pairId) : null;
  if (!pair) pair = [...pairs.values()].find((p) => p.nominated && p.state === "succeeded") || null;
  if (pair) {
    if (typeof pair.availableOutgoingBitrate === "number") now.outBitrate = pair.availableOutgoingBitrate;
    if (typeof pair.currentRoundTripTime === "number") now.rtt = Math.max(now.rtt ?? 0, pair.currentRoundTripTime);
  }
  const received = before ? now.receivedIn - before.receivedIn : 0;
  const lost = before ? Math.max(0, now.lostIn - before.lostIn) : 0;
  now.inLoss = received + lost > 0 ? lost / (received + lost) : 0;
  now.newFreezes = before ? Math.max(0, now.freezes - before.freezes) : 0;
  return now;
}

/** "weak", "good" or "fair" (neither: keeps the current course). */
export function judge(sample, { audioOnly = false } = {}) {
  // a paused camera's last receiver report stays in getStats: only audio's is current then
  const remote = audioOnly ? sample.remoteAudioLoss : sample.remoteLoss;
  const loss = Math.max(remote ?? 0, sample.inLoss ?? 0);
  const rtt = sample.rtt;
  // while only audio is sent, the estimate follows audio's few kbit/s and the paused camera's
  // sender keeps its last limitation reason: neither says anything about video then
  const starved = !audioOnly && sample.bandwidthLimited && sample.outBitrate !== null && sample.outBitrate < WEAK_BITRATE_BPS;
  if (loss > WEAK_LOSS || (rtt !== null && rtt > WEAK_RTT_S) || starved || (sample.newFreezes ?? 0) >= WEAK_FREEZES) return "weak";
  const enough = audioOnly || sample.outBitrate === null || sample.outBitrate >= GOOD_BITRATE_BPS;
  if (loss <= GOOD_LOSS && (rtt === null || rtt < GOOD_RTT_S) && enough) return "good";
  return "fair";
}

/**
 * The audio-only switch: `update(verdict)` with each sample's judge() gives the mode,
 * "video" | "offer" (ask whether to switch) | "audio-only".
 */
export class AudioOnlyPolicy {
  constructor() {
    this.mode = "video";
    this.weakRun = 0;
    this.goodRun = 0;
  }

  update(verdict) {
    if (this.mode === "audio-only") {
      this.goodRun = verdict === "good" ? this.goodRun + 1 : 0;
      if (this.goodRun >= RECOVER_AFTER) this.reset();
      return this.mode;
    }
    this.weakRun = verdict === "weak" ? this.weakRun + 1 : 0;
    if (this.weakRun >= SWITCH_AFTER) this.switchToAudio();
    else this.mode = this.weakRun >= OFFER_AFTER ? "offer" : "video";
    return this.mode;
  }

  /** The person accepted the offer (or the policy decided): audio only from now. */
  switchToAudio() {
    this.mode = "audio-only";
    this.goodRun = 0;
  }

  /** Back to video (recovered, or the person asked for it): weak samples count from zero. */
  reset() {
    this.mode = "video";
    this.weakRun = 0;
    this.goodRun = 0;
  }
}
