// netlog live viewer.  Every string in a record came from the network, so
// records are drawn with textContent only, never parsed as HTML, and control and
// bidi characters are shown as visible escapes.
"use strict";

(() => {
  const MAX_KEPT = 5000; // records remembered, for re-filtering
  const MAX_SHOWN = 1000; // rows in the page
  const LEVELS = ["debug", "info", "warning", "error", "critical"];
  const RANK = new Map([
    ["trace", 5], ["debug", 10], ["info", 20], ["notice", 25], ["warning", 30], ["warn", 30],
    ["error", 40], ["err", 40], ["critical", 50], ["crit", 50], ["fatal", 50], ["alert", 50],
    ["emergency", 50], ["emerg", 50],
  ]);
  const CLASS = new Map([
    ["debug", "debug"], ["trace", "debug"], ["info", "info"], ["notice", "info"],
    ["warning", "warning"], ["warn", "warning"], ["error", "error"], ["err", "error"],
    ["critical", "critical"], ["crit", "critical"], ["fatal", "critical"], ["alert", "critical"],
    ["emergency", "critical"], ["emerg", "critical"],
  ]);
  const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
  const UNSAFE_ONE_LINE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

  const $ = (id) => document.getElementById(id);
  const list = $("records");
  const empty = $("empty");
  const status = $("status");
  const countsBox = $("counts");
  const shown = $("shown");
  const notice = $("notice");
  const levelSelect = $("level");
  const loggerInput = $("logger");
  const textInput = $("text");
  const pauseButton = $("pause");

  const kept = []; // {rec, search}
  const counts = new Map();
  const recordOf = new WeakMap();
  let pending = []; // received while rendering was scheduled
  let scheduled = false;
  let paused = false;
  let unseen = 0;
  let dropped = 0;
  const filter = { min: 0, logger: "", text: "" };

  // -- helpers ----------------------------------------------------------------

  function escapeChar(c) {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    const code = c.charCodeAt(0);
    return code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0")
      : "\\u" + code.toString(16).padStart(4, "0");
  }
  const oneLine = (s) => String(s).replace(UNSAFE_ONE_LINE, escapeChar);
  const multiLine = (s) => String(s).replace(UNSAFE, escapeChar);

  function rank(level) {
    if (RANK.has(level)) return RANK.get(level);
    const m = /^level (\d+)$/.exec(level);
    return m ? Number(m[1]) : 20; // unknown levels rank as info, like `netlog tail`
  }
  const levelClass = (level) => CLASS.get(level) || "other";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function show(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function matches(item) {
    const rec = item.rec;
    if (filter.min && rank(rec.level) < filter.min) return false;
    if (filter.logger) {
      const name = rec.logger || "";
      if (name !== filter.logger && !name.startsWith(filter.logger + ".")) return false;
    }
    if (filter.text && !item.search.includes(filter.text)) return false;
    return true;
  }

  // -- drawing ----------------------------------------------------------------

  function row(rec) {
    const node = el("div", "rec lvl-" + levelClass(rec.level));
    node.tabIndex = 0;
    node.setAttribute("aria-expanded", "false");
    const line = el("div", "line");
    const ts = typeof rec.ts === "string" ? rec.ts : "";
    const time = el("span", "t", ts.slice(11, 23));
    time.title = ts + " (UTC)";
    line.append(time, el("span", "l", oneLine(rec.level)));
    const logger = el("span", "g", oneLine(rec.logger || ""));
    logger.title = logger.textContent;
    line.append(logger);
    const message = el("span", "m", oneLine(rec.message || ""));
    if (rec.exc) message.append(el("span", "x", "traceback"));
    const fields = rec.fields && typeof rec.fields === "object" ? rec.fields : {};
    for (const [key, value] of Object.entries(fields)) {
      if (key === "_src") continue;
      const pair = el("span", "f");
      pair.append(el("span", "k", oneLine(key)), "=" + oneLine(show(value)));
      message.append(pair);
    }
    line.append(message);
    node.append(line);
    recordOf.set(node, rec);
    return node;
  }

  // A LogRecord's origin in one line: "app/views.py:42 in checkout · MainThread · pid 7".
  function origin(src) {
    let text = String(src.file ?? "?");
    if (src.line !== undefined) text += ":" + src.line;
    if (src.func !== undefined) text += " in " + src.func;
    if (src.thread !== undefined) text += " · " + src.thread;
    if (src.task !== undefined) text += " · task " + src.task;
    if (src.process !== undefined) text += " · pid " + src.process;
    return text;
  }

  function detail(rec) {
    const box = el("div", "detail");
    const dl = el("dl");
    const add = (key, value, meta) => {
      dl.append(el("dt", meta ? "meta" : "", oneLine(key)));
      const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
      dl.append(el("dd", meta ? "meta" : "", multiLine(text)));
    };
    add("message", rec.message || "", false);
    const fields = rec.fields && typeof rec.fields === "object" ? rec.fields : {};
    for (const [key, value] of Object.entries(fields)) {
      if (key !== "_src") add(key, value, false);
    }
    const src = fields._src;
    if (src && typeof src === "object") add("source", origin(src), true);
    add("ts", rec.ts, true);
    add("received", rec.received, true);
    add("peer", rec.peer, true);
    add("format", rec.format, true);
    box.append(dl);
    if (rec.exc) box.append(el("pre", "exc", multiLine(rec.exc)));
    return box;
  }

  function toggle(node) {
    if (window.getSelection && String(window.getSelection())) return; // selecting text
    let box = node.querySelector(".detail");
    if (!box) {
      box = detail(recordOf.get(node));
      node.append(box);
    }
    const open = node.classList.toggle("open");
    node.setAttribute("aria-expanded", String(open));
  }

  function drawCounts() {
    countsBox.replaceChildren();
    const names = LEVELS.concat(counts.has("other") ? ["other"] : []);
    for (const name of names) {
      const count = counts.get(name) || 0;
      const chip = el("button", "chip lvl-" + name + (count ? "" : " zero"), name);
      chip.type = "button";
      chip.dataset.level = name;
      chip.title = name === "other" ? "levels netlog does not know" : "show " + name + " and above";
      chip.append(el("b", "", String(count)));
      countsBox.append(chip);
    }
  }

  function drawShown() {
    const n = list.childElementCount;
    let text = n === kept.length ? n + " records" : n + " of " + kept.length + " records";
    if (paused && unseen) text += " · " + unseen + " new while paused";
    shown.textContent = text;
    pauseButton.textContent = paused ? (unseen ? "Resume (" + unseen + ")" : "Resume") : "Pause";
    empty.hidden = n > 0;
    empty.firstElementChild.textContent = kept.length ? "No records match the filters." : "Waiting for records.";
  }

  function trim() {
    while (list.childElementCount > MAX_SHOWN) list.lastElementChild.remove();
  }

  function render() {
    scheduled = false;
    const batch = pending;
    pending = [];
    if (!paused) {
      const fragment = document.createDocumentFragment();
      for (let i = batch.length - 1; i >= 0; i--) {
        if (matches(batch[i])) fragment.append(row(batch[i].rec));
      }
      list.prepend(fragment); // newest first
      trim();
    }
    drawCounts();
    drawShown();
  }

  function redraw() {
    const fragment = document.createDocumentFragment();
    let n = 0;
    for (let i = kept.length - 1; i >= 0 && n < MAX_SHOWN; i--) {
      if (matches(kept[i])) {
        fragment.append(row(kept[i].rec));
        n++;
      }
    }
    list.replaceChildren(fragment);
    pending = [];
    drawCounts();
    drawShown();
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    if (document.hidden) setTimeout(render, 250);
    else requestAnimationFrame(render);
  }

  // -- records in -------------------------------------------------------------

  function receive(records) {
    for (const rec of records) {
      if (!rec || typeof rec !== "object") continue;
      rec.level = typeof rec.level === "string" ? rec.level : String(rec.level);
      const search = [rec.message, rec.logger, rec.exc || "", JSON.stringify(rec.fields || {})]
        .join("\u0000").toLowerCase();
      const item = { rec, search };
      kept.push(item);
      const cls = levelClass(rec.level);
      counts.set(cls, (counts.get(cls) || 0) + 1);
      if (paused) {
        if (matches(item)) unseen++;
      } else {
        pending.push(item);
      }
    }
    if (kept.length > MAX_KEPT) kept.splice(0, kept.length - MAX_KEPT);
    schedule();
  }

  function setStatus(kind, text) {
    status.className = "status " + kind;
    status.textContent = text;
  }

  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  let source = null;
  function connect() {
    source = new EventSource("events");
    source.addEventListener("open", () => setStatus("live", "live"));
    source.addEventListener("records", (event) => receive(JSON.parse(event.data)));
    source.addEventListener("dropped", (event) => {
      dropped += JSON.parse(event.data).count;
      say(dropped + " records were skipped because this page could not keep up.");
    });
    source.addEventListener("bye", () => setStatus("stopped", "server stopped"));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        setStatus("stopped", "disconnected");
        setTimeout(connect, 3000);
      } else if (!status.classList.contains("stopped")) {
        setStatus("reconnecting", "reconnecting…");
      }
    });
  }

  // -- controls ---------------------------------------------------------------

  list.addEventListener("click", (event) => {
    if (event.target.closest(".detail")) return;
    const node = event.target.closest(".rec");
    if (node) toggle(node);
  });
  list.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" && event.key !== " ") return;
    const node = event.target.closest(".rec");
    if (node && event.target === node) {
      event.preventDefault();
      toggle(node);
    }
  });
  countsBox.addEventListener("click", (event) => {
    const chip = event.target.closest(".chip");
    if (!chip || chip.dataset.level === "other") return;
    levelSelect.value = String(RANK.get(chip.dataset.level));
    levelSelect.dispatchEvent(new Event("change"));
  });
  levelSelect.addEventListener("change", () => {
    filter.min = Number(levelSelect.value);
    redraw();
  });
  loggerInput.addEventListener("input", () => {
    filter.logger = loggerInput.value.trim();
    redraw();
  });
  textInput.addEventListener("input", () => {
    filter.text = textInput.value.trim().toLowerCase();
    redraw();
  });
  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.setAttribute("aria-pressed", String(paused));
    unseen = 0;
    if (!paused) redraw();
    else drawShown();
  });
  $("clear").addEventListener("click", () => {
    kept.length = 0;
    counts.clear();
    unseen = 0;
    dropped = 0;
    say("");
    redraw();
  });

  $("hint").textContent =
    "curl -d 'msg=hello' -d 'level=warning' " + window.location.origin + "/log";
  drawCounts();
  drawShown();
  connect();
})();
