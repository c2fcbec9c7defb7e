// dirbridge portal: a hint while typing a new password (an enhancement only: the pages work
// without it, and the server's check, with zxcvbn and the directory's policy, is what counts).
// Served by the cloud from /assets/password-hint.js; no inline script, so the CSP stays strict.
(function () {
  "use strict";
  var input = document.getElementById("new-password");
  var confirm = document.getElementById("confirm-password");
  var hint = document.getElementById("password-hint");
  if (!input || !hint) {
    return;
  }
  var common = /^(password|passw0rd|qwerty|letmein|welcome|admin|123456|iloveyou|monkey|dragon)/i;

  function classes(p) {
    var n = 0;
    [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].forEach(function (re) {
      if (re.test(p)) {
        n += 1;
      }
    });
    return n;
  }

  function judge(p) {
    if (p.length === 0) {
      return "";
    }
    if (common.test(p)) {
      return "Weak: this starts like one of the most common passwords.";
    }
    if (/^(.)\1+$/.test(p)) {
      return "Weak: repeated characters are easy to guess.";
    }
    if (p.length < 8) {
      return "Too short: use at least 8 characters; longer is better.";
    }
    if (p.length < 12 && classes(p) < 3) {
      return "Fair: make it longer, or mix upper and lower case, digits and symbols.";
    }
    if (p.length < 16 && classes(p) < 2) {
      return "Fair: a few more words or some digits and symbols would help.";
    }
    return "Good: long and varied.";
  }

  function update() {
    var text = judge(input.value);
    if (confirm && confirm.value.length > 0 && confirm.value !== input.value) {
      text = (text ? text + " " : "") + "The two passwords are not the same yet.";
    }
    hint.textContent = text;
  }

  input.addEventListener("input", update);
  if (confirm) {
    confirm.addEventListener("input", update);
  }
})();
