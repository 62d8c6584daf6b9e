// The Backtest page: a chosen policy file is read into the form's text area (the form posts
// text, not a file upload). No framework; nothing leaves the page until the form is sent.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var file = document.getElementById("backtest-file");
    var area = document.getElementById("backtest-policy");
    if (!file || !area) return;
    file.addEventListener("change", function () {
      var chosen = file.files && file.files[0];
      if (!chosen) return;
      var reader = new FileReader();
      reader.onload = function () { area.value = String(reader.result || ""); };
      reader.readAsText(chosen);
    });
  });
})();
