// Radar's page for marketers: plain DOM, no build step. Every figure comes from the keyed API
// (GET /lists, GET /kpis, POST /score); this file only draws what the API answers.
"use strict";

const KEY_STORE = "radar.apiKey";
const LIST_LABELS = {
  leads_to_call: "Leads to call",
  deals_closing_soon: "Deals closing soon",
  stalled_deals: "Stalled deals",
  drifting_customers: "Drifting customers",
  service_risk_customers: "Service-risk customers",
  failed_payments: "Failed payments",
  likely_buyers: "Likely buyers",
};
const TARGET_LABELS = {
  lead_quality: "Lead quality",
  purchase_probability: "Purchase probability",
  time_to_close: "Time to close",
  churn_by_indifference: "Churn risk",
};
// Never shown even if an answer carried them: contact details stay in the CRM.
const PRIVATE = /email|phone/i;
// KPI charts worth a glance; other numeric columns stay in the report.
const KPI_CHARTS = [
  ["by_channel", "leads", "Leads by channel"],
  ["by_channel", "conversion_rate", "Conversion rate by channel"],
  ["by_channel", "cac", "CAC by channel"],
  ["by_channel", "ltv_cac", "LTV / CAC by channel"],
  ["funnel", null, "Journey funnel"],
];

const state = { list: null, sort: { column: null, descending: false } };

const $ = (selector) => document.querySelector(selector);

// --- the key and API calls ---------------------------------------------------------------

function apiKey() {
  return sessionStorage.getItem(KEY_STORE);
}

class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${apiKey()}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) {
    signOut(body.error || "invalid API key");
  }
  if (!response.ok) {
    throw new ApiFailure(response.status, body.error || `HTTP ${response.status}`);
  }
  return body;
}

function signOut(reason) {
  sessionStorage.removeItem(KEY_STORE);
  showLogin(reason);
}

function showLogin(reason) {
  $("#login").hidden = false;
  $("#tabs").hidden = true;
  $("#sign-out").hidden = true;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = true; });
  $("#login-error").textContent = reason || "";
}

async function signIn(key) {
  sessionStorage.setItem(KEY_STORE, key);
  try {
    // /models is cheap and keyed: a wrong key is told here, not on the first list.
    await api("/models");
  } catch (failure) {
    if (failure.status !== 401) signOut(failure.message);
    return;
  }
  $("#login").hidden = true;
  $("#tabs").hidden = false;
  $("#sign-out").hidden = false;
  show("lists");
  await loadListNames();
}

// --- views -------------------------------------------------------------------------------

function show(view) {
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${view}`; });
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  if (view === "kpis" && !$("#kpi-charts").childElementCount) loadKpis();
}

function filterQuery() {
  const query = new URLSearchParams();
  for (const name of ["channel", "grade", "owner", "segment"]) {
    const value = $(`#f-${name}`).value.trim();
    if (value) query.set(name, value);
  }
  return query;
}

async function loadListNames() {
  setStatus("#list-status", "Loading lists…");
  try {
    const body = await api("/lists");
    $("#as-of").textContent = body.as_of ? `as of ${body.as_of}` : "";
    const select = $("#list-name");
    select.replaceChildren(...body.lists.map((l) => option(l.name, `${LIST_LABELS[l.name] || l.name} (${l.rows})`)));
    await loadList();
  } catch (failure) {
    setStatus("#list-status", failure.message, true);
  }
}

function option(value, label) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  return element;
}

async function loadList() {
  const query = filterQuery();
  query.set("name", $("#list-name").value);
  setStatus("#list-status", "Loading…");
  try {
    state.list = await api(`/lists?${query}`);
    state.sort = { column: null, descending: false };
    drawList();
  } catch (failure) {
    setStatus("#list-status", failure.message, true);
  }
}

function drawList() {
  const { columns, rows } = state.list;
  const shown = columns.filter((c) => !PRIVATE.test(c));
  const sorted = sortRows(rows, state.sort);
  $("#rows thead").replaceChildren(headerRow(shown));
  $("#rows tbody").replaceChildren(...sorted.map((row) => bodyRow(row, shown)));
  const filters = Object.entries(state.list.filters).map(([k, v]) => `${k} = ${v}`).join(", ");
  setStatus("#list-status", `${rows.length} rows${filters ? ` (${filters})` : ""}`);
}

function headerRow(columns) {
  const tr = document.createElement("tr");
  for (const column of columns) {
    const th = document.createElement("th");
    th.textContent = column.replaceAll("_", " ");
    th.dataset.column = column;
    th.title = "Sort";
    if (state.sort.column === column) th.classList.add(state.sort.descending ? "desc" : "asc");
    th.addEventListener("click", () => sortBy(column));
    tr.append(th);
  }
  return tr;
}

function bodyRow(row, columns) {
  const tr = document.createElement("tr");
  for (const column of columns) {
    const td = document.createElement("td");
    td.dataset.column = column;
    if (column === "person_id" && row[column]) {
      td.append(personLink(row[column]));
    } else {
      td.textContent = formatCell(row[column]);
      if (typeof row[column] === "number") td.classList.add("number");
    }
    tr.append(td);
  }
  return tr;
}

function personLink(personId) {
  const link = document.createElement("a");
  link.href = "#";
  link.textContent = personId;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    openPerson(personId);
  });
  return link;
}

function formatCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(value < 1 && value > -1 ? 3 : 2);
  return String(value);
}

function sortBy(column) {
  const same = state.sort.column === column;
  state.sort = { column, descending: same ? !state.sort.descending : false };
  drawList();
}

// Empty cells always sort last, whichever the direction: they are not "small".
function sortRows(rows, { column, descending }) {
  if (!column) return rows;
  const sign = descending ? -1 : 1;
  return [...rows].sort((a, b) => {
    const x = a[column];
    const y = b[column];
    if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;
    if (y === null || y === undefined) return -1;
    if (typeof x === "number" && typeof y === "number") return sign * (x - y);
    return sign * String(x).localeCompare(String(y));
  });
}

// --- a person ----------------------------------------------------------------------------

function openPerson(personId) {
  $("#person-id").value = personId;
  show("person");
  loadPerson(personId);
}

async function loadPerson(personId) {
  setStatus("#person-status", "Scoring…");
  $("#person-scores").replaceChildren();
  try {
    const body = await api("/score", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ person_id: personId, top_k: 5 }),
    });
    $("#person-scores").replaceChildren(...body.scores.map(scoreCard), ...notApplicable(body.not_applicable));
    setStatus("#person-status", `${personId}, scored as of ${body.as_of.slice(0, 10)}`);
  } catch (failure) {
    setStatus("#person-status", failure.message, true);
  }
}

function scoreCard(score) {
  const card = element("article", "card score");
  card.dataset.target = score.target;
  card.append(element("h3", "", TARGET_LABELS[score.target] || score.target));
  const headline = element("p", "headline");
  headline.append(element("span", `grade grade-${score.grade}`, score.grade),
    element("span", "", ` score ${score.score} / 100 · probability ${(score.probability * 100).toFixed(1)} %`));
  card.append(headline);
  if (score.expected_value !== null && score.expected_value !== undefined) {
    card.append(element("p", "muted", `expected value ${score.expected_value.toFixed(2)}`));
  }
  if (score.median_days_to_win !== null && score.median_days_to_win !== undefined) {
    card.append(element("p", "muted", `median days to win ${Math.round(score.median_days_to_win)}`));
  }
  const reasons = element("ul", "reasons");
  reasons.append(...score.reasons.map((r) => element("li", r.direction === "up" ? "up" : "down", r.text)));
  card.append(reasons);
  return card;
}

function notApplicable(reasons) {
  return Object.entries(reasons || {}).map(([target, why]) => {
    const card = element("article", "card score na");
    card.append(element("h3", "", TARGET_LABELS[target] || target), element("p", "muted", why));
    return card;
  });
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- KPIs --------------------------------------------------------------------------------

async function loadKpis() {
  setStatus("#kpi-status", "Computing KPIs…");
  try {
    const body = await api("/kpis");
    const tables = Object.fromEntries(body.tables.map((t) => [t.name, t]));
    const charts = KPI_CHARTS.map(([table, column, title]) => kpiChart(tables[table], column, title)).filter(Boolean);
    $("#kpi-charts").replaceChildren(...overallCard(tables.overall), ...charts);
    setStatus("#kpi-status", `as of ${body.as_of}`);
  } catch (failure) {
    setStatus("#kpi-status", failure.message, true);
  }
}

function overallCard(table) {
  if (!table) return [];
  const card = element("article", "card kpi");
  card.append(element("h3", "", "Overall"));
  const list = element("dl", "overall");
  for (const row of table.rows) {
    list.append(element("dt", "", row.name.replaceAll("_", " ")), element("dd", "", formatCell(row.value)));
  }
  card.append(list);
  return [card];
}

// The label is the first text column; the value is the named column, else the first number.
function kpiChart(table, column, title) {
  if (!table || !table.rows.length) return null;
  const label = table.columns.find((c) => typeof table.rows[0][c] === "string") || table.columns[0];
  const value = column || table.columns.find((c) => c !== label && typeof table.rows[0][c] === "number");
  if (!table.columns.includes(value)) return null;
  const bars = table.rows.map((r) => [String(r[label]), r[value]]).filter(([, v]) => typeof v === "number");
  const card = element("article", "card kpi");
  card.append(element("h3", "", title), barChart(bars));
  return card;
}

function barChart(bars) {
  const ns = "http://www.w3.org/2000/svg";
  const rowHeight = 22;
  const labelWidth = 130;
  const width = 420;
  const top = Math.max(...bars.map(([, v]) => Math.abs(v)), 1e-9);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${bars.length * rowHeight}`);
  svg.setAttribute("class", "bars");
  bars.forEach(([name, v], i) => {
    const y = i * rowHeight;
    const barWidth = ((width - labelWidth - 70) * Math.abs(v)) / top;
    svg.append(svgNode(ns, "text", { x: labelWidth - 6, y: y + 15, "text-anchor": "end" }, name),
      svgNode(ns, "rect", { x: labelWidth, y: y + 4, width: barWidth, height: rowHeight - 8 }),
      svgNode(ns, "text", { x: labelWidth + barWidth + 4, y: y + 15 }, formatCell(v)));
  });
  return svg;
}

function svgNode(ns, tag, attributes, text) {
  const node = document.createElementNS(ns, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(selector, message, isError = false) {
  const node = $(selector);
  node.textContent = message;
  node.classList.toggle("error", isError);
}

// --- wiring ------------------------------------------------------------------------------

function wire() {
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("#key").value.trim());
  });
  $("#sign-out").addEventListener("click", () => signOut(""));
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => show(t.dataset.view)));
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadList();
  });
  $("#list-name").addEventListener("change", loadList);
  $("#person-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadPerson($("#person-id").value.trim());
  });
  if (apiKey()) signIn(apiKey());
}

wire();
