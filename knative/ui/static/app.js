// knflow page: start a tuning run, poll it, deploy the best trial; poll the pipeline.
"use strict";
const $ = (sel) => document.querySelector(sel);
let runId = new URLSearchParams(location.search).get("run");

function cell(row, text) { const td = row.insertCell(); td.textContent = text; return td; }
function fmt(v) { return v === null || v === undefined ? "-" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v); }
function params(p) { return Object.entries(p).map(([k, v]) => `${k}=${fmt(v)}`).join(" "); }
async function getJSON(url, opts) {
  const r = await fetch(url, opts);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${url}: HTTP ${r.status}`);
  return body;
}

$("#start-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#form-error").textContent = "";
  try {
    const res = await getJSON("/api/tuning", { method: "POST", body: new FormData(ev.target) });
    runId = res.id;
    history.replaceState(null, "", `?run=${runId}`);
    refreshRun();
  } catch (err) { $("#form-error").textContent = err.message; }
});

function plot(trials) {
  const svg = $("#plot"), W = 640, H = 200, pad = 24;
  const done = trials.filter((t) => t.value !== null);
  svg.innerHTML = "";
  if (!done.length) return;
  const vals = done.map((t) => t.value), lo = Math.min(...vals), hi = Math.max(...vals) || 1;
  const n = Math.max(...trials.map((t) => t.number)) + 1;
  for (const t of done) {
    const c = document.createElementNS("http://www.w3.org/2000/svg", "circle");
    c.setAttribute("cx", pad + (W - 2 * pad) * (n > 1 ? t.number / (n - 1) : 0.5));
    c.setAttribute("cy", H - pad - (H - 2 * pad) * (hi > lo ? (t.value - lo) / (hi - lo) : 0.5));
    c.setAttribute("r", 5); c.setAttribute("class", "point");
    c.setAttribute("fill", t.state === "complete" ? "#1565c0" : "#999");
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `trial ${t.number}: ${fmt(t.value)}`; c.appendChild(title);
    svg.appendChild(c);
  }
}

async function deploy(trial) {
  $("#deployment").textContent = `Deploying trial ${trial}…`;
  try {
    await getJSON(`/api/tuning/${runId}/deploy`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ trial }) });
  } catch (err) { $("#deployment").textContent = err.message; }
  refreshRun();
}

async function refreshRun() {
  if (!runId) return;
  let run;
  try { run = await getJSON(`/api/tuning/${runId}`); } catch (err) { $("#form-error").textContent = err.message; return; }
  $("#run").hidden = false;
  $("#run-id").textContent = run.id;
  $("#run-status").textContent = run.status;
  const c = run.counts;
  $("#run-reason").textContent = `${c.complete} complete, ${c.pruned} pruned, ${c.failed} failed, ${c.running} running of ${run.budget.max_trials} (${run.budget.parallel_trials} at a time) — ${run.objective.direction} ${run.objective.name}` + (run.reason ? ` — ${run.reason}` : "");
  const tbody = $("#trials tbody"); tbody.innerHTML = "";
  for (const t of run.trials) {
    const row = tbody.insertRow(); row.className = `trial state-${t.state}`;
    cell(row, t.number); cell(row, t.state); cell(row, fmt(t.value)); cell(row, params(t.params)); cell(row, fmt(t.duration));
  }
  plot(run.trials);
  const top = $("#top tbody"); top.innerHTML = "";
  run.top.forEach((t, i) => {
    const row = top.insertRow(); row.className = "top";
    cell(row, i + 1); cell(row, t.number); cell(row, fmt(t.value)); cell(row, params(t.params));
    const b = document.createElement("button"); b.textContent = "deploy"; b.className = "deploy";
    b.onclick = () => deploy(t.number); row.insertCell().appendChild(b);
  });
  const d = run.deployment;
  if (d) {
    const p = $("#deployment"); p.innerHTML = "";
    if (d.status === "ready") {
      p.append("The model you asked for is served at ");
      const a = document.createElement("a"); a.href = d.url; a.id = "endpoint"; a.textContent = d.url; p.append(a);
    } else if (d.status === "failed") {
      p.innerHTML = ""; const e = document.createElement("span"); e.className = "error";
      e.textContent = `Deploying trial ${d.trial} (${d.model} v${d.version}) failed: ${d.reason || "see knflow revision list"}`; p.append(e);
    } else { p.textContent = `Deploying trial ${d.trial} (${d.model} v${d.version})…`; }
  }
}

async function refreshPipeline() {
  const fill = (sel, rows, cols) => {
    const tb = $(sel + " tbody"); tb.innerHTML = "";
    for (const r of rows) { const row = tb.insertRow(); cols.forEach((f) => cell(row, f(r))); }
  };
  try {
    fill("#services", await getJSON("/api/pipeline"), [
      (s) => s.name, (s) => (s.ready ? "yes" : "no"), (s) => s.revisions.join(", "),
      (s) => s.traffic.map((t) => `${t.revisionName || "latest"} ${t.percent}%`).join(", "), (s) => fmt(s.replicas)]);
  } catch (err) { /* the control API may be starting */ }
  try {
    fill("#events", (await getJSON("/api/events?limit=15")).slice().reverse(), [
      (e) => (typeof e.time === "number" ? new Date(e.time * 1000).toISOString() : String(e.time || "")).slice(11, 19),
      (e) => [e.kind, e.trigger].filter(Boolean).join(" "), (e) => e.type || "", (e) => e.subject || ""]);
  } catch (err) { /* broker not answering */ }
  try { fill("#dead", await getJSON("/api/deadletters"), [(d) => d.key, (d) => d.type, (d) => d.reason]); } catch (err) {}
  try {
    const box = $("#candidates"); box.innerHTML = "";
    for (const cnd of await getJSON("/api/candidates")) {
      const div = document.createElement("div"); div.className = "candidate";
      if (cnd.image) { const img = document.createElement("img"); img.src = cnd.image; img.alt = cnd.name; div.appendChild(img); }
      if (cnd.audio) { const au = document.createElement("audio"); au.controls = true; au.src = cnd.audio; div.appendChild(au); }
      div.append(cnd.name); box.appendChild(div);
    }
  } catch (err) {}
}

refreshRun(); refreshPipeline();
setInterval(refreshRun, 1500);
setInterval(refreshPipeline, 4000);
