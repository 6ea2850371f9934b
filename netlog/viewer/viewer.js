// netlog viewer: a search over every stored record and a live tail of new ones.
//
// Every string in a record came from the network, so records are drawn with
// textContent only, never parsed as HTML, and control and bidi characters are
// shown as visible escapes.  The searching is the server's (/api/...): the page
// never reimplements the query language, so "live" asks the API for records
// newer than the newest shown whenever the event stream says some arrived.
"use strict";

(() => {
  const PAGE = 200; // records per API page
  const BUCKETS = 60;
  const LIVE_EVERY = 400; // ms between live re-queries, at most
  const COUNTS_EVERY = 3000; // ms between histogram/facet refreshes while live
  const DEFAULT_SINCE = "24h";
  const LEVELS = ["debug", "info", "warning", "error", "critical"];
  const CLASS = new Map([
    ["debug", "debug"], ["trace", "debug"], ["info", "info"], ["notice", "info"],
    ["warning", "warning"], ["warn", "warning"], ["error", "error"], ["err", "error"],
    ["critical", "critical"], ["crit", "critical"], ["fatal", "critical"], ["alert", "critical"],
    ["emergency", "critical"], ["emerg", "critical"],
  ]);
  const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
  const UNSAFE_ONE_LINE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
  const DURATION = /^(\d+(?:\.\d+)?)\s*([smhdw])$/;
  const UNIT = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

  const $ = (id) => document.getElementById(id);
  const list = $("records");
  const more = $("more");
  const empty = $("empty");
  const status = $("status");
  const countsBox = $("counts");
  const shown = $("shown");
  const notice = $("notice");
  const qerror = $("qerror");
  const queryInput = $("q");
  const fromInput = $("from");
  const toInput = $("to");
  const liveButton = $("live");
  const fieldInput = $("field");
  const bars = $("bars");
  const single = $("single");

  // The view: everything a link reproduces.
  const state = { q: "", since: DEFAULT_SINCE, until: "", field: "", live: true, id: "" };
  const recordOf = new WeakMap();
  const ids = new Set(); // ids on the page, so a live re-query never repeats one
  let generation = 0; // bumps on every new search; late answers to old ones are dropped
  let next = null; // cursor to the next (older) page
  let loading = false;
  let newest = ""; // order key of the newest record shown (see orderKey)
  let unseen = 0; // records the stream announced while not live
  let liveTimer = null;
  let liveBusy = false;
  let countsTimer = null;
  let tookMs = 0;
  let matched = null;
  let showDates = false;
  let buckets = [];
  let typing = null; // debounce of the query box
  let picking = null; // debounce of the facet field box

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
  const levelClass = (level) => CLASS.get(level) || "other";
  const show = (value) => (typeof value === "string" ? value : JSON.stringify(value));

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A value as the query language takes it: quoted when it has to be.
  function quote(value) {
    const text = String(value);
    if (text && !/[\s"\\=<>!]/.test(text)) return text;
    return '"' + text.replace(/[\\"]/g, (c) => "\\" + c) + '"';
  }

  // Seconds since the epoch of a range bound ("15m" ago, or an RFC 3339 time).
  function boundTime(text, now) {
    if (!text) return now;
    const m = DURATION.exec(text.trim());
    if (m) return now - Number(m[1]) * UNIT[m[2]];
    const t = Date.parse(text);
    return Number.isNaN(t) ? now : t / 1000;
  }

  // "2024-05-01T12:00:00.123456Z" -> "12:00:00.123", or "05-01 12:00:00.123" with dates.
  function shortTime(ts) {
    if (typeof ts !== "string") return "";
    return showDates ? ts.slice(5, 10) + " " + ts.slice(11, 23) : ts.slice(11, 23);
  }

  // datetime-local (read as UTC) <-> RFC 3339.
  const toInputValue = (iso) => (iso ? iso.slice(0, 19) : "");
  const fromInputValue = (value) => (value ? (value.length === 16 ? value + ":00" : value) + "Z" : "");
  const isAbsolute = (text) => Boolean(text) && !DURATION.test(text.trim());

  function params(extra) {
    const p = new URLSearchParams();
    if (state.q) p.set("q", state.q);
    if (state.since) p.set("since", state.since);
    if (state.until) p.set("until", state.until);
    for (const [key, value] of Object.entries(extra || {})) {
      if (value !== undefined && value !== null && value !== "") p.set(key, String(value));
    }
    return p;
  }

  async function api(path, query) {
    const response = await fetch("api/" + path + (query ? "?" + query : ""), {
      headers: { Accept: "application/json" },
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (response.status === 401) {
      // The session ended (the token changed, the cookie went): the login page.
      window.location.reload();
    }
    if (!response.ok) {
      const error = new Error((body && body.error) || response.status + " " + response.statusText);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  function sayQueryError(text) {
    qerror.textContent = text;
    qerror.hidden = !text;
    queryInput.classList.toggle("bad", Boolean(text));
  }

  // -- the URL ----------------------------------------------------------------

  function readUrl() {
    const p = new URLSearchParams(window.location.search);
    state.q = p.get("q") || "";
    state.since = p.has("since") ? p.get("since") : DEFAULT_SINCE;
    state.until = p.get("until") || "";
    state.field = p.get("field") || "";
    state.live = p.get("live") !== "0" && !state.until;
    state.id = p.get("id") || "";
  }

  function writeUrl(push) {
    const p = new URLSearchParams();
    if (state.q) p.set("q", state.q);
    if (state.since !== DEFAULT_SINCE) p.set("since", state.since);
    if (state.until) p.set("until", state.until);
    if (state.field) p.set("field", state.field);
    if (!state.live && !state.until) p.set("live", "0");
    if (state.id) p.set("id", state.id);
    const url = window.location.pathname + (p.toString() ? "?" + p : "");
    if (url === window.location.pathname + window.location.search) return;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  }

  function syncControls() {
    if (document.activeElement !== queryInput) queryInput.value = state.q;
    if (document.activeElement !== fieldInput) fieldInput.value = state.field;
    fromInput.value = isAbsolute(state.since) ? toInputValue(state.since) : "";
    toInput.value = toInputValue(state.until);
    for (const button of $("ranges").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(!state.until && button.dataset.since === state.since));
    }
    liveButton.disabled = Boolean(state.until);
    liveButton.setAttribute("aria-pressed", String(state.live && !state.until));
    liveButton.textContent = state.live || state.until ? "Live" : unseen ? "Live (" + unseen + " new)" : "Live";
    liveButton.title = state.until ? "live needs a range that ends now" : "stream new matching records at the top";
    drawStatus();
  }

  // -- drawing records ----------------------------------------------------------

  function row(rec) {
    const node = el("div", "rec lvl-" + levelClass(rec.level));
    node.tabIndex = 0;
    node.setAttribute("aria-expanded", "false");
    if (rec.id) node.dataset.id = String(rec.id);
    const line = el("div", "line");
    const ts = typeof rec.ts === "string" ? rec.ts : "";
    const time = el("span", "t", shortTime(ts));
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

  function permalink(id) {
    return window.location.origin + window.location.pathname + "?id=" + encodeURIComponent(id);
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = el("textarea", "offscreen");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  function detail(rec) {
    const box = el("div", "detail");
    const actions = el("div", "actions");
    if (rec.id) {
      const link = el("a", "permalink", "permalink");
      link.href = permalink(rec.id);
      link.title = "a link to this record";
      actions.append(link);
    }
    const copy = el("button", "copy", "copy as JSON");
    copy.type = "button";
    copy.addEventListener("click", async () => {
      try {
        await copyText(JSON.stringify(rec, null, 2));
        copy.textContent = "copied";
      } catch (_) {
        copy.textContent = "copy failed";
      }
      setTimeout(() => { copy.textContent = "copy as JSON"; }, 1500);
    });
    actions.append(copy);
    box.append(actions);
    const dl = el("dl");
    const add = (key, value, meta) => {
      dl.append(el("dt", meta ? "meta" : "", oneLine(key)));
      const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
      dl.append(el("dd", meta ? "meta" : "", multiLine(text ?? "")));
    };
    add("message", rec.message || "", false);
    const fields = rec.fields && typeof rec.fields === "object" ? rec.fields : {};
    for (const [key, value] of Object.entries(fields)) {
      if (key !== "_src") add(key, value, false);
    }
    const src = fields._src;
    if (src && typeof src === "object") add("source", origin(src), true);
    for (const key of ["ts", "received", "peer", "format", "host", "id"]) {
      if (rec[key] !== undefined) add(key, rec[key], true);
    }
    box.append(dl);
    if (rec.exc) box.append(el("pre", "exc", multiLine(rec.exc)));
    return box;
  }

  function setOpen(node, open) {
    let box = node.querySelector(":scope > .detail");
    if (open && !box) {
      box = detail(recordOf.get(node));
      node.append(box);
    }
    node.classList.toggle("open", open);
    node.setAttribute("aria-expanded", String(open));
  }

  function toggle(node) {
    if (window.getSelection && String(window.getSelection())) return; // selecting text
    setOpen(node, !node.classList.contains("open"));
  }

  function append(records) {
    const fragment = document.createDocumentFragment();
    for (const rec of records) {
      if (!rec || typeof rec !== "object" || ids.has(rec.id)) continue;
      if (rec.id) ids.add(rec.id);
      fragment.append(row(rec));
    }
    list.append(fragment);
  }

  function prepend(records) {
    const fragment = document.createDocumentFragment();
    let added = 0;
    for (const rec of records) {
      if (!rec || typeof rec !== "object" || ids.has(rec.id)) continue;
      if (rec.id) ids.add(rec.id);
      fragment.append(row(rec));
      added++;
    }
    if (!added) return 0;
    const selected = list.querySelector(".rec.sel");
    const anchor = selected || null;
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    list.prepend(fragment);
    // Reading an older record while new ones arrive: it stays where it was.
    if (anchor && window.scrollY > 0) window.scrollBy(0, anchor.getBoundingClientRect().top - before);
    return added;
  }

  // A record's place in the API's order (received, then id): newer is greater.
  const orderKey = (rec) => String(rec.received || "") + " " + String(rec.id || "");

  function noteNewest(records) {
    for (const rec of records) {
      if (rec && typeof rec.received === "string" && orderKey(rec) > newest) newest = orderKey(rec);
    }
  }

  function drawShown() {
    const n = list.childElementCount;
    const parts = [];
    if (matched !== null) parts.push(matched.toLocaleString("en") + " matching");
    parts.push(n.toLocaleString("en") + " shown" + (next ? "" : n ? " (all)" : ""));
    if (tookMs) parts.push(tookMs + " ms");
    shown.textContent = parts.join(" · ");
    empty.hidden = n > 0 || loading;
    $("empty-title").textContent = !qerror.hidden ? "The query above needs fixing."
      : state.q || state.until || state.since !== DEFAULT_SINCE
        ? "No records match in this range." : "No records yet.";
    more.textContent = n && !next ? "The oldest matching record is above." : loading ? "loading…" : "";
    more.classList.toggle("end", Boolean(n && !next));
  }

  // -- histogram, chips, facets -----------------------------------------------------

  function drawHistogram(answer) {
    buckets = answer.buckets || [];
    const totals = new Map();
    let max = 0;
    for (const bucket of buckets) {
      let sum = 0;
      for (const [level, count] of Object.entries(bucket.counts || {})) {
        const cls = levelClass(level);
        totals.set(cls, (totals.get(cls) || 0) + count);
        sum += count;
      }
      bucket.total = sum;
      max = Math.max(max, sum);
    }
    const fragment = document.createDocumentFragment();
    buckets.forEach((bucket, i) => {
      const col = el("div", "col");
      col.dataset.i = String(i);
      const lines = [bucket.start.slice(showDates ? 5 : 11, 19).replace("T", " ") + " – " + bucket.end.slice(11, 19)];
      for (const name of LEVELS.concat(["other"])) {
        let count = 0;
        for (const [level, n] of Object.entries(bucket.counts || {})) {
          if (levelClass(level) === name) count += n;
        }
        if (!count) continue;
        const seg = el("div", "seg lvl-" + name);
        seg.style.height = (max ? (100 * count) / max : 0) + "%";
        col.append(seg);
        lines.push(name + " " + count);
      }
      col.title = lines.join("\n");
      fragment.append(col);
    });
    bars.replaceChildren(fragment);
    if (buckets.length) {
      const first = buckets[0].start;
      const last = buckets[buckets.length - 1].end;
      const mid = buckets[Math.floor(buckets.length / 2)].start;
      const label = (ts) => (showDates ? ts.slice(5, 10) + " " : "") + ts.slice(11, 19);
      $("axis-start").textContent = label(first);
      $("axis-mid").textContent = label(mid);
      $("axis-end").textContent = label(last) + " UTC";
    }
    matched = [...totals.values()].reduce((a, b) => a + b, 0);
    drawCounts(totals);
    drawShown();
  }

  function drawCounts(totals) {
    countsBox.replaceChildren();
    const names = LEVELS.concat(totals.has("other") ? ["other"] : []);
    for (const name of names) {
      const count = totals.get(name) || 0;
      const chip = el("button", "chip lvl-" + name + (count ? "" : " zero"), name);
      chip.type = "button";
      chip.dataset.level = name;
      chip.title = name === "other" ? "levels netlog does not know" : "show " + name + " and above";
      chip.append(el("b", "", count.toLocaleString("en")));
      countsBox.append(chip);
    }
  }

  function drawFacet(section, answer) {
    const ol = section.querySelector("ol");
    ol.replaceChildren();
    const values = answer.values || [];
    // host: shown where records name one (netlog collect's store), hidden elsewhere.
    if ("hideEmpty" in section.dataset) section.hidden = !values.length && !answer.other;
    const top = values.length ? values[0].count : 0;
    for (const { value, count } of values) {
      const li = el("li");
      const button = el("button", "fv", "");
      button.type = "button";
      button.dataset.value = String(value);
      button.title = "add " + answer.field + "=" + quote(value) + " to the query";
      const bar = el("span", "fbar");
      bar.style.width = (top ? (100 * count) / top : 0) + "%";
      button.append(bar, el("span", "fname", oneLine(value === "" ? '""' : value)),
        el("span", "fcount", count.toLocaleString("en")));
      li.append(button);
      ol.append(li);
    }
    if (answer.other) ol.append(el("li", "fother", "+" + answer.other.toLocaleString("en") + " other"));
    if (!values.length) ol.append(el("li", "fother", "none"));
  }

  async function loadCounts(gen) {
    const wanted = [
      api("histogram", params({ buckets: BUCKETS })).then((answer) => {
        if (gen === generation) drawHistogram(answer);
      }),
    ];
    for (const section of document.querySelectorAll(".facet")) {
      const field = section === $("picked") ? state.field : section.dataset.field;
      if (!field) {
        section.querySelector("ol").replaceChildren();
        continue;
      }
      wanted.push(api("facets", params({ field, top: 8 })).then((answer) => {
        if (gen === generation) drawFacet(section, answer);
      }).catch((error) => {
        if (gen !== generation) return;
        const ol = section.querySelector("ol");
        // A bad query is said once, under the query box (level and logger
        // are good fields); a bad picked field is said here.
        const own = section === $("picked") || error.status !== 400;
        ol.replaceChildren(own ? el("li", "fother bad", error.message) : "");
      }));
    }
    await Promise.allSettled(wanted);
  }

  // -- searching ------------------------------------------------------------------

  async function search() {
    const gen = ++generation;
    next = null;
    newest = "";
    ids.clear();
    unseen = 0;
    list.replaceChildren();
    matched = null;
    tookMs = 0;
    const now = Date.now() / 1000;
    const start = boundTime(state.since, now);
    const end = boundTime(state.until, now);
    showDates = new Date(start * 1000).toISOString().slice(0, 10)
      !== new Date(end * 1000).toISOString().slice(0, 10);
    list.classList.toggle("dated", showDates);
    single.classList.toggle("dated", showDates);
    syncControls();
    loading = true;
    drawShown();
    loadCounts(gen).catch(() => {});
    try {
      const page = await api("records", params({ limit: PAGE }));
      if (gen !== generation) return;
      sayQueryError("");
      tookMs = page.took_ms;
      next = page.next;
      noteNewest(page.records);
      append(page.records);
    } catch (error) {
      if (gen !== generation) return;
      if (error.status === 400) sayQueryError(error.message);
      else say("The search failed: " + error.message);
    } finally {
      if (gen === generation) {
        loading = false;
        drawShown();
        fillScreen();
      }
    }
  }

  async function older() {
    if (loading || !next) return;
    const gen = generation;
    loading = true;
    drawShown();
    try {
      const page = await api("records", params({ limit: PAGE, before: next }));
      if (gen !== generation) return;
      next = page.next;
      append(page.records);
    } catch (error) {
      if (gen === generation) say("Could not load older records: " + error.message);
    } finally {
      if (gen === generation) {
        loading = false;
        drawShown();
        fillScreen();
      }
    }
  }

  // Keep loading while the end of the list is on screen (the observer fires once).
  function fillScreen() {
    if (next && !loading && more.getBoundingClientRect().top < window.innerHeight + 400) {
      older();
    }
  }

  // Live: ask for what is newer than the newest shown; the API applies the query.
  async function liveQuery() {
    liveTimer = null;
    if (!state.live || state.until || state.id || liveBusy) return;
    if (loading && !newest) {
      // The first page is on its way and will hold these; look again after it.
      liveTimer = setTimeout(liveQuery, LIVE_EVERY);
      return;
    }
    const gen = generation;
    liveBusy = true;
    try {
      // Records received in the same microsecond as the newest shown come
      // back too; only those after it in the API's order are new.
      const since = newest ? newest.split(" ")[0] : state.since;
      const p = params({ limit: 1000 });
      if (since) p.set("since", since);
      const page = await api("records", p);
      if (gen !== generation) return;
      if (page.next && newest) {
        search(); // more arrived than one page: start over rather than leave a gap
        return;
      }
      const fresh = newest ? page.records.filter((rec) => orderKey(rec) > newest) : page.records;
      noteNewest(fresh);
      if (prepend(fresh)) drawShown();
    } catch (_) {
      // the next event tries again
    } finally {
      liveBusy = false;
    }
  }

  function onArrivals(count) {
    if (!state.live || state.until) {
      unseen += count;
      syncControls();
      return;
    }
    if (!liveTimer) liveTimer = setTimeout(liveQuery, liveBusy ? LIVE_EVERY * 2 : 60);
    if (!countsTimer) {
      countsTimer = setTimeout(() => {
        countsTimer = null;
        if (state.live && !state.until) loadCounts(generation).catch(() => {});
      }, COUNTS_EVERY);
    }
  }

  async function openSingle() {
    single.replaceChildren();
    single.hidden = !state.id;
    if (!state.id) return;
    const head = el("div", "single-head");
    const back = el("button", "", "× close");
    back.type = "button";
    back.addEventListener("click", closeSingle);
    head.append(el("span", "", "record " + oneLine(state.id)), back);
    single.append(head);
    try {
      const rec = await api("records/" + encodeURIComponent(state.id));
      const node = row(rec);
      single.append(node);
      setOpen(node, true);
      node.focus();
    } catch (error) {
      single.append(el("p", "bad", error.status === 404 ? "No record has this id (it may have been deleted by --max-age)." : error.message));
    }
  }

  function closeSingle() {
    state.id = "";
    writeUrl(true);
    openSingle();
  }

  // -- the event stream -------------------------------------------------------------

  let source = null;
  let streamState = "connecting";
  function drawStatus() {
    let kind = streamState;
    let text = { connecting: "connecting…", reconnecting: "reconnecting…", stopped: "disconnected", bye: "server stopped" }[kind] || "";
    if (kind === "open") {
      kind = state.live && !state.until ? "live" : "paused";
      text = kind === "live" ? "live" : "paused";
    }
    status.className = "status " + (kind === "bye" ? "stopped" : kind);
    status.textContent = text;
  }

  function connect() {
    source = new EventSource("events");
    source.addEventListener("open", () => {
      streamState = "open";
      drawStatus();
    });
    source.addEventListener("records", (event) => {
      let count = 0;
      try {
        count = JSON.parse(event.data).length;
      } catch (_) {
        count = 1;
      }
      onArrivals(count);
    });
    source.addEventListener("dropped", () => onArrivals(1));
    source.addEventListener("bye", () => {
      streamState = "bye";
      drawStatus();
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        streamState = streamState === "bye" ? "bye" : "stopped";
        setTimeout(connect, 3000);
      } else if (streamState !== "bye") {
        streamState = "reconnecting";
      }
      drawStatus();
    });
  }

  // -- controls -----------------------------------------------------------------------

  function apply(changes, push = true) {
    // What is typed but not yet searched for counts too: the boxes are the truth.
    clearTimeout(typing);
    clearTimeout(picking);
    state.q = queryInput.value.trim();
    state.field = fieldInput.value.trim();
    Object.assign(state, changes);
    if (state.until) state.live = false;
    writeUrl(push);
    search();
  }

  function addTerm(term, replacing) {
    const terms = state.q.trim() ? state.q.trim().split(/\s+(?=(?:[^"]*"[^"]*")*[^"]*$)/) : [];
    const kept = replacing ? terms.filter((t) => !replacing.test(t)) : terms;
    if (!kept.includes(term)) kept.push(term);
    apply({ q: kept.join(" ") });
  }

  queryInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => apply({ q: queryInput.value.trim() }, false), 350);
  });
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(typing);
    apply({ q: queryInput.value.trim() });
  });
  $("ranges").addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (button) apply({ since: button.dataset.since, until: "", live: true });
  });
  fromInput.addEventListener("change", () => {
    if (fromInput.value) apply({ since: fromInputValue(fromInput.value) });
  });
  toInput.addEventListener("change", () => {
    apply({ until: fromInputValue(toInput.value), live: !toInput.value });
  });
  liveButton.addEventListener("click", () => {
    if (state.until) return;
    state.live = !state.live;
    writeUrl(false);
    syncControls();
    if (state.live) {
      unseen = 0;
      syncControls();
      liveQuery();
      loadCounts(generation).catch(() => {});
    }
  });
  fieldInput.addEventListener("input", () => {
    clearTimeout(picking);
    picking = setTimeout(() => {
      state.field = fieldInput.value.trim();
      writeUrl(false);
      loadCounts(generation).catch(() => {});
    }, 350);
  });
  $("facets").addEventListener("click", (event) => {
    const button = event.target.closest(".fv");
    if (!button) return;
    const field = button.closest(".facet") === $("picked") ? state.field : button.closest(".facet").dataset.field;
    addTerm(field + "=" + quote(button.dataset.value));
  });
  countsBox.addEventListener("click", (event) => {
    const chip = event.target.closest(".chip");
    if (!chip || chip.dataset.level === "other") return;
    addTerm("level>=" + chip.dataset.level, /^level(>=|>|=|<=|<)/);
  });

  // The histogram: click a bar to zoom to it, drag across bars to zoom to them.
  let dragFrom = null;
  const colAt = (event) => event.target.closest(".col");
  function markDrag(to) {
    const [a, b] = dragFrom <= to ? [dragFrom, to] : [to, dragFrom];
    for (const col of bars.children) {
      const i = Number(col.dataset.i);
      col.classList.toggle("picked", i >= a && i <= b);
    }
  }
  bars.addEventListener("pointerdown", (event) => {
    const col = colAt(event);
    if (!col) return;
    event.preventDefault();
    dragFrom = Number(col.dataset.i);
    markDrag(dragFrom);
  });
  bars.addEventListener("pointerover", (event) => {
    const col = colAt(event);
    if (dragFrom !== null && col) markDrag(Number(col.dataset.i));
  });
  window.addEventListener("pointerup", (event) => {
    if (dragFrom === null) return;
    const col = colAt(event);
    const to = col && bars.contains(col) ? Number(col.dataset.i) : dragFrom;
    const [a, b] = dragFrom <= to ? [dragFrom, to] : [to, dragFrom];
    dragFrom = null;
    if (!buckets[a] || !buckets[b]) return;
    apply({ since: buckets[a].start, until: buckets[b].end, live: false });
  });

  list.addEventListener("click", (event) => {
    if (event.target.closest(".detail")) return;
    const node = event.target.closest(".rec");
    if (node) {
      select(node, false);
      toggle(node);
    }
  });
  single.addEventListener("click", (event) => {
    if (event.target.closest(".detail")) return;
    const node = event.target.closest(".rec");
    if (node) toggle(node);
  });

  function select(node, scroll) {
    for (const old of document.querySelectorAll(".rec.sel")) old.classList.remove("sel");
    if (!node) return;
    node.classList.add("sel");
    node.focus({ preventScroll: !scroll });
    if (scroll) node.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const rows = [...list.querySelectorAll(":scope > .rec")];
    if (!rows.length) return;
    const current = list.querySelector(":scope > .rec.sel");
    let i = current ? rows.indexOf(current) + step : 0;
    i = Math.max(0, Math.min(rows.length - 1, i));
    select(rows[i], true);
    if (i >= rows.length - 3) older();
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const inField = event.target.closest && event.target.closest("input, textarea, select");
    if (inField) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const node = event.target.closest && event.target.closest(".rec");
    if (event.key === "/") {
      event.preventDefault();
      queryInput.focus();
      queryInput.select();
    } else if (event.key === "j") {
      move(1);
    } else if (event.key === "k") {
      move(-1);
    } else if (event.key === "Enter" && node && !event.target.closest("button, a")) {
      event.preventDefault();
      toggle(node);
    } else if (event.key === "Escape") {
      if (state.id) {
        closeSingle();
        return;
      }
      for (const open of list.querySelectorAll(".rec.open")) setOpen(open, false);
    }
  });

  window.addEventListener("popstate", () => {
    readUrl();
    openSingle();
    search();
  });

  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) older();
  }, { rootMargin: "400px" }).observe(more);

  $("hint").textContent =
    "curl -d 'msg=hello' -d 'level=warning' " + window.location.origin + "/log";
  readUrl();
  syncControls();
  drawCounts(new Map());
  openSingle();
  search();
  connect();
})();
