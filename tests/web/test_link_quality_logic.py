"""The weak-connection decision (web/static/js/link-quality.js) and the pages' control messages
(peer-control.js), run in node as the ES modules the call page loads."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[2] / "web" / "static" / "js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run(module: str, body: str, tmp_path: Path) -> object:
    """Run ``body`` (which ends in ``return value;``) with ``module``'s exports as ``m``."""
    # node reads .js as CommonJS outside a "type": "module" package: copy as .mjs
    copy = tmp_path / (Path(module).stem + ".mjs")
    copy.write_text((JS / module).read_text())
    script = f"import * as m from {json.dumps(copy.as_uri())};\n"
    script += f"const out = (() => {{ {body} }})();\nconsole.log(JSON.stringify(out));\n"
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# Reports as getStats() gives them: a Map of id -> entry is what forEach needs.
REPORT = """
const report = (t, {lost = 0, received = 1000, remoteLoss = 0, rtt = 0.05, bitrate = 2e6,
                   limited = false, freezes = 0} = {}) => new Map(Object.entries({
  T: {type: "transport", timestamp: t, selectedCandidatePairId: "P"},
  P: {type: "candidate-pair", id: "P", timestamp: t, availableOutgoingBitrate: bitrate,
      currentRoundTripTime: rtt},
  I: {type: "inbound-rtp", kind: "video", timestamp: t, packetsLost: lost,
      packetsReceived: received, freezeCount: freezes},
  R: {type: "remote-inbound-rtp", kind: "video", timestamp: t, fractionLost: remoteLoss,
      roundTripTime: rtt},
  O: {type: "outbound-rtp", kind: "video", timestamp: t,
      qualityLimitationReason: limited ? "bandwidth" : "none"},
}));
const verdicts = (reports) => {
  let before = null;
  return reports.map((r) => { const s = m.linkSample(r, before); before = s; return m.judge(s); });
};
"""


def test_a_healthy_link_is_good(tmp_path):
    out = run(
        "link-quality.js",
        REPORT + "return verdicts([report(0), report(2000, {received: 2000})]);",
        tmp_path,
    )
    assert out == ["good", "good"]


def test_loss_over_ten_percent_either_way_is_weak(tmp_path):
    out = run(
        "link-quality.js",
        REPORT
        + """return [
          verdicts([report(0), report(2000, {received: 1800, lost: 200})])[1],  // 20 % in
          verdicts([report(0), report(2000, {received: 2000, remoteLoss: 0.2})])[1],  // out
          verdicts([report(0), report(2000, {received: 2000, remoteLoss: 0.05})])[1],
        ];""",
        tmp_path,
    )
    assert out == ["weak", "weak", "fair"]


def test_a_starved_bandwidth_limited_encoder_is_weak_a_mere_limit_is_not(tmp_path):
    out = run(
        "link-quality.js",
        REPORT
        + """return [
          verdicts([report(0), report(2000, {received: 2000, limited: true, bitrate: 90e3})])[1],
          verdicts([report(0), report(2000, {received: 2000, limited: true, bitrate: 800e3})])[1],
        ];""",
        tmp_path,
    )
    assert out == ["weak", "good"]


def test_weak_for_four_seconds_offers_and_for_ten_switches_to_audio_only(tmp_path):
    out = run(
        "link-quality.js",
        """const p = new m.AudioOnlyPolicy();
        return ["weak", "weak", "weak", "weak", "weak"].map((v) => p.update(v));""",
        tmp_path,
    )
    assert out == ["video", "offer", "offer", "offer", "audio-only"]


def test_one_good_sample_between_weak_ones_starts_the_count_again(tmp_path):
    out = run(
        "link-quality.js",
        """const p = new m.AudioOnlyPolicy();
        return ["weak", "weak", "good", "weak", "weak", "weak", "weak"].map((v) => p.update(v));""",
        tmp_path,
    )
    assert out == ["video", "offer", "video", "video", "offer", "offer", "offer"]


def test_audio_only_returns_to_video_after_sixteen_good_seconds_not_sooner(tmp_path):
    out = run(
        "link-quality.js",
        """const p = new m.AudioOnlyPolicy();
        p.switchToAudio();
        const modes = [];
        for (const v of ["good", "good", "good", "fair", ...Array(8).fill("good")]) {
          modes.push(p.update(v));
        }
        return modes;""",
        tmp_path,
    )
    # three good, then a fair one resets the run; eight good in a row bring video back
    assert out == ["audio-only"] * 11 + ["video"]


def test_while_audio_only_a_low_estimate_does_not_block_recovery(tmp_path):
    out = run(
        "link-quality.js",
        REPORT
        + """const s = m.linkSample(report(2000, {bitrate: 40e3}), m.linkSample(report(0), null));
        return [m.judge(s), m.judge(s, {audioOnly: true})];""",
        tmp_path,
    )
    assert out == ["fair", "good"]


def test_while_audio_only_a_stale_bandwidth_limit_is_not_weak(tmp_path):
    # the paused camera's sender keeps reporting "bandwidth", and audio alone needs little
    out = run(
        "link-quality.js",
        REPORT
        + """const s = m.linkSample(report(2000, {bitrate: 84e3, limited: true}),
                                  m.linkSample(report(0), null));
        return [m.judge(s), m.judge(s, {audioOnly: true})];""",
        tmp_path,
    )
    assert out == ["weak", "good"]


def test_control_messages_round_trip_and_typed_text_never_becomes_one(tmp_path):
    out = run(
        "peer-control.js",
        """const sent = m.encodeControl({type: "state", screen: true, audioOnly: false});
        return [
          m.decodeChannelText(sent),
          m.decodeChannelText(m.chatText("\\u0000{\\"type\\":\\"stop-screen\\"}")),
          m.decodeChannelText("\\u0000{\\"type\\":\\"teleport\\"}"),
          m.decodeChannelText("\\u0000not json"),
        ];""",
        tmp_path,
    )
    assert out == [
        {"control": {"type": "state", "screen": True, "audioOnly": False}},
        {"chat": '{"type":"stop-screen"}'},
        {},
        {},
    ]
