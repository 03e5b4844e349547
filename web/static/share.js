/* IRMS share link: the access code travels in the link's fragment (never sent to the server, so in no
   access log); it is posted in the form's body, and the fragment is dropped from the address bar. */
(function () {
  "use strict";
  var code = window.location.hash.slice(1);
  if (!code) { return; }
  history.replaceState(null, "", window.location.pathname);
  document.getElementById("code").value = decodeURIComponent(code);
  document.getElementById("unlock-form").submit();
})();
