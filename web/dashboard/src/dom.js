// A few DOM helpers: every text from the API goes through textContent, never innerHTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function table(columns, rows, { empty = 'Nothing here.', testid } = {}) {
  return h('table', { class: 'grid', testid },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : '' }, c.title)))),
    h('tbody', {}, rows.length === 0
      ? h('tr', {}, h('td', { colspan: String(columns.length), class: 'empty' }, empty))
      : rows.map((r) => h('tr', { 'data-key': r.__key ?? '' },
        columns.map((c) => h('td', { class: c.num ? 'num' : '' }, c.cell(r)))))));
}

export function fmtNum(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (Math.abs(n) >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)} k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i += 1; }
  return `${i === 0 ? n : n.toFixed(1)} ${u[i]}`;
}

export function fmtDuration(s) {
  const d = Math.floor(s / 86400); s %= 86400;
  const hh = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60);
  return d ? `${d}d ${hh}h ${m}m` : hh ? `${hh}h ${m}m` : `${m}m ${s % 60}s`;
}

export function pager(meta, onPage) {
  const pages = Math.max(1, Math.ceil((meta?.count ?? 0) / (meta?.limit || 1)));
  const page = meta?.page ?? 1;
  return h('div', { class: 'pager' },
    h('button', { class: 'ghost', disabled: page <= 1, onclick: () => onPage(page - 1) }, '‹ Prev'),
    h('span', {}, `page ${page} of ${pages} · ${meta?.count ?? 0} total`),
    h('button', { class: 'ghost', disabled: page >= pages, onclick: () => onPage(page + 1) }, 'Next ›'));
}
