// interbank dashboard: a read-only live view of `interbank serve`'s JSON (docs/DASHBOARD.md).
//
// Structure, top to bottom:
//   1. formatting   money (integer cents, BigInt arithmetic), counts, times, rates
//   2. DOM helpers  text-only updates that reuse nodes (never parsed as markup: server data is
//                   always set with textContent / setAttribute), table and list syncing
//   3. sections     one render function per panel; renderAll() calls each in its own try/catch,
//                   so one bad value never blanks the page and the last good render stays
//   4. events       the paged /api/events table with its filters and cursor
//   5. transport    EventSource on api/stream (event `state`), falling back to polling
//                   api/state every 2 s; Pause/Resume; the connection indicator
//   6. export       JSON of the current state, CSV of banks, matrix and the events page shown
//   7. start        wiring of buttons (addEventListener only: the page runs under a strict CSP)
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------------
  // Shared state

  const POLL_MS = 2000;
  const SSE_FAILURES_BEFORE_POLLING = 3;
  const SSE_RETRY_WHILE_POLLING_MS = 30000;
  const EVENTS_LIMIT = 50;
  const EVENTS_REFRESH_MS = 2000;
  const STALE_AFTER_MS = 5000;
  const OUTCOMES = ['completed', 'cancelled', 'debited', 'credited', 'rejected', 'settled', 'voided'];

  const S = {
    state: null, // the last state received (exported as JSON)
    overview: null, // the last non-null overview (kept while Redis is down)
    receivedAt: 0, // local time of the last state
    skewMs: 0, // local clock minus server clock, when they differ noticeably
    paused: false,
  };

  const T = {
    es: null, // the EventSource, when streaming
    errors: 0, // stream errors since the last state received
    polling: false,
    pollTimer: null,
    sseRetryAt: 0,
    mode: 'connecting',
    detail: '',
  };

  const E = {
    cursor: null, // `before` of the page shown; null: the newest page
    page: null, // the last /api/events answer shown
    pageFilters: null, // the filters of that answer
    reqId: 0,
    loading: false,
    lastFetch: 0,
    signature: '',
    timer: null,
    error: '',
  };

  // ---------------------------------------------------------------------------------------------
  // 1. Formatting

  /** An integer as a BigInt, or null: numbers (integral doubles), BigInts and digit strings. */
  function toBig(value) {
    if (typeof value === 'bigint') return value;
    if (typeof value === 'number' && Number.isFinite(value)) return BigInt(Math.trunc(value));
    if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
    return null;
  }

  function groupDigits(digits) {
    let out = '';
    for (let i = 0; i < digits.length; i++) {
      if (i > 0 && (digits.length - i) % 3 === 0) out += ',';
      out += digits[i];
    }
    return out;
  }

  /** Integer cents as units: -1234567 → "-12,345.67". */
  function fmtCents(value) {
    const b = toBig(value);
    if (b === null) return '—';
    const neg = b < 0n;
    const abs = neg ? -b : b;
    const units = groupDigits((abs / 100n).toString());
    const cents = (abs % 100n).toString().padStart(2, '0');
    return (neg ? '-' : '') + units + '.' + cents;
  }

  /** Cents in a few characters for narrow cells: "-12.3k", "4.50M"; exact values go in titles. */
  function fmtCentsShort(value) {
    const b = toBig(value);
    if (b === null) return '—';
    const neg = b < 0n;
    const abs = neg ? -b : b;
    const units = abs / 100n;
    let text;
    if (units < 10000n) {
      text = groupDigits(units.toString()) + (units < 100n ? '.' + (abs % 100n).toString().padStart(2, '0') : '');
    } else {
      const steps = [[1000000000000n, 'T'], [1000000000n, 'B'], [1000000n, 'M'], [1000n, 'k']];
      const [div, suffix] = steps.find(([d]) => units >= d);
      const tenths = (units * 10n) / div; // e.g. 123 for 12.3k
      const whole = tenths / 10n;
      text = whole >= 100n ? groupDigits(whole.toString()) + suffix : whole.toString() + '.' + (tenths % 10n).toString() + suffix;
    }
    return (neg ? '-' : '') + text;
  }

  function fmtInt(value) {
    const b = toBig(value);
    return b === null ? '—' : (b < 0n ? '-' + groupDigits((-b).toString()) : groupDigits(b.toString()));
  }

  /** A count as digits only (no separators): what the test-facing count elements hold. */
  function plainInt(value) {
    const b = toBig(value);
    return b === null || b < 0n ? '0' : b.toString();
  }

  function fmtRate(perSecond) {
    if (!Number.isFinite(perSecond)) return '—';
    if (perSecond >= 100) return groupDigits(String(Math.round(perSecond)));
    return (Math.round(perSecond * 10) / 10).toFixed(1);
  }

  function pad2(n) {
    return String(n).padStart(2, '0');
  }

  function isMs(ms) {
    return typeof ms === 'number' && Number.isFinite(ms) && ms > 0;
  }

  /** Local time: "14:03:07", with the date when it is not today. */
  function fmtTime(ms, withMillis) {
    if (!isMs(ms)) return '—';
    const d = new Date(ms);
    let text = pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
    if (withMillis) text += '.' + String(d.getMilliseconds()).padStart(3, '0');
    const today = new Date();
    if (d.toDateString() !== today.toDateString()) {
      text = d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + text;
    }
    return text;
  }

  function fmtDateTime(ms) {
    if (!isMs(ms)) return '—';
    const d = new Date(ms);
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' +
      pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds()) + '.' +
      String(d.getMilliseconds()).padStart(3, '0');
  }

  function fmtDuration(ms) {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '—';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = Math.floor(ms / 1000);
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '');
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  /** The server's clock, as well as the browser can tell. */
  function serverNow() {
    return Date.now() - S.skewMs;
  }

  function fmtAgo(ms) {
    if (!isMs(ms)) return '';
    const d = serverNow() - ms;
    if (d < 1000) return 'just now';
    return fmtDuration(d) + ' ago';
  }

  /** The ms of a stream entry id "<ms>-<seq>". */
  function idMs(id) {
    if (typeof id !== 'string') return null;
    const m = /^(\d+)(-\d+)?$/.exec(id);
    return m ? Number(m[1]) : null;
  }

  function str(value) {
    return value === null || value === undefined ? '' : String(value);
  }

  function arr(value) {
    return Array.isArray(value) ? value : [];
  }

  // ---------------------------------------------------------------------------------------------
  // 2. DOM helpers (text only)

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setText(node, text) {
    const t = str(text);
    if (node.textContent !== t) node.textContent = t;
  }

  function setClass(node, cls) {
    const c = cls || '';
    if (node.getAttribute('class') !== c) node.setAttribute('class', c);
  }

  function setTitle(node, title) {
    if (title === null || title === undefined || title === '') {
      if (node.hasAttribute('title')) node.removeAttribute('title');
    } else if (node.getAttribute('title') !== String(title)) {
      node.setAttribute('title', String(title));
    }
  }

  function show(node, visible) {
    if (node && node.hidden === Boolean(visible)) node.hidden = !visible;
  }

  /** Makes `parent` have exactly `count` children, creating them with `create`; returns them. */
  function syncChildren(parent, count, create) {
    while (parent.children.length > count) parent.lastElementChild.remove();
    while (parent.children.length < count) parent.appendChild(create());
    return Array.from(parent.children);
  }

  /** A span showing "(5 s ago)" that the ticker keeps current. */
  function setAgo(node, ms, bare) {
    const value = isMs(ms) ? String(ms) : '';
    if (node.dataset.ago !== value) node.dataset.ago = value;
    if (bare) node.dataset.bare = '1';
    const ago = fmtAgo(ms);
    setText(node, ago === '' ? '' : bare ? ago : '(' + ago + ')');
  }

  function tickAgo() {
    for (const node of document.querySelectorAll('[data-ago]')) {
      const ms = Number(node.dataset.ago);
      if (!node.dataset.ago) continue;
      const ago = fmtAgo(ms);
      setText(node, node.dataset.bare ? ago : '(' + ago + ')');
    }
  }

  /**
   * Fills a table section with rows, reusing its nodes. A row is {cells, cls, title}; a cell is a
   * string or {text, cls, title, th, span, ago, badge, bar: {pct, cls, label}, bg, fg}.
   */
  function fillRows(section, rows) {
    const trs = syncChildren(section, rows.length, () => document.createElement('tr'));
    rows.forEach((row, i) => {
      const tr = trs[i];
      setClass(tr, row.cls);
      setTitle(tr, row.title);
      const cells = row.cells;
      while (tr.children.length > cells.length) tr.lastElementChild.remove();
      cells.forEach((spec, j) => {
        const cell = typeof spec === 'object' && spec !== null ? spec : { text: spec };
        const tag = cell.th ? 'TH' : 'TD';
        let td = tr.children[j];
        if (!td || td.tagName !== tag) {
          const fresh = document.createElement(tag);
          if (td) td.replaceWith(fresh);
          else tr.appendChild(fresh);
          td = fresh;
        }
        fillCell(td, cell);
      });
    });
  }

  function fillCell(td, cell) {
    const kind = cell.bar ? 'bar' : cell.ago !== undefined ? 'ago' : cell.badge ? 'badge' : 'text';
    if (td.dataset.kind !== kind) {
      td.textContent = '';
      td.dataset.kind = kind;
      if (kind === 'bar') {
        const bar = el('div', 'pbar');
        bar.appendChild(el('div', 'pbar-fill'));
        td.appendChild(bar);
        td.appendChild(el('span', 'pbar-label'));
      } else if (kind === 'ago') {
        td.appendChild(el('span', 't'));
        td.appendChild(document.createTextNode(' '));
        td.appendChild(el('span', 'ago muted'));
      } else if (kind === 'badge') {
        td.appendChild(el('span', 'badge'));
      }
    }
    setClass(td, kind === 'ago' ? ((cell.cls || '') + ' nowrap').trim() : cell.cls);
    setTitle(td, cell.title);
    if (cell.span) td.colSpan = cell.span;
    else if (td.colSpan !== 1) td.colSpan = 1;
    td.style.backgroundColor = cell.bg || '';
    td.style.color = cell.fg || '';
    if (kind === 'text') {
      setText(td, cell.text);
    } else if (kind === 'badge') {
      const b = td.firstElementChild;
      setText(b, cell.text);
      setClass(b, 'badge ' + cell.badge);
    } else if (kind === 'ago') {
      setText(td.firstElementChild, cell.text);
      setAgo(td.lastElementChild, cell.ago);
    } else {
      const fill = td.firstElementChild.firstElementChild;
      const pct = Math.max(0, Math.min(100, Number(cell.bar.pct) || 0));
      fill.style.width = pct.toFixed(1) + '%';
      setClass(fill, 'pbar-fill ' + (cell.bar.cls || ''));
      setText(td.lastElementChild, cell.bar.label);
    }
  }

  function placeholderRow(columns, text) {
    return { cls: 'placeholder', cells: [{ text, span: columns, cls: 'muted' }] };
  }

  /** A PASS/FAIL list of checks, reusing the list items. */
  function fillChecks(ul, checks, extra) {
    const lis = syncChildren(ul, checks.length, () => {
      const li = el('li', 'check');
      li.appendChild(el('span', 'badge'));
      li.appendChild(el('span', 'check-name'));
      li.appendChild(el('span', 'tag'));
      li.appendChild(el('span', 'check-detail'));
      li.appendChild(el('ul', 'check-failures'));
      return li;
    });
    checks.forEach((check, i) => {
      const [badge, name, tag, detail, failures] = lis[i].children;
      const passed = check && check.passed === true;
      setClass(lis[i], 'check ' + (passed ? 'check-pass' : 'check-fail'));
      setText(badge, passed ? 'PASS' : 'FAIL');
      setClass(badge, 'badge ' + (passed ? 'ok' : 'bad'));
      setText(name, check && check.name);
      const tagText = extra ? extra(check) : '';
      setText(tag, tagText);
      show(tag, tagText !== '');
      setText(detail, check && check.detail);
      const list = passed ? [] : arr(check && check.first_failures);
      const more = !passed && check && typeof check.failures === 'number' ? check.failures - list.length : 0;
      const items = list.map(String);
      if (more > 0) items.push('and ' + fmtInt(more) + ' more');
      const fl = syncChildren(failures, items.length, () => el('li'));
      items.forEach((text, j) => setText(fl[j], text));
      show(failures, items.length > 0);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // 3. Sections

  const SECTIONS = [
    ['header', renderHeader],
    ['redis', renderRedis],
    ['conservation', renderConservation],
    ['verdict', renderVerdict],
    ['live', renderLive],
    ['chart', renderChart],
    ['heatmap', renderHeatmap],
    ['banks', renderBanks],
    ['filters', renderFilters],
    ['runs', renderRuns],
    ['streams', renderStreams],
    ['consumers', renderConsumers],
    ['shards', renderShards],
  ];

  function renderAll() {
    for (const [name, render] of SECTIONS) {
      try {
        render(S.state || {}, S.overview);
      } catch (error) {
        // Keep what the section showed last; the console says what went wrong.
        console.error('dashboard: rendering ' + name + ' failed', error);
      }
    }
  }

  function layoutLabel(layout) {
    return layout === 'sharded' ? 'Redis Cluster, one stream per bank' : layout === 'single' ? 'single server' : str(layout);
  }

  function renderHeader(state, ov) {
    const parts = [];
    if (ov) {
      parts.push('prefix ' + str(ov.prefix));
      parts.push(layoutLabel(ov.layout));
      const loaded = ov.loaded || {};
      parts.push(str(loaded.file) + ': ' + fmtInt(loaded.accounts) + ' accounts, ' + fmtCents(loaded.total_cents) + ' loaded');
    } else {
      parts.push('no data yet');
    }
    setText($('dataset'), parts.join(' · '));
    const state0 = ov && ov.conservation ? ov.conservation.state : null;
    const label = { conserved: 'Conserved', violated: 'NOT CONSERVED', unsettled: 'Unsettled', unknown: 'Unknown' }[state0] || 'Waiting';
    const redisDown = state.redis && state.redis.ok === false;
    const title = (redisDown ? 'Redis down · ' : '') + label + ' · interbank';
    if (document.title !== title) document.title = title;
    $('export-json').disabled = !S.state;
    $('export-csv').disabled = !S.state;
    renderUpdated();
  }

  /** "updated 3 s ago · seq 17", marked stale when nothing came for a while. */
  function renderUpdated() {
    const node = $('updated');
    if (!S.receivedAt) {
      setText(node, '');
      return;
    }
    const age = Date.now() - S.receivedAt;
    const seq = S.state && S.state.seq !== undefined ? ' · seq ' + str(S.state.seq) : '';
    setText(node, 'updated ' + (age < 1500 ? 'just now' : fmtDuration(age) + ' ago') + seq);
    setClass(node, !S.paused && age > STALE_AFTER_MS ? 'stale' : 'muted');
  }

  function renderRedis(state) {
    const banner = $('redis-banner');
    const redis = state.redis;
    if (!redis || redis.ok !== false) {
      show(banner, false);
      return;
    }
    if (!banner.firstChild) {
      banner.appendChild(el('strong', 'redis-title'));
      banner.appendChild(el('span', 'redis-ago'));
      banner.appendChild(el('span', 'redis-error'));
      banner.appendChild(el('div', 'redis-note small'));
    }
    const [title, ago, error, note] = banner.children;
    const since = isMs(redis.down_since_ms) ? redis.down_since_ms : redis.checked_at_ms;
    setText(title, 'Redis unreachable since ' + fmtTime(since) + ' ');
    setAgo(ago, since);
    setText(error, ': ' + (str(redis.error) || 'no answer'));
    setText(note, S.overview
      ? 'Showing the last figures read, at ' + fmtTime(S.overview.read_at_ms) + '. Last attempt ' + fmtTime(redis.checked_at_ms) + '.'
      : 'No figures were read yet.');
    show(banner, true);
  }

  const BANNERS = {
    conserved: ['banner-conserved', 'Money conserved'],
    violated: ['banner-violated', 'MONEY NOT CONSERVED'],
    unsettled: ['banner-unsettled', 'Moving across shards: cross-bank checks wait for a quiet read'],
    unknown: ['banner-unknown', 'Conservation unknown: some keys could not be read'],
  };

  function renderConservation(state, ov) {
    const banner = $('banner');
    if (!banner.querySelector('.banner-title')) {
      banner.textContent = '';
      banner.appendChild(el('strong', 'banner-title'));
      banner.appendChild(el('span', 'banner-sub'));
      banner.appendChild(el('span', 'banner-ago'));
    }
    const [title, sub, ago] = banner.children;
    const money = $('money');
    if (!ov) {
      setClass(banner, 'banner banner-waiting');
      const empty = state.redis && state.redis.empty;
      setText(title, empty ? 'No data set loaded' : 'Waiting for the first read');
      setText(sub, empty ? ' ' + str(empty) : state.redis && state.redis.ok === false ? ' Redis has not answered yet.' : '');
      setAgo(ago, null);
      show($('problems'), false);
      setText(money, '');
      fillChecks($('checks'), []);
      return;
    }
    const cons = ov.conservation || {};
    const [cls, text] = BANNERS[cons.state] || ['banner-unknown', 'Conservation unknown'];
    setClass(banner, 'banner ' + cls);
    setText(title, text);
    const how = ov.layout === 'sharded'
      ? (cons.consistent ? 'two rounds of per-bank reads agreed' : 'per-bank reads at different instants')
      : (cons.consistent ? 'one MULTI on a single server' : 'reads at different instants');
    setText(sub, ' · read at ' + fmtTime(ov.read_at_ms) + ', ' + how + ' ');
    setAgo(ago, ov.read_at_ms);

    renderProblems(ov);
    renderMoney(ov);
    fillChecks($('checks'), arr(cons.checks), (check) => (check && check.across_banks ? 'across banks' : 'within each bank'));
  }

  function renderProblems(ov) {
    const box = $('problems');
    const problems = arr(ov.problems);
    const more = typeof ov.more_problems === 'number' ? ov.more_problems : 0;
    if (problems.length === 0 && more === 0) {
      show(box, false);
      return;
    }
    if (!box.firstChild) {
      box.appendChild(el('div', 'problems-title', 'Could not be read as they should be:'));
      box.appendChild(el('ul'));
    }
    const items = problems.map(String);
    if (more > 0) items.push('and ' + fmtInt(more) + ' more');
    const ul = box.lastElementChild;
    const lis = syncChildren(ul, items.length, () => el('li'));
    items.forEach((text, i) => setText(lis[i], text));
    show(box, true);
  }

  /** accounts + in flight = sum, against the total loaded, and the difference. */
  function renderMoney(ov) {
    const box = $('money');
    const m = ov.money || {};
    const accounts = toBig(m.accounts_cents);
    const flight = toBig(m.in_flight_cents);
    const total = toBig(m.total_cents);
    const diff = toBig(m.difference_cents);
    const sum = accounts !== null && flight !== null ? accounts + flight : null;
    const figures = [
      ['', 'In accounts', accounts, ''],
      ['+', 'In flight', flight, ''],
      ['=', 'Accounts + in flight', sum, ''],
      ['vs', 'Total loaded', total, ''],
      ['', 'Difference', diff, diff === null ? 'bad' : diff === 0n ? 'ok' : 'bad'],
    ];
    if (box.children.length !== figures.length * 2) {
      box.textContent = '';
      for (let i = 0; i < figures.length; i++) {
        box.appendChild(el('span', 'op'));
        const fig = el('div', 'figure');
        fig.appendChild(el('div', 'figure-label'));
        fig.appendChild(el('div', 'figure-value'));
        box.appendChild(fig);
      }
    }
    figures.forEach(([op, label, value, cls], i) => {
      const opNode = box.children[i * 2];
      const fig = box.children[i * 2 + 1];
      setText(opNode, op);
      setClass(fig, 'figure ' + cls);
      setText(fig.firstElementChild, label);
      setText(fig.lastElementChild, fmtCents(value));
      setTitle(fig, value === null ? 'not readable' : value.toString() + ' cents');
    });
  }

  function newestEntryMs(ov) {
    let newest = null;
    for (const s of arr(ov && ov.streams)) {
      const ms = isMs(s && s.last_ms) ? s.last_ms : idMs(s && s.last_id);
      if (isMs(ms) && (newest === null || ms > newest)) newest = ms;
    }
    return newest;
  }

  function consumeCommand(ov) {
    let cmd = 'interbank consume';
    const prefix = ov && typeof ov.prefix === 'string' ? ov.prefix : '';
    if (prefix && prefix !== 'banks_transfers') cmd += ' --prefix ' + (/^[\w:.-]+$/.test(prefix) ? prefix : "'" + prefix.replace(/'/g, "'\\''") + "'");
    return cmd;
  }

  function renderVerdict(state, ov) {
    const head = $('verdict-head');
    const meta = $('verdict-meta');
    const hint = $('verdict-hint');
    const hintText = $('verdict-hint-text');
    setText($('verdict-cmd'), consumeCommand(ov));
    if (!ov) {
      setClass(head, 'verdict-head muted');
      setText(head, 'Waiting for the first read');
      setText(meta, '');
      fillChecks($('verdict-checks'), []);
      show(hint, false);
      return;
    }
    const v = ov.verdict;
    const newest = newestEntryMs(ov);
    if (!v) {
      setClass(head, 'verdict-head verdict-none');
      setText(head, 'No verification recorded');
      setText(meta, '');
      fillChecks($('verdict-checks'), []);
      setText(hintText, 'No consumer has verified these streams yet. Replay them and check every balance:');
      show(hint, true);
      return;
    }
    setClass(head, 'verdict-head ' + (v.verified ? 'verdict-ok' : 'verdict-bad'));
    if (!head.firstChild || head.children.length !== 3) {
      head.textContent = '';
      head.appendChild(el('span', 'verdict-word'));
      head.appendChild(el('span', 'verdict-by'));
      head.appendChild(el('span', 'verdict-ago'));
    }
    const [word, by, ago] = head.children;
    setText(word, v.verified ? 'VERIFIED' : 'NOT VERIFIED');
    setText(by, ' by consumer ' + str(v.consumer) + ', ');
    setAgo(ago, v.at_ms, true);
    setText(meta, 'at ' + fmtTime(v.at_ms) + ' · ' + fmtInt(v.events) + ' events covered · ' +
      fmtInt(v.completed) + ' completed · ' + fmtInt(v.cancelled) + ' cancelled');
    fillChecks($('verdict-checks'), arr(v.checks), (check) =>
      (check && !check.passed && typeof check.failures === 'number' ? fmtInt(check.failures) + ' failures' : ''));
    const stale = newest !== null && isMs(v.at_ms) && newest > v.at_ms;
    if (stale) {
      setText(hintText, 'Events were appended after this verdict (newest entry at ' + fmtTime(newest) +
        '): it does not cover them. Run a new verification:');
    }
    show(hint, stale);
  }

  /** The last bucket that tells the current rate, and whether it is still filling. */
  function currentRate(tl) {
    const buckets = arr(tl && tl.buckets);
    const bucketMs = tl && tl.bucket_ms > 0 ? tl.bucket_ms : 0;
    if (!bucketMs || buckets.length === 0) return null;
    const now = serverNow();
    const last = buckets.length - 1;
    const lastStart = tl.start_ms + last * bucketMs;
    // Nothing appended for a while (two intervals, and at least 3 s for the reads' own delay).
    if (now - (lastStart + bucketMs) > Math.max(2 * bucketMs, 3000)) return { completed: 0, cancelled: 0, idle: true };
    const elapsed = Math.min(bucketMs, Math.max(now - lastStart, 0));
    let index = last;
    let seconds = bucketMs / 1000;
    if (elapsed < bucketMs) {
      // Still filling: the previous bucket if there is one, else the part elapsed so far.
      if (last > 0) index = last - 1;
      else seconds = Math.max(elapsed, 1000) / 1000;
    }
    const b = buckets[index] || {};
    return { completed: (Number(b.completed) || 0) / seconds, cancelled: (Number(b.cancelled) || 0) / seconds, idle: false };
  }

  function renderLive(state) {
    const live = state.live;
    if (!live) return;
    const completed = $('count-completed');
    const cancelled = $('count-cancelled');
    setText(completed, plainInt(live.completed));
    setTitle(completed, fmtInt(live.completed) + ' completed (or credited across banks)');
    setText(cancelled, plainInt(live.cancelled));
    setTitle(cancelled, fmtInt(live.cancelled) + ' cancelled (or rejected across banks)');
    show($('catching-up'), live.caught_up === false);

    const done = toBig(live.completed) || 0n;
    const undone = toBig(live.cancelled) || 0n;
    const decided = done + undone;
    let share = '';
    if (decided > 0n) {
      const basisPoints = (undone * 10000n) / decided;
      share = ', ' + (basisPoints / 100n).toString() + '.' + (basisPoints % 100n).toString().padStart(2, '0') + '% cancelled';
    }
    const tl = live.timeline;
    const since = tl && isMs(tl.start_ms) && tl.bucket_ms > 0 ? ' · since ' + fmtTime(tl.start_ms) : '';
    setText($('live-summary'), fmtInt(decided) + ' decided (' + fmtInt(done) + ' completed, ' + fmtInt(undone) + ' cancelled' +
      share + ') · ' + fmtInt(live.steps) + ' other cross-bank steps' + since +
      (live.caught_up === false ? ' · still reading the backlog' : ''));

    const rate = currentRate(tl);
    const rateNode = $('rate-now');
    if (!rate) {
      setText(rateNode, '—');
      setTitle(rateNode, 'no transfer decided yet');
    } else {
      setText(rateNode, fmtRate(rate.completed + rate.cancelled) + '/s');
      setTitle(rateNode, rate.idle ? 'no transfer decided in the last interval'
        : fmtRate(rate.completed) + ' completed/s, ' + fmtRate(rate.cancelled) + ' cancelled/s (last full interval)');
    }
  }

  // The rate chart: inline SVG drawn at the element's own width (1 unit = 1 px).
  const CHART = { built: false, nodes: {}, geom: null };
  const CHART_H = 170;
  const PAD = { left: 52, right: 10, top: 10, bottom: 22 };

  function svg(tag, cls) {
    const node = document.createElementNS($('chart').namespaceURI, tag);
    if (cls) node.setAttribute('class', cls);
    return node;
  }

  function buildChart() {
    const root = $('chart');
    const n = CHART.nodes;
    n.grid = svg('g', 'grid-group');
    root.appendChild(n.grid);
    n.completed = svg('polyline', 'series series-completed');
    n.completedTail = svg('polyline', 'series series-completed tail');
    n.cancelled = svg('polyline', 'series series-cancelled');
    n.cancelledTail = svg('polyline', 'series series-cancelled tail');
    n.cursor = svg('line', 'cursor');
    n.xStart = svg('text', 'axis axis-x');
    n.xEnd = svg('text', 'axis axis-x');
    n.xEnd.setAttribute('text-anchor', 'end');
    n.empty = svg('text', 'empty');
    n.empty.setAttribute('text-anchor', 'middle');
    for (const key of ['completed', 'cancelled', 'completedTail', 'cancelledTail', 'cursor', 'xStart', 'xEnd', 'empty']) {
      root.appendChild(n[key]);
    }
    n.cursor.setAttribute('visibility', 'hidden');
    root.addEventListener('mousemove', onChartMove);
    root.addEventListener('mouseleave', onChartLeave);
    CHART.built = true;
  }

  /** A round step (1, 2, 2.5 or 5 × 10^k) at least `value`. */
  function niceCeil(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    const f = value / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * power;
  }

  /** Horizontal grid lines with their labels at 0, step, 2 step … top. */
  function drawTicks(group, step, top, y, width) {
    const count = Math.round(top / step) + 1;
    const pairs = [];
    while (group.childNodes.length > count * 2) group.lastChild.remove();
    while (group.childNodes.length < count * 2) {
      group.appendChild(svg('line', 'grid'));
      group.appendChild(svg('text', 'axis axis-y'));
    }
    for (let k = 0; k < count; k++) pairs.push([group.childNodes[k * 2], group.childNodes[k * 2 + 1]]);
    pairs.forEach(([line, label], k) => {
      const value = step * k;
      const gy = y(value).toFixed(1);
      line.setAttribute('x1', String(PAD.left));
      line.setAttribute('x2', String(width - PAD.right));
      line.setAttribute('y1', gy);
      line.setAttribute('y2', gy);
      label.setAttribute('x', String(PAD.left - 6));
      label.setAttribute('y', String(Number(gy) + 4));
      label.setAttribute('text-anchor', 'end');
      setText(label, fmtRate(value) + '/s');
    });
  }

  function renderChart(state) {
    if (!CHART.built) buildChart();
    const root = $('chart');
    const n = CHART.nodes;
    const width = Math.max(320, Math.round(root.getBoundingClientRect().width) || 600);
    const viewBox = '0 0 ' + width + ' ' + CHART_H;
    if (root.getAttribute('viewBox') !== viewBox) root.setAttribute('viewBox', viewBox);
    const tl = state.live && state.live.timeline;
    const buckets = arr(tl && tl.buckets);
    const bucketMs = tl && tl.bucket_ms > 0 ? tl.bucket_ms : 0;
    const plotW = width - PAD.left - PAD.right;
    const plotH = CHART_H - PAD.top - PAD.bottom;
    const seconds = bucketMs / 1000;
    const count = bucketMs ? buckets.length : 0;

    // Rates; the last bucket, while it fills, counts over the part elapsed so far (drawn dashed).
    const now = serverNow();
    const rates = [];
    for (let i = 0; i < count; i++) {
      const b = buckets[i] || {};
      let secs = seconds;
      let partial = false;
      if (i === count - 1) {
        const elapsed = now - (tl.start_ms + i * bucketMs);
        if (elapsed > 0 && elapsed < bucketMs) {
          partial = true;
          secs = Math.max(elapsed, 1000) / 1000;
        }
      }
      rates.push({ completed: (Number(b.completed) || 0) / secs, cancelled: (Number(b.cancelled) || 0) / secs, partial });
    }
    let max = 0;
    for (const r of rates) max = Math.max(max, r.completed, r.cancelled);
    const step = niceCeil((max || 1) / 4);
    const top = step * Math.max(1, Math.ceil((max || 1) / step - 1e-9));
    const x = (i) => PAD.left + (count <= 1 ? plotW / 2 : (i * plotW) / (count - 1));
    const y = (v) => PAD.top + plotH - (Math.min(v, top) / top) * plotH;
    CHART.geom = { count, x, plotW, rates, tl, bucketMs };

    drawTicks(n.grid, step, top, y, width);

    const points = (key, from, to) => {
      if (from === to) {
        // One interval only: a flat line across the plot.
        const py = y(rates[from][key]).toFixed(1);
        return PAD.left + ',' + py + ' ' + (width - PAD.right) + ',' + py;
      }
      const out = [];
      for (let i = from; i <= to; i++) out.push(x(i).toFixed(1) + ',' + y(rates[i][key]).toFixed(1));
      return out.join(' ');
    };
    const lastPartial = count > 1 && rates[count - 1].partial;
    const mainEnd = lastPartial ? count - 2 : count - 1;
    for (const key of ['completed', 'cancelled']) {
      n[key].setAttribute('points', count ? points(key, 0, mainEnd) : '');
      n[key + 'Tail'].setAttribute('points', lastPartial ? points(key, count - 2, count - 1) : '');
    }

    const baseline = String(CHART_H - 6);
    n.xStart.setAttribute('x', String(PAD.left));
    n.xStart.setAttribute('y', baseline);
    n.xEnd.setAttribute('x', String(width - PAD.right));
    n.xEnd.setAttribute('y', baseline);
    if (count) {
      setText(n.xStart, fmtTime(tl.start_ms));
      setText(n.xEnd, fmtTime(tl.start_ms + count * bucketMs) + ' · ' + fmtDuration(bucketMs) + ' intervals');
    } else {
      setText(n.xStart, '');
      setText(n.xEnd, '');
    }
    n.empty.setAttribute('x', String(PAD.left + plotW / 2));
    n.empty.setAttribute('y', String(PAD.top + plotH / 2));
    setText(n.empty, count ? '' : 'no transfer decided yet');
    if (!CHART.hover) setText($('chart-readout'), '');
  }

  function onChartMove(event) {
    const g = CHART.geom;
    const root = $('chart');
    if (!g || !g.count) return;
    const rect = root.getBoundingClientRect();
    const width = Number(root.getAttribute('viewBox').split(' ')[2]) || rect.width;
    const vx = ((event.clientX - rect.left) * width) / rect.width;
    const i = g.count <= 1 ? 0 : Math.max(0, Math.min(g.count - 1, Math.round(((vx - PAD.left) * (g.count - 1)) / g.plotW)));
    const cx = g.x(i).toFixed(1);
    const c = CHART.nodes.cursor;
    c.setAttribute('x1', cx);
    c.setAttribute('x2', cx);
    c.setAttribute('y1', String(PAD.top));
    c.setAttribute('y2', String(CHART_H - PAD.bottom));
    c.setAttribute('visibility', 'visible');
    const b = arr(g.tl.buckets)[i] || {};
    const start = g.tl.start_ms + i * g.bucketMs;
    const r = g.rates[i];
    CHART.hover = true;
    setText($('chart-readout'), fmtTime(start) + ' (+' + fmtDuration(g.bucketMs) + '): ' + fmtRate(r.completed) + ' completed/s, ' +
      fmtRate(r.cancelled) + ' cancelled/s · ' + fmtInt(b.completed) + ' and ' + fmtInt(b.cancelled) + ' in the interval' +
      (r.partial ? ' (still filling)' : ''));
  }

  function onChartLeave() {
    CHART.hover = false;
    CHART.nodes.cursor.setAttribute('visibility', 'hidden');
    setText($('chart-readout'), '');
  }

  /** Diverging colour: negative red, positive blue, zero white; t = |cell| / max in [0, 1]. */
  function heatColour(value, maxAbs) {
    const b = toBig(value);
    if (b === null || b === 0n) return { bg: 'rgb(255, 255, 255)', fg: '' };
    const max = toBig(maxAbs);
    const abs = b < 0n ? -b : b;
    let t = 1;
    if (max !== null && max > 0n) t = abs >= max ? 1 : Number(abs) / Number(max);
    t = Math.max(0.06, Math.min(1, t)); // a non-zero position is never pure white
    const target = b < 0n ? [178, 24, 43] : [33, 102, 172];
    const mix = target.map((c) => Math.round(255 + (c - 255) * t));
    return { bg: 'rgb(' + mix.join(', ') + ')', fg: t > 0.55 ? '#ffffff' : '' };
  }

  function renderHeatmap(state, ov) {
    const table = $('heatmap');
    const thead = table.tHead;
    const tbody = table.tBodies[0];
    if (!ov) {
      fillRows(thead, []);
      fillRows(tbody, [placeholderRow(1, 'Waiting for the first read')]);
      return;
    }
    const banks = arr(ov.banks);
    const matrix = ov.matrix || {};
    const names = arr(matrix.banks).length ? arr(matrix.banks) : banks.map((b) => b && b.name);
    const shortOf = (i) => str((banks[i] && banks[i].short) || names[i]);
    const cells = arr(matrix.cells);
    const totals = arr(matrix.row_totals);
    const maxAbs = matrix.max_abs_cents;

    fillRows(thead, [{
      cells: [{ th: true, text: '', cls: 'corner' }]
        .concat(names.map((name, i) => ({ th: true, text: shortOf(i), title: str(name), cls: 'col-head' })))
        .concat([{ th: true, text: 'Total = balance', cls: 'num total-head' }]),
    }]);

    const rows = names.map((name, a) => {
      const row = arr(cells[a]);
      const out = [{ th: true, text: shortOf(a), title: str(name), cls: 'row-head' }];
      names.forEach((other, b) => {
        const value = row[b];
        if (a === b) {
          out.push({ text: '', cls: 'hm diag', title: str(name) + ' with itself' });
        } else if (value === null || value === undefined) {
          out.push({ text: '?', cls: 'hm unreadable', title: str(name) + "'s position with " + str(other) + ' could not be read' });
        } else {
          const colour = heatColour(value, maxAbs);
          const big = toBig(value);
          const meaning = big === null || big === 0n ? 'even'
            : big > 0n ? str(other) + ' owes ' + str(name) : str(name) + ' owes ' + str(other);
          out.push({
            text: fmtCentsShort(value), cls: 'hm num', bg: colour.bg, fg: colour.fg,
            title: str(name) + ' with ' + str(other) + ': ' + fmtCents(value) + ' (' + meaning + '; ' + str(toBig(value)) + ' cents)',
          });
        }
      });
      const bank = banks[a] || {};
      const total = toBig(totals[a]);
      const balance = toBig(bank.balance_cents);
      const mismatch = total !== null && balance !== null && total !== balance;
      out.push({
        text: fmtCents(totals[a]), cls: 'num total' + (mismatch ? ' mismatch' : ''),
        title: mismatch ? 'row total ' + fmtCents(total) + ' differs from the balance ' + fmtCents(balance)
          : str(name) + "'s balance: " + fmtCents(totals[a]),
      });
      return { cells: out };
    });
    fillRows(tbody, rows.length ? rows : [placeholderRow(1, 'No banks')]);

    const max = toBig(maxAbs);
    setText($('scale-min'), max === null ? '—' : fmtCents(-max));
    setText($('scale-max'), max === null ? '—' : fmtCents(max));

    const legend = $('bank-legend');
    const items = syncChildren(legend, names.length, () => {
      const div = el('div');
      div.appendChild(el('dt'));
      div.appendChild(el('dd'));
      return div;
    });
    names.forEach((name, i) => {
      setText(items[i].firstElementChild, shortOf(i));
      setText(items[i].lastElementChild, str(name));
      setTitle(items[i], shortOf(i) + ': ' + str(name));
    });
  }

  function renderBanks(state, ov) {
    const table = $('banks');
    const tbody = table.tBodies[0];
    const sharded = Boolean(ov && ov.layout === 'sharded');
    table.classList.toggle('no-shard', !sharded);
    if (!ov) {
      fillRows(tbody, [placeholderRow(8, 'Waiting for the first read')]);
      syncChildren($('balance-bars'), 0);
      return;
    }
    const banks = arr(ov.banks).filter((b) => b && typeof b === 'object');
    const rows = banks.map((b) => ({
      cells: [
        { text: str(b.name), title: 'short: ' + str(b.short) },
        { text: b.balance_cents === null ? 'unreadable' : fmtCents(b.balance_cents), cls: 'num ' + signClass(b.balance_cents) },
        { text: fmtCents(b.owed_cents), cls: 'num' },
        { text: fmtCents(b.owing_cents), cls: 'num' },
        { text: b.in_flight_cents === null ? 'unreadable' : fmtCents(b.in_flight_cents), cls: 'num' },
        { text: fmtInt(b.accounts), cls: 'num' },
        { text: fmtCents(b.accounts_cents), cls: 'num' },
        { text: str(b.shard) || '—', cls: 'col-shard' },
      ],
    }));
    fillRows(tbody, rows.length ? rows : [placeholderRow(8, 'No banks')]);
    renderBalanceBars(banks);
  }

  function signClass(value) {
    const b = toBig(value);
    return b === null ? 'bad' : b < 0n ? 'neg' : b > 0n ? 'pos' : '';
  }

  /** Horizontal diverging bars: negative balances to the left (red), positive to the right. */
  function renderBalanceBars(banks) {
    let max = 0n;
    for (const b of banks) {
      const v = toBig(b.balance_cents);
      if (v !== null && (v < 0n ? -v : v) > max) max = v < 0n ? -v : v;
    }
    const rows = syncChildren($('balance-bars'), banks.length, () => {
      const row = el('div', 'barrow');
      row.appendChild(el('span', 'bar-name'));
      const track = el('div', 'bar-track');
      const neg = el('div', 'bar-half bar-neg');
      neg.appendChild(el('div', 'bar-fill'));
      const pos = el('div', 'bar-half bar-pos');
      pos.appendChild(el('div', 'bar-fill'));
      track.appendChild(neg);
      track.appendChild(pos);
      row.appendChild(track);
      row.appendChild(el('span', 'bar-value num'));
      return row;
    });
    banks.forEach((b, i) => {
      const [name, track, value] = rows[i].children;
      const v = toBig(b.balance_cents);
      const abs = v === null ? 0n : v < 0n ? -v : v;
      const pct = max > 0n ? (Number(abs) / Number(max)) * 100 : 0;
      const negFill = track.firstElementChild.firstElementChild;
      const posFill = track.lastElementChild.firstElementChild;
      negFill.style.width = (v !== null && v < 0n ? pct : 0).toFixed(1) + '%';
      posFill.style.width = (v !== null && v > 0n ? pct : 0).toFixed(1) + '%';
      setText(name, str(b.name));
      setText(value, v === null ? 'unreadable' : fmtCents(v));
      setClass(value, 'bar-value num ' + signClass(b.balance_cents));
      setTitle(rows[i], str(b.name) + ': balance ' + (v === null ? 'unreadable' : fmtCents(v) + ' (' + v.toString() + ' cents)'));
    });
  }

  /** Refills a select's options when they change, keeping the chosen value. */
  function syncSelect(select, options) {
    const wanted = [['', select.options[0] ? select.options[0].textContent : 'all']].concat(options);
    const same = select.options.length === wanted.length &&
      wanted.every(([value, label], i) => select.options[i].value === value && select.options[i].textContent === label);
    if (same) return;
    const chosen = select.value;
    while (select.options.length) select.remove(0);
    for (const [value, label] of wanted) {
      const option = el('option', null, label);
      option.value = value;
      select.appendChild(option);
    }
    // A filter the data no longer lists stays chosen (it still filters) rather than silently resetting.
    if (chosen && !wanted.some(([value]) => value === chosen)) {
      const option = el('option', null, chosen);
      option.value = chosen;
      select.appendChild(option);
    }
    select.value = chosen;
  }

  function renderFilters(state, ov) {
    if (!ov) return;
    syncSelect($('filter-bank'), arr(ov.banks).filter(Boolean).map((b) => [str(b.name), str(b.name)]));
    const runs = arr(ov.runs).filter(Boolean).slice().sort((a, b) => (Number(b.run) || 0) - (Number(a.run) || 0));
    syncSelect($('filter-run'), runs.map((r) => [str(r.run), 'run ' + str(r.run) + ' (' + str(r.strategy) + ', ' + str(r.status) + ')']));
  }

  const RUN_BADGES = { running: 'info', ended: 'ok', interrupted: 'warn', failed: 'bad' };

  function renderRuns(state, ov) {
    const tbody = $('runs').tBodies[0];
    if (!ov) {
      fillRows(tbody, [placeholderRow(7, 'Waiting for the first read')]);
      return;
    }
    const runs = arr(ov.runs).filter(Boolean).slice().sort((a, b) => (Number(b.run) || 0) - (Number(a.run) || 0));
    const rows = [];
    runs.forEach((r) => {
      const planned = toBig(r.planned);
      const applied = toBig(r.applied);
      const pct = planned !== null && planned > 0n && applied !== null ? (Number(applied) / Number(planned)) * 100 : 0;
      const ended = isMs(r.ended_ms)
        ? 'ended ' + fmtDateTime(r.ended_ms) + ' after ' + fmtDuration(r.ended_ms - r.started_ms)
        : 'not ended';
      rows.push({
        cls: r.error ? 'has-error' : '',
        cells: [
          { text: str(r.run), cls: 'num' },
          str(r.strategy),
          { text: fmtInt(r.workers), cls: 'num' },
          { text: str(r.status), badge: RUN_BADGES[r.status] || 'muted', title: r.error ? str(r.error) : null },
          { text: fmtTime(r.started_ms), ago: r.started_ms, title: 'started ' + fmtDateTime(r.started_ms) + '; ' + ended },
          { text: (applied === null ? '—' : fmtInt(applied)) + ' / ' + fmtInt(planned), cls: 'num' },
          { bar: { pct, label: planned !== null && planned > 0n && applied !== null ? pct.toFixed(1) + '%' : '—', cls: r.status === 'failed' ? 'bad' : r.status === 'running' ? 'info' : 'ok' } },
        ],
      });
      if (r.error) rows.push({ cls: 'run-error', cells: [{ text: '' }, { text: 'error: ' + str(r.error), span: 6 }] });
    });
    fillRows(tbody, rows.length ? rows : [placeholderRow(7, 'No runs yet')]);
  }

  function renderStreams(state, ov) {
    const tbody = $('streams').tBodies[0];
    if (!ov) {
      fillRows(tbody, [placeholderRow(3, 'Waiting for the first read')]);
      return;
    }
    const rows = arr(ov.streams).filter(Boolean).map((s) => {
      const ms = isMs(s.last_ms) ? s.last_ms : idMs(s.last_id);
      return {
        cells: [
          { text: str(s.key), title: s.bank ? 'bank ' + str(s.bank) : null },
          { text: fmtInt(s.length), cls: 'num' },
          s.last_id ? { text: fmtTime(ms), ago: ms, title: 'last id ' + str(s.last_id) } : { text: 'empty', cls: 'muted' },
        ],
      };
    });
    fillRows(tbody, rows.length ? rows : [placeholderRow(3, 'No stream yet')]);
  }

  function renderConsumers(state, ov) {
    const tbody = $('consumers').tBodies[0];
    if (!ov) {
      fillRows(tbody, [placeholderRow(5, 'Waiting for the first read')]);
      return;
    }
    const rows = arr(ov.consumers).filter(Boolean).map((c) => ({
      cells: [
        str(c.name),
        { text: fmtInt(c.events), cls: 'num' },
        { text: c.lag_ms === 0 ? 'none' : fmtDuration(c.lag_ms), cls: 'num' + (c.lag_ms > 0 ? ' warn-text' : '') },
        { text: fmtInt(c.streams_behind), cls: 'num' },
        { text: fmtTime(c.saved_at_ms), ago: c.saved_at_ms, title: 'checkpoint saved ' + fmtDateTime(c.saved_at_ms) },
      ],
    }));
    fillRows(tbody, rows.length ? rows : [placeholderRow(5, 'No consumer checkpoint yet')]);
  }

  function renderShards(state, ov) {
    const sharded = Boolean(ov && ov.layout === 'sharded');
    show($('shards-block'), sharded);
    show($('shards-none'), !sharded);
    if (!ov) setText($('shards-none'), 'Waiting for the first read');
    else if (!sharded) setText($('shards-none'), 'Single server: each transfer is one atomic script, so no money waits in flight between banks.');
    if (!sharded) return;
    const banks = arr(ov.banks).filter(Boolean).slice()
      .sort((a, b) => str(a.shard).localeCompare(str(b.shard)) || str(a.name).localeCompare(str(b.name)));
    let total = 0n;
    let unreadable = false;
    const rows = banks.map((b) => {
      const v = toBig(b.in_flight_cents);
      if (v === null) unreadable = true;
      else total += v;
      return {
        cells: [
          str(b.shard) || '—',
          str(b.name),
          { text: v === null ? 'unreadable' : fmtCents(v), cls: 'num' + (v === null ? ' bad' : '') },
        ],
      };
    });
    rows.push({ cls: 'sum', cells: [{ text: 'all shards', span: 2 }, { text: fmtCents(total) + (unreadable ? ' + unreadable' : ''), cls: 'num' }] });
    fillRows($('shards').tBodies[0], rows);
  }

  // ---------------------------------------------------------------------------------------------
  // 4. Events

  function eventFilters() {
    return { bank: $('filter-bank').value, run: $('filter-run').value, outcome: $('filter-outcome').value };
  }

  function eventsUrl(cursor, filters) {
    const params = new URLSearchParams();
    params.set('limit', String(EVENTS_LIMIT));
    if (cursor) params.set('before', cursor);
    if (filters.bank) params.set('bank', filters.bank);
    if (filters.run) params.set('run', filters.run);
    if (filters.outcome) params.set('outcome', filters.outcome);
    return 'api/events?' + params.toString();
  }

  async function loadEvents(cursor) {
    const id = ++E.reqId;
    const filters = eventFilters();
    E.loading = true;
    E.lastFetch = Date.now();
    renderEventsStatus();
    try {
      const response = await fetch(eventsUrl(cursor, filters), {
        cache: 'no-store', credentials: 'same-origin', headers: { Accept: 'application/json' },
      });
      if (!response.ok) {
        const body = (await response.text()).slice(0, 200);
        throw new Error('HTTP ' + response.status + (body ? ': ' + body : ''));
      }
      const page = await response.json();
      if (id !== E.reqId) return;
      if (!page || !Array.isArray(page.events)) throw new Error('unexpected answer');
      E.cursor = cursor;
      E.page = page;
      E.pageFilters = filters;
      E.error = '';
      renderEvents();
    } catch (error) {
      if (id !== E.reqId) return;
      E.error = 'could not load events: ' + (error && error.message ? error.message : String(error));
    } finally {
      if (id === E.reqId) {
        E.loading = false;
        renderEventsStatus();
      }
    }
  }

  const EVENT_BADGES = {
    completed: 'ok', credited: 'ok', settled: 'ok', debited: 'info', cancelled: 'warn', rejected: 'warn', voided: 'warn',
  };

  // A bank cell: the bank, or for the debits or credits of one call with several banks on that
  // side, how many, each named in the tooltip.
  function bankCell(bank, others) {
    const several = arr(others).map(str);
    if (bank || !several.length) return str(bank);
    return { text: fmtInt(several.length) + ' banks', title: several.join(', ') };
  }

  function renderEvents() {
    const tbody = $('events').tBodies[0];
    const events = arr(E.page && E.page.events).filter((e) => e && typeof e === 'object');
    const rows = events.map((e) => {
      const ms = idMs(e.id);
      return {
        cls: 'ev ev-' + (OUTCOMES.includes(e.status) ? e.status : 'other'),
        title: 'id ' + str(e.id) + ' in ' + str(e.stream),
        cells: [
          { text: fmtTime(ms, true), title: fmtDateTime(ms) + ' · ' + str(e.id), cls: 'nowrap' },
          { text: str(e.transfer), cls: 'mono' },
          { text: str(e.run), cls: 'num' },
          { text: str(e.status), badge: EVENT_BADGES[e.status] || 'muted' },
          bankCell(e.from_bank, e.other_banks),
          { text: str(e.from), cls: 'mono' },
          bankCell(e.to_bank, e.other_banks),
          { text: str(e.to), cls: 'mono' },
          { text: fmtCents(e.amount_cents), cls: 'num', title: str(toBig(e.amount_cents)) + ' cents' },
          { text: str(e.reason), cls: e.reason ? 'reason' : '' },
        ],
      };
    });
    fillRows(tbody, rows.length ? rows : [placeholderRow(10, E.page ? 'No event matches' : 'Loading…')]);
  }

  function renderEventsStatus() {
    const page = E.page;
    const parts = [];
    if (page) {
      const shown = arr(page.events).length;
      parts.push((E.cursor ? 'older page, before ' + E.cursor : 'newest') + ': ' + fmtInt(shown) + ' events');
      if (typeof page.scanned === 'number') parts.push(fmtInt(page.scanned) + ' entries scanned');
      if (shown < EVENTS_LIMIT && page.next) parts.push('few match in this scan: Older looks further back');
      if (!page.next) parts.push('start of the streams');
      if (!E.cursor) parts.push(S.paused ? 'paused' : 'refreshed live');
    }
    if (E.loading) parts.push('loading…');
    if (E.error) parts.push(E.error);
    const status = $('events-status');
    setText(status, parts.join(' · '));
    setClass(status, E.error ? 'small error-text' : 'muted small');
    $('events-older').disabled = !(page && page.next);
  }

  /** While live on the newest page: refetch when the streams moved, at most every 2 s. */
  function maybeRefreshEvents(ov) {
    if (S.paused || E.cursor !== null) return;
    const signature = arr(ov && ov.streams).map((s) => str(s && s.last_id)).join('|');
    if (signature === E.signature && E.page) return;
    const wait = EVENTS_REFRESH_MS - (Date.now() - E.lastFetch);
    if (E.loading || wait > 0) {
      if (!E.timer) {
        E.timer = setTimeout(() => {
          E.timer = null;
          maybeRefreshEvents(S.overview);
        }, Math.max(wait, 250));
      }
      return;
    }
    E.signature = signature;
    loadEvents(null);
  }

  // ---------------------------------------------------------------------------------------------
  // 5. Transport: EventSource, polling fallback, pause

  const CONN_TEXT = {
    connecting: 'connecting…',
    live: 'live',
    reconnecting: 'reconnecting…',
    polling: 'polling every 2 s',
    offline: 'server unreachable',
    paused: 'paused',
  };

  function setConn(mode, detail) {
    T.mode = mode;
    T.detail = detail || '';
    const node = $('conn');
    setText(node, CONN_TEXT[mode] || mode);
    setClass(node, 'conn conn-' + mode);
    setTitle(node, T.detail || null);
    document.body.classList.toggle('is-paused', mode === 'paused');
  }

  /** Applies one state (JSON text); a bad one is ignored and the last good render stays. */
  function applyText(text) {
    if (S.paused) return;
    let state;
    try {
      state = JSON.parse(text);
    } catch (error) {
      console.error('dashboard: a state that is not JSON', error);
      return;
    }
    if (!state || typeof state !== 'object') return;
    S.state = state;
    S.receivedAt = Date.now();
    if (state.overview && typeof state.overview === 'object') S.overview = state.overview;
    const checked = state.redis && state.redis.checked_at_ms;
    if (isMs(checked)) {
      const skew = Date.now() - checked;
      S.skewMs = Math.abs(skew) > 3000 ? skew : 0;
    }
    renderAll();
    maybeRefreshEvents(S.overview);
  }

  function openStream(probe) {
    const es = new EventSource('api/stream');
    T.es = es;
    if (!probe) setConn(T.errors ? 'reconnecting' : 'connecting');
    es.addEventListener('state', (event) => {
      if (T.es !== es) return;
      T.errors = 0;
      if (T.polling) stopPolling();
      if (T.mode !== 'live') setConn('live');
      applyText(event.data);
    });
    es.addEventListener('error', () => {
      if (T.es !== es) return;
      if (probe && T.polling) {
        // Still not streaming: keep polling, try again later.
        es.close();
        T.es = null;
        T.sseRetryAt = Date.now() + SSE_RETRY_WHILE_POLLING_MS;
        return;
      }
      T.errors += 1;
      if (es.readyState === EventSource.CLOSED || T.errors >= SSE_FAILURES_BEFORE_POLLING) {
        es.close();
        T.es = null;
        startPolling();
      } else {
        setConn('reconnecting', 'the stream dropped; the browser reconnects by itself');
      }
    });
  }

  function closeStream() {
    if (T.es) {
      T.es.close();
      T.es = null;
    }
  }

  function startPolling() {
    if (T.polling) return;
    T.polling = true;
    T.sseRetryAt = Date.now() + SSE_RETRY_WHILE_POLLING_MS;
    setConn('polling', 'the event stream failed; reading api/state every 2 s');
    pollOnce();
  }

  function stopPolling() {
    T.polling = false;
    if (T.pollTimer) clearTimeout(T.pollTimer);
    T.pollTimer = null;
  }

  async function pollOnce() {
    T.pollTimer = null;
    if (!T.polling || S.paused) return;
    try {
      const response = await fetch('api/state', { cache: 'no-store', credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      const text = await response.text();
      if (!T.polling) return;
      setConn('polling', 'the event stream failed; reading api/state every 2 s');
      applyText(text);
    } catch (error) {
      if (!T.polling) return;
      setConn('offline', error && error.message ? error.message : String(error));
    }
    if (!T.polling || S.paused) return;
    if (typeof EventSource === 'function' && !T.es && Date.now() >= T.sseRetryAt) openStream(true);
    T.pollTimer = setTimeout(pollOnce, POLL_MS);
  }

  function connect() {
    T.errors = 0;
    if (typeof EventSource === 'function') openStream(false);
    else startPolling();
  }

  function setPaused(paused) {
    S.paused = paused;
    const button = $('pause');
    setText(button, paused ? 'Resume' : 'Pause');
    button.setAttribute('aria-pressed', paused ? 'true' : 'false');
    if (paused) {
      closeStream();
      stopPolling();
      if (E.timer) clearTimeout(E.timer);
      E.timer = null;
      setConn('paused', 'updates stopped; Resume reconnects and shows the latest state');
    } else {
      connect(); // the stream sends the current state at once
    }
    renderUpdated();
    renderEventsStatus();
  }

  // ---------------------------------------------------------------------------------------------
  // 6. Export

  function stamp() {
    const d = new Date();
    return d.getFullYear() + pad2(d.getMonth() + 1) + pad2(d.getDate()) + '-' + pad2(d.getHours()) + pad2(d.getMinutes()) + pad2(d.getSeconds());
  }

  function fileBase() {
    const prefix = str(S.overview && S.overview.prefix).replace(/[^A-Za-z0-9_.-]/g, '_') || 'state';
    return 'interbank-' + prefix + '-' + stamp();
  }

  function download(name, type, text) {
    const blob = new Blob([text], { type });
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  /**
   * One CSV field, always quoted with `"` doubled. Text starting with = + - @ (or tab, CR) gets a
   * leading ' so a spreadsheet does not run it as a formula; numbers stay numbers.
   */
  function csvField(value) {
    let text;
    if (value === null || value === undefined) text = '';
    else if (typeof value === 'bigint') text = value.toString();
    else if (typeof value === 'number') text = Number.isInteger(value) ? BigInt(value).toString() : String(value);
    else if (typeof value === 'boolean') text = String(value);
    else {
      text = String(value);
      if (/^[=+\-@\t\r]/.test(text)) text = "'" + text;
    }
    return '"' + text.replace(/"/g, '""') + '"';
  }

  function csvLine(fields) {
    return fields.map(csvField).join(',');
  }

  function buildCsv() {
    const lines = [];
    const ov = S.overview;
    const state = S.state || {};
    lines.push(csvLine(['interbank export', 'prefix', ov ? ov.prefix : '', 'read_at', ov ? fmtDateTime(ov.read_at_ms) : '',
      'conservation', ov && ov.conservation ? ov.conservation.state : '', 'seq', state.seq]));
    lines.push('');
    lines.push(csvLine(['banks']));
    lines.push(csvLine(['bank', 'short', 'balance_cents', 'owed_cents', 'owing_cents', 'in_flight_cents', 'accounts', 'accounts_cents', 'shard']));
    for (const b of arr(ov && ov.banks).filter(Boolean)) {
      lines.push(csvLine([b.name, b.short, b.balance_cents, b.owed_cents, b.owing_cents, b.in_flight_cents, b.accounts, b.accounts_cents, b.shard]));
    }
    lines.push('');
    lines.push(csvLine(["matrix: row bank's net position with column bank, cents (positive: the column bank owes the row bank)"]));
    const matrix = (ov && ov.matrix) || {};
    const names = arr(matrix.banks);
    lines.push(csvLine(['bank'].concat(names).concat(['row_total_cents'])));
    names.forEach((name, a) => {
      const row = arr(arr(matrix.cells)[a]);
      lines.push(csvLine([name].concat(names.map((_, b) => row[b])).concat([arr(matrix.row_totals)[a]])));
    });
    lines.push('');
    const f = E.pageFilters || {};
    lines.push(csvLine(['events', 'page', E.cursor ? 'before ' + E.cursor : 'newest', 'bank', f.bank || 'all', 'run', f.run || 'all',
      'outcome', f.outcome || 'all', 'next', E.page ? E.page.next : '']));
    lines.push(csvLine(['id', 'stream', 'transfer', 'run', 'status', 'from_bank', 'from', 'to_bank', 'to', 'amount_cents', 'reason',
      'other_banks']));
    for (const e of arr(E.page && E.page.events).filter(Boolean)) {
      lines.push(csvLine([e.id, e.stream, e.transfer, e.run, e.status, e.from_bank, e.from, e.to_bank, e.to, e.amount_cents, e.reason,
        arr(e.other_banks).map(str).join('; ')]));
    }
    return '\ufeff' + lines.join('\r\n') + '\r\n';
  }

  function exportJson() {
    if (!S.state) return;
    download(fileBase() + '.json', 'application/json', JSON.stringify(S.state, null, 2) + '\n');
  }

  function exportCsv() {
    if (!S.state) return;
    download(fileBase() + '.csv', 'text/csv;charset=utf-8', buildCsv());
  }

  async function copyCommand() {
    const code = $('verdict-cmd');
    const button = $('copy-cmd');
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(code.textContent);
        ok = true;
      }
    } catch (error) {
      ok = false;
    }
    if (!ok) {
      // Not a secure context: select the text and use the older copy command.
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      try {
        ok = document.execCommand('copy');
      } catch (error) {
        ok = false;
      }
    }
    setText(button, ok ? 'Copied' : 'Select and copy');
    setTimeout(() => setText(button, 'Copy'), 1500);
  }

  // ---------------------------------------------------------------------------------------------
  // 7. Start

  function start() {
    $('pause').addEventListener('click', () => setPaused(!S.paused));
    $('export-json').addEventListener('click', exportJson);
    $('export-csv').addEventListener('click', exportCsv);
    $('copy-cmd').addEventListener('click', copyCommand);
    $('event-filters').addEventListener('submit', (event) => event.preventDefault());
    for (const id of ['filter-bank', 'filter-run', 'filter-outcome']) {
      $(id).addEventListener('change', () => loadEvents(null));
    }
    $('events-older').addEventListener('click', () => {
      if (E.page && E.page.next) loadEvents(String(E.page.next));
    });
    $('events-newest').addEventListener('click', () => loadEvents(null));
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        try {
          renderChart(S.state || {});
        } catch (error) {
          console.error('dashboard: chart', error);
        }
      }, 150);
    });
    setInterval(() => {
      tickAgo();
      renderUpdated();
    }, 1000);

    renderAll();
    renderEvents();
    connect();
    loadEvents(null);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
