// The copy button of the one-time token page: copies the text of the
// element its data-copy attribute names.
document.querySelectorAll("button[data-copy]").forEach(function (b) {
  b.addEventListener("click", function () {
    var text = document.getElementById(b.dataset.copy).textContent;
    var done = function () { b.textContent = "Copied"; };
    if (navigator.clipboard) {
      navigator.clipboard.writeText(text).then(done, function () { b.textContent = "Copy failed: select the text"; });
    } else {
      b.textContent = "Select the text to copy it";
    }
  });
});
