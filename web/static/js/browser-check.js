// A classic (non-module) script on purpose: a browser without ES modules never runs the page's
// module, so without this it would show a waiting room whose buttons do nothing. It runs
// deferred, after the page is parsed, and only when a feature the call needs is missing does it
// replace the page with the "which browsers work" section (web/pages/_unsupported.html).
// Feature detection, never the user agent: a browser is judged by what it can do.
(function () {
  var missing = [];
  if (!("noModule" in HTMLScriptElement.prototype)) missing.push("modules");
  // The pages' code uses Object.hasOwn (i18n.js): Chrome 93, Firefox 92, Safari 15.4.
  if (typeof Object.hasOwn !== "function") missing.push("es2022");
  if (typeof window.RTCPeerConnection !== "function") missing.push("webrtc");
  if (!navigator.mediaDevices || typeof navigator.mediaDevices.getUserMedia !== "function") missing.push("camera");
  if (typeof window.WebSocket !== "function") missing.push("websocket");
  if (!window.crypto || !window.crypto.subtle) missing.push("webcrypto");
  if (!missing.length) return;
  document.documentElement.setAttribute("data-unsupported", missing.join(" "));
  var sections = document.querySelectorAll("main > .container");
  for (var i = 0; i < sections.length; i++) sections[i].hidden = sections[i].id !== "unsupported";
})();
