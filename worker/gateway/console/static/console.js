/* Escalator console: live countdowns, local times, small conveniences. No framework. */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="server-now"]');
  var serverNow = meta ? Date.parse(meta.content) : NaN;
  // the server's clock decides: the page's countdowns run on it, not on this device's
  var skew = isNaN(serverNow) ? 0 : serverNow - Date.now();

  function span(seconds) {
    var s = Math.floor(Math.abs(seconds));
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60), r = s % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + r + "s";
    return r + "s";
  }

  function tick() {
    var now = Date.now() + skew;
    document.querySelectorAll("span.countdown[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) return;
      var left = (due - now) / 1000;
      var budget = parseFloat(el.getAttribute("data-budget") || "0");
      var tone = left < 0 ? "over" : (budget && left < 0.25 * budget ? "near" : "ok");
      el.textContent = span(left) + (left < 0 ? " over" : " left");
      el.classList.remove("tone-ok", "tone-near", "tone-over");
      el.classList.add("tone-" + tone);
    });
    document.querySelectorAll(".relative[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) return;
      var left = (due - now) / 1000;
      el.textContent = left >= 0 ? "in " + span(left) : span(left) + " ago";
    });
  }

  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) return;
      el.title = el.textContent;
      el.textContent = at.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit"
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { tick(); localTimes(); });
  document.addEventListener("htmx:afterSwap", function (e) { tick(); localTimes(e.target); });
  setInterval(tick, 1000);

  // filters apply as soon as they change
  document.addEventListener("change", function (e) {
    var form = e.target.form;
    if (form && form.hasAttribute("data-autosubmit")) {
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
    }
  });
  // a snooze typed as a local date and time: send this device's offset with it
  document.addEventListener("submit", function (e) {
    var tz = e.target.querySelector && e.target.querySelector("input[name=tz_offset]");
    if (tz) tz.value = String(new Date().getTimezoneOffset());
  });
})();
