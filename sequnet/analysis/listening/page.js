// The listening test's page: plain ES2017, no libraries. page.py wraps this file in a function that defines
// ROOT_ID (the id of the test's root element) and fills the placeholder in double underscores below with the
// items as JSON; it drops these first comment lines.
// blindHash must stay identical to blind_hash() in items.py (a test checks both agree).
var CONFIG = __CONFIG__;
var root = document.getElementById(ROOT_ID);
if (!root && document.currentScript) {
  root = document.currentScript.parentNode.querySelector("#" + ROOT_ID);
}
var ANSWERS = ["A", "B", "not sure"];
var QUESTIONS = ["quality", "coherence"];
var memory = {};
var storageOk = true;

function blindHash(text) {
  var bytes = new TextEncoder().encode(text), h = 0x811c9dc5;
  for (var i = 0; i < bytes.length; i++) { h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0; }
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}
function presentation(name) {
  var order = CONFIG.items.map(function (it) {
    return {item: it, key: blindHash(name + "\u0000order\u0000" + it.id),
            a: it.clips[blindHash(name + "\u0000ab\u0000" + it.id) & 1]};
  });
  order.sort(function (p, q) { return p.key - q.key || (p.item.id < q.item.id ? -1 : p.item.id > q.item.id ? 1 : 0); });
  return order;
}
function loadState() {
  try {
    var text = window.localStorage.getItem(CONFIG.storageKey);
    return text ? JSON.parse(text) : {current: null, participants: {}};
  } catch (e) {
    storageOk = false;
    return memory.state || {current: null, participants: {}};
  }
}
function saveState(state) {
  memory.state = state;
  try { window.localStorage.setItem(CONFIG.storageKey, JSON.stringify(state)); }
  catch (e) { storageOk = false; }
}
function q(sel) { return root.querySelector(sel); }
function qa(sel) { return Array.prototype.slice.call(root.querySelectorAll(sel)); }
function show(view) {
  qa(".sl-view").forEach(function (el) { el.style.display = el.getAttribute("data-view") === view ? "" : "none"; });
}
function safeName(name) {
  var stem = name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+|[._]+$/g, "");
  return (stem || "participant") + ".json";
}

var state = loadState();
var trials = [];
var position = 0;

function other(item, clip) { return clip === item.clips[0] ? item.clips[1] : item.clips[0]; }
function person() { return state.participants[state.current]; }
function complete(answer) { return answer && ANSWERS.indexOf(answer.quality) >= 0 && ANSWERS.indexOf(answer.coherence) >= 0; }

function resultsDocument() {
  var p = person(), items = [];
  CONFIG.items.forEach(function (it) {
    var ans = p.answers[it.id];
    if (!complete(ans)) { return; }
    items.push({item: it.id, a: ans.a, b: other(it, ans.a), quality: ans.quality, coherence: ans.coherence});
  });
  return {schema: CONFIG.schema, participant: state.current, created: p.created, item_set: CONFIG.itemSet,
          items: items};
}
function refreshResults() {
  var doc = resultsDocument(), box = q('[data-role="results"]'), link = q('[data-role="download"]');
  box.style.display = doc.items.length ? "" : "none";
  q('[data-role="answered"]').textContent = state.current + ": " + doc.items.length + " of " + CONFIG.items.length +
    " items answered.";
  link.href = "data:application/json;charset=utf-8," + encodeURIComponent(JSON.stringify(doc, null, 2) + "\n");
  link.setAttribute("download", safeName(state.current));
  q('[data-role="storage-note"]').textContent = storageOk ? "" :
    "This browser does not let the page keep your answers: download them before you leave the page.";
}
function showTrial() {
  var t = trials[position], p = person();
  qa("audio").forEach(function (a) { a.pause(); });
  qa(".sl-item").forEach(function (el) { el.style.display = "none"; });
  var sec = root.querySelector('.sl-item[data-item="' + t.item.id + '"]');
  sec.style.display = "";
  sec.querySelector(".sl-progress").textContent = "Item " + (position + 1) + " of " + trials.length;
  sec.querySelector('[data-slot="A"]').appendChild(sec.querySelector('audio[data-clip="' + t.a + '"]'));
  sec.querySelector('[data-slot="B"]').appendChild(sec.querySelector('audio[data-clip="' + other(t.item, t.a) + '"]'));
  var ans = p.answers[t.item.id] || {};
  QUESTIONS.forEach(function (question) {
    Array.prototype.forEach.call(sec.querySelectorAll('[data-question="' + question + '"] input'), function (input) {
      input.checked = ans[question] === input.value;
    });
  });
  q('[data-role="prev"]').disabled = position === 0;
  var next = q('[data-role="next"]');
  next.textContent = position === trials.length - 1 ? "Finish" : "Next";
  next.disabled = !complete(ans);
  p.position = position;
  saveState(state);
  show("items");
  refreshResults();
}
function start(raw) {
  var name = (raw || "").trim();
  if (!name) { q('[data-role="start-error"]').textContent = "Please enter a name or nickname."; return; }
  if (name.length > 100) { q('[data-role="start-error"]').textContent = "At most 100 characters, please."; return; }
  q('[data-role="start-error"]').textContent = "";
  if (!state.participants[name]) {
    state.participants[name] = {created: new Date().toISOString(), answers: {}, position: 0};
  }
  state.current = name;
  trials = presentation(name);
  position = Math.min(person().position || 0, trials.length - 1);
  showTrial();
}
qa(".sl-question input").forEach(function (input) {
  input.addEventListener("change", function () {
    var t = trials[position], p = person();
    var ans = p.answers[t.item.id] || {a: t.a};
    ans.a = t.a;
    ans[input.closest("[data-question]").getAttribute("data-question")] = input.value;
    p.answers[t.item.id] = ans;
    saveState(state);
    q('[data-role="next"]').disabled = !complete(ans);
    refreshResults();
  });
});
q('[data-role="start"]').addEventListener("click", function () { start(q('[data-role="name"]').value); });
q('[data-role="name"]').addEventListener("keydown", function (e) { if (e.key === "Enter") { start(this.value); } });
q('[data-role="prev"]').addEventListener("click", function () { if (position > 0) { position -= 1; showTrial(); } });
q('[data-role="next"]').addEventListener("click", function () {
  if (position < trials.length - 1) { position += 1; showTrial(); }
  else { qa("audio").forEach(function (a) { a.pause(); }); show("done"); refreshResults(); }
});
q('[data-role="review"]').addEventListener("click", function () { position = 0; showTrial(); });
q('[data-role="switch"]').addEventListener("click", function () {
  state.current = null; saveState(state);
  qa("audio").forEach(function (a) { a.pause(); });
  q('[data-role="results"]').style.display = "none";
  q('[data-role="name"]').value = "";
  show("start");
});
root.listeningTest = {blindHash: blindHash, presentation: presentation, results: resultsDocument};
if (state.current && state.participants[state.current]) {
  q('[data-role="name"]').value = state.current;
  start(state.current);
}
