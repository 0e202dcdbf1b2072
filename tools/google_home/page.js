// The local Google Home page: live sections and the controls. Plain script, no build step.
(function () {
  "use strict";
  let version = Number(document.body.dataset.version || 0);
  const status = document.getElementById("status");

  function say(text, ok) {
    status.textContent = text;
    status.className = "status " + (ok ? "ok" : "bad");
  }

  // Swaps in a section rendered by the server, keeping open <details> open and leaving alone a section the
  // person is typing in (it is refreshed at the next change).
  async function refresh(name) {
    const section = document.getElementById(name);
    if (section.contains(document.activeElement) && document.activeElement.tagName === "INPUT") {
      return false;
    }
    const response = await fetch("/page/" + name, { cache: "no-store" });
    if (!response.ok) return false;
    const open = new Set([...section.querySelectorAll("details[open]")].map((d) => d.dataset.keep));
    section.innerHTML = await response.text();
    section.querySelectorAll("details").forEach((d) => { if (open.has(d.dataset.keep)) d.open = true; });
    return true;
  }

  async function refreshAll() {
    const homes = await refresh("homes");
    const calls = await refresh("calls");
    return homes && calls;
  }

  // Long poll: the stand-in answers as soon as anything changed (a call, a report, a link). `version` is what the
  // page shows; a refresh put off (the person is typing) is tried again a second later.
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function watch() {
    for (;;) {
      try {
        const response = await fetch("/standin/version?timeoutS=20&after=" + version, { cache: "no-store" });
        const seen = (await response.json()).version;
        if (seen !== version) {
          if (await refreshAll()) version = seen;
          else await pause(1000);
        }
      } catch (error) {
        await pause(1000);
      }
    }
  }

  async function act(body) {
    const response = await fetch("/page/act", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return response.json();
  }

  // An EXECUTE, answering the fulfillment's two-factor challenge as Google does: it asks the person.
  async function execute(body, label) {
    for (let round = 0; round < 4; round++) {
      const answer = await act(body);
      const result = answer.result || {};
      const challenge = (result.challengeNeeded || {}).type;
      if (challenge === "ackNeeded") {
        if (!window.confirm(label + ": are you sure?")) return say(label + ": cancelled", false);
        body = Object.assign({}, body, { ack: true });
        continue;
      }
      if (challenge === "pinNeeded" || challenge === "challengeFailedPinNeeded") {
        const asked = challenge === "pinNeeded" ? "PIN for " + label : "Wrong PIN. PIN for " + label;
        const pin = window.prompt(asked);
        if (pin === null) return say(label + ": cancelled", false);
        body = Object.assign({}, body, { pin: pin });
        delete body.ack;
        continue;
      }
      const outcome = result.status ? result.status + (result.errorCode ? " " + result.errorCode : "") : answer.status;
      return say(label + ": " + outcome, answer.ok);
    }
    return say(label + ": too many tries", false);
  }

  function labelOf(element) {
    const device = element.closest(".device");
    const name = device ? device.querySelector(".name").textContent : "";
    return (name ? name + " · " : "") + (element.textContent || element.dataset.command || "").trim();
  }

  async function run(element, body) {
    const buttons = element.matches("button") ? [element] : [...element.querySelectorAll("button")];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      if (body.action === "execute") {
        await execute(body, labelOf(element));
      } else {
        const answer = await act(body);
        say(body.action + " " + body.user + ": " + (answer.message || answer.status), answer.ok);
      }
    } catch (error) {
      say(String(error), false);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const body = { action: button.dataset.action, user: button.dataset.user };
    if (button.dataset.command) {
      Object.assign(body, { device: button.dataset.device, command: button.dataset.command, params: JSON.parse(button.dataset.params || "{}") });
    }
    run(button, body);
  });

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-action]");
    if (!form) return;
    event.preventDefault();
    const data = new FormData(form);
    const body = { action: form.dataset.action, user: form.dataset.user || data.get("user") };
    if (body.action === "execute") {
      body.device = form.dataset.device;
      if (form.dataset.command === "BrightnessAbsolute") {
        body.command = "BrightnessAbsolute";
        body.params = { brightness: Number(data.get("brightness")) };
      } else {
        body.command = data.get("command");
        try {
          body.params = JSON.parse(data.get("params") || "{}");
        } catch (error) {
          return say("params: not JSON: " + error.message, false);
        }
        if (data.get("followUpToken")) body.followUpToken = data.get("followUpToken");
      }
    }
    run(form, body);
  });

  watch();
})();
