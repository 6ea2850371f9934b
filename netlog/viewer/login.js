// The login page netlog serves at / when an access token is set and the
// browser has no session cookie.  It posts the token to /login (same
// origin); the server answers with an HttpOnly cookie, and the page reloads
// into the viewer.  A file of its own because the CSP allows no inline script.
"use strict";

(() => {
  const form = document.getElementById("login");
  const input = document.getElementById("token");
  const status = document.getElementById("status");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = "checking…";
    try {
      const response = await fetch("login", {
        method: "POST",
        body: new URLSearchParams({ token: input.value }),
        credentials: "same-origin",
      });
      if (response.ok) {
        status.textContent = "logged in";
        window.location.reload();
        return;
      }
      status.textContent =
        response.status === 429
          ? "too many wrong tokens from here: try again in a minute"
          : "wrong token";
    } catch (error) {
      status.textContent = "netlog is not answering";
    }
    input.select();
  });
})();
