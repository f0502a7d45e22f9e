// Radar's page for marketers: plain DOM, no build step, nothing fetched from elsewhere (it
// works offline). Every figure comes from the keyed API (GET /lists, /kpis, /find, /history,
// POST /score); this file only draws what the API answers.
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

const state = { list: null, listRequest: 0, person: 0, sort: { column: null, descending: false } };

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
  $("#download-csv").disabled = true;
  // Only the latest request draws: an earlier one answering late must not replace it.
  const asked = ++state.listRequest;
  try {
    const list = await api(`/lists?${query}`);
    if (asked !== state.listRequest) return;
    state.list = list;
    $("#download-csv").disabled = false;
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

// --- a list as CSV ----------------------------------------------------------------------

// The list as shown: its columns (never contact ones), its rows in the order on screen.
function listCsv() {
  const shown = state.list.columns.filter((c) => !PRIVATE.test(c));
  const lines = [shown.map(csvCell).join(",")];
  for (const row of sortRows(state.list.rows, state.sort)) lines.push(shown.map((c) => csvCell(row[c])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

function csvCell(value) {
  if (value === null || value === undefined) return "";
  let text = Array.isArray(value) ? value.join(";") : String(value);
  // A spreadsheet runs a cell starting with = + - @ as a formula: text from the CRM stays text.
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csvName() {
  const filters = Object.entries(state.list.filters).map(([k, v]) => `${k}-${[].concat(v).join("+")}`);
  const parts = [state.list.name, ...filters, state.list.as_of].filter(Boolean);
  return `${parts.join("_").replace(/[^\w.+-]+/g, "-")}.csv`;
}

function downloadList() {
  if (!state.list) return;
  // A byte-order mark, so spreadsheets read the reasons' arrows and accents as UTF-8.
  const blob = new Blob(["\ufeff", listCsv()], { type: "text/csv;charset=utf-8" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = csvName();
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

// --- a person ----------------------------------------------------------------------------

const KIND_LABELS = {
  person_id: "person id",
  lead_id: "lead id",
  customer_id: "customer id",
  email: "e-mail",
  phone: "phone",
};
// Days within which the time-to-close card gives P(won), as the API answers them.
const WON_WITHIN = [30, 60, 90];

function openPerson(personId) {
  $("#person-query").value = personId;
  show("person");
  loadPerson(personId);
}

function clearPerson() {
  $("#person-matches").replaceChildren();
  $("#person-matches").hidden = true;
  $("#person-ids").replaceChildren();
  $("#person-ids").hidden = true;
  $("#person-scores").replaceChildren();
}

// The server normalises and matches the query; its answer names people and which kind of
// key matched, never the e-mail or phone, so nothing is shown that was not typed here.
async function findPerson(query) {
  clearPerson();
  setStatus("#person-status", "Searching…");
  // As for lists, only the latest search or person draws.
  const asked = ++state.person;
  let body;
  try {
    body = await api(`/find?${new URLSearchParams({ q: query })}`);
  } catch (failure) {
    if (asked !== state.person) return;
    const nobody = failure.status === 404;
    setStatus("#person-status", nobody ? "Nobody matches that lead id, customer id, e-mail or phone." : failure.message,
      !nobody);
    return;
  }
  if (asked !== state.person) return;
  if (body.matches.length === 1) {
    await loadPerson(body.matches[0].person_id, matchedText(body.matches[0]));
    return;
  }
  const shown = body.total > body.matches.length ? ` (the first ${body.matches.length} shown)` : "";
  setStatus("#person-status", `${body.total} people match${shown}: choose one.`);
  $("#person-matches").replaceChildren(...body.matches.map(matchItem));
  $("#person-matches").hidden = false;
}

function matchItem(match) {
  const item = element("li");
  item.dataset.personId = match.person_id;
  item.append(personLink(match.person_id), element("span", "muted", ` ${idsText(match)} · ${matchedText(match)}`));
  return item;
}

function matchedText(match) {
  return `found by ${match.matched_by.map((k) => KIND_LABELS[k] || k).join(", ")}`;
}

function idsText(person) {
  const leads = person.lead_ids.length ? `lead ${person.lead_ids.join(", ")}` : "no lead id";
  const customers = person.customer_ids.length ? `customer ${person.customer_ids.join(", ")}` : "no customer id";
  return `${leads}; ${customers}`;
}

async function loadPerson(personId, note = "") {
  clearPerson();
  setStatus("#person-status", "Scoring…");
  const asked = ++state.person;
  try {
    const [body, history] = await Promise.all([
      api("/score", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ person_id: personId, top_k: 5 }),
      }),
      personHistory(personId),
    ]);
    if (asked !== state.person) return;
    drawIds(body);
    const cards = body.scores.map((score) => scoreCard(score, seriesOf(history, score)));
    $("#person-scores").replaceChildren(...cards, ...notApplicable(body.not_applicable));
    const found = note ? `${note}; ` : "";
    setStatus("#person-status", `${personId}: ${found}scored as of ${body.as_of.slice(0, 10)}`);
  } catch (failure) {
    if (asked === state.person) setStatus("#person-status", failure.message, true);
  }
}

// Every recorded score of the person; none yet is an empty history, not an error.
async function personHistory(personId) {
  try {
    return (await api(`/history?${new URLSearchParams({ person_id: personId })}`)).points;
  } catch (failure) {
    if (failure.status === 404) return [];
    throw failure;
  }
}

// One score's series: its target, and for time to close its own deal.
function seriesOf(points, score) {
  return points.filter((p) => p.target === score.target && (score.deal_id ? p.deal_id === score.deal_id : !p.deal_id));
}

function drawIds(body) {
  const card = $("#person-ids");
  const list = element("dl", "overall");
  const rows = [
    ["Radar person", [body.person_id], "person_id"],
    ["Lead ids", body.lead_ids, "lead_ids"],
    ["Customer ids", body.customer_ids, "customer_ids"],
  ];
  for (const [label, ids, field] of rows) {
    const value = element("dd", "", ids.length ? ids.join(", ") : "none");
    value.dataset.field = field;
    list.append(element("dt", "", label), value);
  }
  card.replaceChildren(element("h3", "", "Person"), list);
  card.hidden = false;
}

function scoreCard(score, points) {
  const card = element("article", "card score");
  card.dataset.target = score.target;
  const dealClose = score.target === "time_to_close";
  const title = TARGET_LABELS[score.target] || score.target;
  card.append(element("h3", "", dealClose && score.deal_id ? `${title} · deal ${score.deal_id}` : title));
  if (score.deal_id) card.dataset.dealId = score.deal_id;
  const headline = element("p", "headline");
  const chance = dealClose ? "" : ` · probability ${percent(score.probability)}`;
  headline.append(element("span", `grade grade-${score.grade}`, score.grade),
    element("span", "", ` score ${score.score} / 100${chance}`));
  card.append(headline);
  if (dealClose) card.append(wonWithin(score));
  if (score.trend && score.trend !== "new") {
    card.append(element("p", `trend trend-${score.trend}`, `${score.trend}: ${score.previous_score} → ${score.score} since the last score`));
  }
  if (score.expected_value !== null && score.expected_value !== undefined) {
    card.append(element("p", "muted", `expected value ${score.expected_value.toFixed(2)}`));
  }
  card.append(historyChart(points));
  const reasons = element("ul", "reasons");
  reasons.append(...score.reasons.map((r) => element("li", r.direction === "up" ? "up" : "down", r.text)));
  card.append(reasons);
  return card;
}

// P(won within 30/60/90 days) and the median days to win, for one open deal.
function wonWithin(score) {
  const list = element("dl", "won");
  for (const days of WON_WITHIN) {
    const value = element("dd", "", percent(score[`p_won_${days}d`]));
    value.dataset.days = String(days);
    list.append(element("dt", "", `won within ${days} days`), value);
  }
  const median = score.median_days_to_win;
  const days = element("dd", "", median === null || median === undefined ? "beyond the horizon" : `${Math.round(median)} days`);
  days.dataset.field = "median_days_to_win";
  list.append(element("dt", "", "median time to win"), days);
  return list;
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)} %`;
}

// The score history of one target as a small line chart (inline SVG, scores 0-100 by day).
function historyChart(points) {
  const figure = element("figure", "history");
  figure.dataset.points = String(points.length);
  if (!points.length) {
    figure.append(element("figcaption", "muted", "no recorded scores yet"));
    return figure;
  }
  const ns = "http://www.w3.org/2000/svg";
  const [width, height, left, right, top, bottom] = [320, 96, 26, 10, 8, 18];
  const times = points.map((p) => Date.parse(p.day));
  const first = Math.min(...times);
  const span = Math.max(...times) - first;
  const x = (t) => (span ? left + ((width - left - right) * (t - first)) / span : (left + width - right) / 2);
  const y = (s) => top + ((height - top - bottom) * (100 - s)) / 100;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "history");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `score history: ${points.map((p) => `${p.day} ${p.score}`).join(", ")}`);
  for (const level of [0, 50, 100]) {
    svg.append(svgNode(ns, "line", { x1: left, x2: width - right, y1: y(level), y2: y(level), class: "grid" }),
      svgNode(ns, "text", { x: left - 4, y: y(level) + 3, "text-anchor": "end" }, String(level)));
  }
  const line = points.map((p, i) => `${x(times[i])},${y(p.score)}`).join(" ");
  svg.append(svgNode(ns, "polyline", { points: line, class: "line" }));
  points.forEach((p, i) => {
    const dot = svgNode(ns, "circle", { cx: x(times[i]), cy: y(p.score), r: 3, class: "point" });
    dot.dataset.day = p.day;
    dot.dataset.score = String(p.score);
    dot.append(svgNode(ns, "title", {}, `${p.day}: ${p.score} (model ${p.model_version})`));
    svg.append(dot);
  });
  const last = points.length - 1;
  svg.append(svgNode(ns, "text", { x: left, y: height - 4 }, points[0].day));
  if (last > 0) svg.append(svgNode(ns, "text", { x: width - right, y: height - 4, "text-anchor": "end" }, points[last].day));
  const noun = points.length === 1 ? "score" : "scores";
  figure.append(svg, element("figcaption", "muted", `${points.length} recorded ${noun}`));
  return figure;
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
  $("#download-csv").addEventListener("click", downloadList);
  $("#person-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("#person-query").value.trim();
    if (query) findPerson(query);
  });
  if (apiKey()) signIn(apiKey());
}

wire();
